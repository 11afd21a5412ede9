"""`optbench run --jobs N`: independent training steps trained side by side in worker
processes, then resumed from their finished checkpoints by the pipeline itself."""

import pytest
import torch

from optbench.errors import ConfigError
from optbench.io import safe_torch_load
from optbench.pipeline import Recipe, run_recipe
from optbench.pipeline.parallel import SideBySide, needed_steps, side_by_side_batch

BASE = {
    "data": {"dataset": "synthetic", "image_size": 16, "train_limit": 256, "val_limit": 64,
             "test_limit": 64, "calib_limit": 64},
    "models": {"net": {"arch": "resnet18"}, "small": {"arch": "mobilenet_v2"}},
    "bench": {"runtimes": ["torch-eager"], "batch_sizes": [2], "min_time_s": 0.05,
              "max_time_s": 0.2},
}
TRAIN = {"epochs": 1, "batch_size": 64, "lr": 0.05, "max_steps_per_epoch": 2}


EXPORT = {"name": "teacher-onnx", "method": "export-onnx", "input": "teacher"}
# a non-training step that ends a side-by-side run as the export does, in a fraction of a second
# (the runs below would export ResNet18 three times: 6-9 s of CPU each)
SPARSE = {"name": "teacher-sparse", "method": "prune-unstructured", "input": "teacher"}


def _recipe(tail: bool = True, after_teacher: dict = EXPORT):
    """The flagship's shape in small: a teacher, its export (or another step that does not
    train), scratch and distilled students (2 seeds each) and, with `tail`, a pruned student
    of the first distilled one."""
    steps = [
        {"name": "teacher", "method": "train", "input": "net", "train": TRAIN},
        after_teacher,
        {"name": "scratch", "method": "train", "input": "small", "seeds": [0, 1],
         "train": TRAIN},
        {"name": "kd", "method": "distill", "input": "small", "teacher": "teacher",
         "seeds": [0, 1], "train": TRAIN},
        {"name": "pruned", "method": "prune-structured", "input": "kd@0", "ratio": 0.3,
         "finetune": TRAIN},
    ]
    return Recipe.from_dict({**BASE, "steps": steps if tail else steps[:-1]})


def test_a_batch_is_the_run_of_training_steps_that_read_only_what_is_done():
    recipe = _recipe()
    names = [s.name for s in recipe.steps]
    index = names.index
    at_start = side_by_side_batch(recipe, 0, {"net", "small"}, set())
    assert [names[i] for i in at_start] == ["teacher"]          # the export ends the run
    done = {"net", "small", "teacher", "teacher-onnx"}
    batch = side_by_side_batch(recipe, index("scratch@0"), done, set())
    assert [names[i] for i in batch] == ["scratch@0", "scratch@1", "kd@0", "kd@1"]
    # finished before, or already trained side by side: left out, the run goes on past them
    batch = side_by_side_batch(recipe, index("scratch@0"), done, {"scratch@1", "kd@0"})
    assert [names[i] for i in batch] == ["scratch@0", "kd@1"]
    # without the teacher done, the distilled students cannot start
    batch = side_by_side_batch(recipe, index("scratch@0"), {"net", "small"}, set())
    assert [names[i] for i in batch] == ["scratch@0", "scratch@1"]
    assert [names[i] for i in needed_steps(recipe, index("kd@1"))] == ["teacher", "kd@1"]
    assert [names[i] for i in needed_steps(recipe, index("pruned"))] == [
        "teacher", "kd@0", "pruned"]


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_jobs_must_be_a_whole_number_from_one(jobs, tmp_path):
    with pytest.raises(ConfigError, match="jobs must be a whole number >= 1"):
        SideBySide(_recipe(), tmp_path, jobs, worker=None)


def _trained(out, names):
    return {n: safe_torch_load(out / "work" / f"{n}-{'kd' if n.startswith('kd') else 'train'}"
                               ".ckpt") for n in names}


def test_steps_trained_side_by_side_equal_those_trained_in_the_pipeline(tmp_path, capfd):
    """Two workers with 1 thread each train the seeds of both students; the pipeline then
    resumes each from its finished checkpoint. With 1 thread here too, the weights are the
    same bit for bit: a worker rebuilds the same data, the same initial weights (each seed's
    own) and the same teacher (resumed from its checkpoint)."""
    recipe = _recipe(tail=False, after_teacher=SPARSE)
    students = ["scratch@0", "scratch@1", "kd@0", "kd@1"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # the teacher trains here in both runs
    try:
        run_recipe(recipe, tmp_path / "here", progress=False, measure=False)
        side = run_recipe(recipe, tmp_path / "side", progress=True, measure=False, jobs=2)
    finally:
        torch.set_num_threads(threads)
    err = capfd.readouterr().err
    assert "[jobs] training 4 steps 2 at a time" in err and "kd@1 trained (epoch 1" in err
    a, b = _trained(tmp_path / "here", students), _trained(tmp_path / "side", students)
    for name in students:
        assert [h["threads"] for h in b[name]["history"]] == [1]
        for key, value in a[name]["model"].items():
            assert torch.equal(value, b[name]["model"][key]), (name, key)
    assert set(side.variants) >= set(students)
    # a second run finds every step finished: no worker starts
    run_recipe(recipe, tmp_path / "side", progress=True, measure=False, jobs=2)
    assert "[jobs]" not in capfd.readouterr().err


def test_seed_matched_students_start_from_the_same_weights(tmp_path, monkeypatch):
    """Each seed of a step trained from a recipe model starts from that model built under its
    seed; a scratch and a distilled student of one seed start from the same weights."""
    import optbench.pipeline.run as run_module

    recipe, _, ctx, variants = run_module.prepare(_recipe(), tmp_path)
    start = {}

    def record(parent, config, step_ctx, name):
        start[name] = parent.model.state_dict()["features.0.0.weight"].clone()
        return parent

    monkeypatch.setattr(run_module, "optimize", record)
    names = [s.name for s in recipe.steps]
    variants["teacher"] = variants["net"]
    for name in ("scratch@0", "scratch@1", "kd@0", "kd@1"):
        run_module.run_step(recipe, names.index(name), variants, ctx)
    assert torch.equal(start["scratch@0"], start["kd@0"])
    assert torch.equal(start["scratch@1"], start["kd@1"])
    assert not torch.equal(start["scratch@0"], start["scratch@1"])
    # seed 0 is the model as the recipe builds it, whatever the process drew before
    torch.rand(100)
    again = run_module.prepare(_recipe(), tmp_path)[3]["small"].model
    assert torch.equal(again.state_dict()["features.0.0.weight"], start["scratch@0"])


def test_students_distil_from_an_int8_teacher_file_side_by_side(tmp_path, capfd):
    """A distilled student's teacher may be the teacher's int8 step, run on onnxruntime. Each
    worker rebuilds that step (quantizing into OUT/work as the others do, each through a file
    of its own moved into place), and the students record the runtime they were taught on."""
    steps = [
        {"name": "teacher", "method": "train", "input": "net", "train": TRAIN},
        {"name": "teacher-int8", "method": "ptq-ort-static", "input": "teacher"},
        {"name": "kd", "method": "distill", "input": "small", "teacher": "teacher-int8",
         "teacher_runtime": "onnxruntime", "seeds": [0, 1], "train": TRAIN},
    ]
    result = run_recipe(Recipe.from_dict({**BASE, "steps": steps}), tmp_path, progress=True,
                        measure=False, jobs=2)
    assert "[jobs] training 2 steps 2 at a time" in capfd.readouterr().err
    for seed in (0, 1):
        assert result.variants[f"kd@{seed}"].info["config"]["teacher_runtime"] == "onnxruntime"
    work = tmp_path / "work"
    assert not [p.name for p in work.iterdir() if ".tmp." in p.name or ".pre." in p.name]
    assert (work / "teacher-int8-int8-minmax.onnx").is_file()
