import importlib
import json
import sys
from pathlib import Path

import pytest

from optbench.cli import main
from optbench.errors import ConfigError
from optbench.pipeline import Recipe, run_recipe

RECIPE = """
references = ["trained"]

[data]
dataset = "synthetic"
image_size = 16

[models.net]
arch = "resnet18"

[bench]
runtimes = ["torch-eager", "onnxruntime"]
batch_sizes = [2]
min_time_s = 0.05
max_time_s = 0.3

[[steps]]
name = "trained"
method = "train"
train = { epochs = 2, batch_size = 64, lr = 0.05, max_steps_per_epoch = 3 }

[[steps]]
name = "sparse"
method = "prune-unstructured"
ratio = 0.5

[[steps]]
name = "onnx"
method = "export-onnx"
input = "trained"
parity_examples = 64
"""


def _write(tmp_path, text=RECIPE):
    path = tmp_path / "recipe.toml"
    path.write_text(text)
    return path


def test_recipe_runs_keeps_lineage_and_resumes(tmp_path):
    recipe = Recipe.from_toml(_write(tmp_path))
    out = tmp_path / "out"
    result = run_recipe(recipe, out, progress=False)
    assert result.variants["sparse"].lineage == ("net", "trained", "sparse")
    assert result.variants["onnx"].lineage == ("net", "trained", "onnx")
    entries = {r.entry for r in result.bench.rows}
    # torch modules run on the torch runtimes; ONNX Runtime measures what the export step made
    assert entries == {"trained / torch-eager", "sparse / torch-eager", "onnx / onnxruntime"}
    assert result.bench.sizes["sparse"].sparsity == pytest.approx(0.5, abs=0.02)
    refs = {(c["variant"], c["reference"]): c for c in result.bench.sections.references}
    assert ("trained", "trained") not in refs  # a reference is not compared with itself
    onnx = refs[("onnx", "trained")]
    assert onnx["size_ratio"] == pytest.approx(1.0, rel=0.02)  # same fp32 weights
    assert abs(onnx["accuracy_delta_points"]) < 1e-9  # an fp32 export predicts the same
    quality = result.bench.quality  # agreement is measured against each variant's parent
    assert quality["onnx / onnxruntime"].agreement_with == "trained / torch-eager"
    assert quality["trained / torch-eager"].agreement_with == "trained / torch-eager"
    assert quality["onnx / onnxruntime"].agreement["top1_agreement"] == 1.0
    state = json.loads((out / "state.json").read_text())
    assert list(state["finished"]) == ["trained", "sparse", "onnx"]
    # a re-run finds the finished training checkpoint and does not train again
    again = run_recipe(recipe, out, progress=False, measure=False)
    history = again.variants["trained"].info["history"]
    assert len(history) == 2
    from optbench.io import safe_torch_load

    assert safe_torch_load(out / "work" / "trained-train.ckpt")["history"] == history


def test_other_recipe_in_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    run_recipe(Recipe.from_toml(_write(tmp_path)), out, progress=False, measure=False)
    other = Recipe.from_toml(_write(tmp_path, RECIPE.replace("ratio = 0.5", "ratio = 0.7")))
    with pytest.raises(ConfigError, match="different recipe.*--recipe-changed"):
        run_recipe(other, out, progress=False, measure=False)
    # an earlier version of the recipe: its finished training resumes, nothing retrains
    ckpt = out / "work" / "trained-train.ckpt"
    written = ckpt.stat().st_mtime_ns
    run_recipe(other, out, progress=False, measure=False, recipe_changed=True)
    assert ckpt.stat().st_mtime_ns == written
    state = json.loads((out / "state.json").read_text())
    assert state["fingerprint"] == other.fingerprint() and state["earlier_fingerprints"]


@pytest.mark.parametrize("change,message", [
    (("method = \"prune-unstructured\"", "method = \"prune-magic\""), "registered methods are"),
    (("ratio = 0.5", "rate = 0.5"), "unknown field.*'rate'"),
    (("ratio = 0.5", "ratio = 1.5"), "ratio must lie in"),
    (("input = \"trained\"", "input = \"nowhere\""), "takes input 'nowhere'"),
    (("arch = \"resnet18\"", "arch = \"vgg\""), r"\[models.net\].*arch must be one of"),
    (("batch_sizes = [2]", "batch_sizes = [0]"), r"\[bench\].*batch_sizes"),
    (("[data]", "[dataa]"), "unknown section"),
    (("name = \"sparse\"", "name = \"trained\""), "used twice"),
    (("[data]", "[search]\ninputs = [\"nowhere\"]\n[data]"), r"\[search\] inputs names"),
    (("references = [\"trained\"]", "references = [\"net\"]"), "not a measured variant"),
])
def test_bad_recipes_fail_before_any_work(tmp_path, change, message, capsys):
    path = _write(tmp_path, RECIPE.replace(*change))
    with pytest.raises(ConfigError, match=message):
        Recipe.from_toml(path)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert not out.exists()
    assert "optbench: error:" in capsys.readouterr().err


def test_invalid_toml_is_explained(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        Recipe.from_toml(_write(tmp_path, "[data\n"))


def test_shipped_recipes_are_valid():
    from pathlib import Path

    recipes = sorted(Path(__file__).resolve().parents[2].glob("recipes/*.toml"))
    assert recipes
    for path in recipes:
        Recipe.from_toml(path)


def test_the_composition_recipe_trains_its_teacher_as_the_flagship_does():
    """The composition recipe says: copy the flagship's teacher checkpoint in and it resumes.
    It only does if the data, the model and the training config are the flagship's (a
    checkpoint written with another training config is refused): a drift is caught here."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "recipes"
    flagship = Recipe.from_toml(root / "fashion_resnet50_to_mobilenet.toml")

    def teacher(recipe):
        step = next(s for s in recipe.steps if s.name == "teacher")
        return step.to_dict(), recipe.models[step.input].to_dict()

    composition = sorted(root.glob("composition_*.toml"))
    assert len(composition) >= 5
    for path in composition:
        other = Recipe.from_toml(path)
        assert teacher(other) == teacher(flagship), path.name
        assert other.data.to_dict() == flagship.data.to_dict(), path.name


def test_no_quick_run_of_a_shipped_recipe_trains_in_bf16():
    """The quick runs are CI's end-to-end checks, on whatever CPU CI has: none may train in
    explicit bf16 (emulated, slow and warning on an AVX2-only CPU); the full recipes may."""
    import dataclasses
    from pathlib import Path

    from optbench.train import TrainConfig

    root = Path(__file__).resolve().parents[2] / "recipes"
    checked = 0
    for path in sorted(root.glob("*.toml")):
        if "[quick]" not in path.read_text():
            continue
        for step in Recipe.from_toml(path, quick=True).steps:
            for field in dataclasses.fields(step.config):
                value = getattr(step.config, field.name)
                if isinstance(value, TrainConfig):
                    checked += 1
                    assert value.precision != "bf16", (path.name, step.name, field.name)
    assert checked >= 10   # the flagship's and the composition's training steps among them


def test_quick_overrides_data_bench_and_every_training_config(tmp_path):
    text = RECIPE + """
[quick]
data = { image_size = 8 }
bench = { batch_sizes = [1] }
train = { epochs = 1, max_steps_per_epoch = 1 }
"""
    path = _write(tmp_path, text)
    full, quick = Recipe.from_toml(path), Recipe.from_toml(path, quick=True)
    assert full.data.image_size == 16 and quick.data.image_size == 8
    assert quick.bench.batch_sizes == (1,) and quick.bench.input_shape == (1, 8, 8)
    assert full.steps[0].config.train.epochs == 2
    assert quick.steps[0].config.train.epochs == 1
    assert quick.steps[0].config.train.max_steps_per_epoch == 1
    assert quick.steps[0].config.train.lr == 0.05  # untouched fields stay
    assert quick.fingerprint() != full.fingerprint()  # their runs cannot mix
    with pytest.raises(ConfigError, match="no \\[quick\\] section"):
        Recipe.from_toml(_write(tmp_path, RECIPE), quick=True)


def test_run_without_measuring_says_so(tmp_path, capsys):
    assert main(["run", str(_write(tmp_path)), "--out", str(tmp_path / "out"),
                 "--no-measure"]) == 0
    assert "ran 3 steps; no variant measured" in capsys.readouterr().out
    assert not (tmp_path / "out" / "report.json").exists()


def test_no_committed_results_folder_pins_a_recipe():
    """`make demo` writes into results/flagship-quick; a committed state.json there would hold
    an old recipe's fingerprint and make the README's main command refuse the folder."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    listed = subprocess.run(["git", "ls-files", "results"], cwd=root, capture_output=True,
                            text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    assert not [p for p in listed.stdout.split() if Path(p).name == "state.json"]


@pytest.fixture(scope="module")
def measured_with_size(tmp_path_factory):
    """A recipe with a second input size, run and measured once; its folder is copied by each
    test that changes it."""
    folder = tmp_path_factory.mktemp("stages")
    text = RECIPE.replace("max_time_s = 0.3", "max_time_s = 0.3\nextra_sizes = [24]\n"
                          "extra_batch_sizes = [1]")
    recipe = Recipe.from_toml(_write(folder, text))
    run_recipe(recipe, folder / "out", progress=False)
    return recipe, folder / "out"


def _copy_cut_short(out, tmp_path, edit=None):
    """A copy of a measured folder whose report lost its last stage (at24), as if the sitting
    ended before it; `edit(report dict)` changes it further."""
    import shutil

    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    report = json.loads((copy / "report.json").read_text())
    del report["sections"]["at_sizes"]
    del report["sections"]["stages"]["at24"]
    if edit:
        edit(report)
    (copy / "report.json").write_text(json.dumps(report))
    return copy


def test_every_stage_records_where_it_ran(measured_with_size):
    _, out = measured_with_size
    stages = json.loads((out / "report.json").read_text())["sections"]["stages"]
    assert list(stages) == ["measurement", "at24"]
    for stage in stages.values():
        assert {"git_commit", "date", "command", "cpu_model"} <= set(stage)
    assert "sittings" not in (out / "report.md").read_text()   # one sitting: nothing to say


def test_resume_measurement_runs_only_the_missing_stages(measured_with_size, tmp_path,
                                                         monkeypatch):
    recipe, out = measured_with_size
    copy = _copy_cut_short(out, tmp_path)
    before = json.loads((copy / "report.json").read_text())

    def no_remeasure(*args, **kwargs):
        raise AssertionError("the finished measurement was run again")

    import optbench.pipeline.run as run_module

    monkeypatch.setattr(run_module, "measure_variants", no_remeasure)
    monkeypatch.setattr(run_module, "stage_provenance",
                        lambda: {"git_commit": "f" * 40, "date": "later", "command": "resumed",
                                 "cpu_model": "same"})
    result = run_recipe(recipe, copy, progress=False, resume_measurement=True)
    after = json.loads((copy / "report.json").read_text())
    assert after["rows"] == before["rows"] and after["quality"] == before["quality"]
    assert after["sections"]["stages"]["measurement"] == before["sections"]["stages"][
        "measurement"]
    assert after["sections"]["stages"]["at24"]["command"] == "resumed"
    assert result.bench.sections.at_sizes[24].rows           # the missing stage ran
    assert result.bench.predictions                          # kept for the targets' tests
    assert "Measured in 2 sittings" in (copy / "report.md").read_text()


@pytest.mark.parametrize("edit,error,message", [
    (lambda r: r["env"].update(cpu_model="Another CPU"), ConfigError, "another machine kind"),
    (lambda r: r["sections"].update(recipe_fingerprint="0" * 16), ConfigError,
     "different recipe"),
    (lambda r: r["sections"]["variants"].pop("sparse"), ConfigError, "this recipe measures"),
])
def test_resume_measurement_refuses_what_cannot_be_kept(measured_with_size, tmp_path, edit,
                                                         error, message):
    recipe, out = measured_with_size
    copy = _copy_cut_short(out, tmp_path, edit)
    kept = (copy / "report.json").read_bytes()
    with pytest.raises(error, match=message):
        run_recipe(recipe, copy, progress=False, resume_measurement=True)
    assert (copy / "report.json").read_bytes() == kept   # nothing lost


def test_resume_measurement_without_a_report_says_so(tmp_path):
    from optbench.errors import MissingInputError

    recipe = Recipe.from_toml(_write(tmp_path))
    with pytest.raises(MissingInputError, match="no measurement to resume"):
        run_recipe(recipe, tmp_path / "out", progress=False, resume_measurement=True)


def test_a_report_from_before_stages_were_recorded_resumes_with_their_dates(
        measured_with_size, tmp_path):
    """Its stages all ran in the sitting its env describes: the measurement ended when the env
    was taken, the last stage when the file was written."""
    import datetime as dt
    import os
    import shutil

    recipe, out = measured_with_size
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    report = json.loads((copy / "report.json").read_text())
    del report["sections"]["stages"]
    (copy / "report.json").write_text(json.dumps(report))
    written = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    os.utime(copy / "report.json", (written.timestamp(), written.timestamp()))
    result = run_recipe(recipe, copy, progress=False, resume_measurement=True)
    stages = result.bench.sections.stages
    assert stages["measurement"]["date"] == report["env"]["date"]
    assert stages["at24"]["date"] == "2026-01-02T03:04:05+00:00"
    assert stages["at24"]["git_commit"] == report["env"]["git_commit"]
    kept = json.loads((copy / "report.json").read_text())["sections"]["at_sizes"]
    assert kept == report["sections"]["at_sizes"]   # kept, not measured again


def test_a_first_stage_cut_short_resumes_from_its_finished_timing_processes(tmp_path,
                                                                            monkeypatch):
    """processes = 2: the sitting ends during the second timing process, before any report
    was written; --resume-measurement times only the second one, the stage records both, and
    the kept processes are removed once the report holds them."""
    bench_module = importlib.import_module("optbench.bench")   # optbench.bench is also a function

    calls = []

    def in_this_process(setting, instead, fn, *args):   # the worker, without the spawn
        calls.append(fn.__name__)
        if fn.__name__ == "_timing_worker" and calls.count("_timing_worker") == 2:
            raise KeyboardInterrupt("the sitting ended")
        return fn(*args)

    monkeypatch.setattr(bench_module, "_in_fresh_process", in_this_process)
    recipe = Recipe.from_toml(_write(tmp_path, RECIPE.replace(
        "max_time_s = 0.3", "max_time_s = 0.3\nprocesses = 2")))
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out, progress=False)
    assert not (out / "report.json").exists()
    assert [p.name for p in (out / "work" / "timing" / "measurement").iterdir()] == [
        "process-1.json"]
    calls.clear()
    result = run_recipe(recipe, out, progress=False, resume_measurement=True)
    assert calls.count("_timing_worker") == 1
    stage = result.bench.sections.stages["measurement"]
    assert [(p["process"], p["reused"]) for p in stage["processes"]] == [(1, True), (2, False)]
    assert all(r.measurement.processes == 2 for r in result.bench.rows)
    assert not (out / "work" / "timing" / "measurement").exists()
    assert "its timing processes: 1 at" in (out / "report.md").read_text()


def test_until_stops_after_a_step_and_a_run_elsewhere_resumes_from_its_parts(tmp_path,
                                                                              capsys):
    """What scripts/gpu_train.sh does on a lent GPU, here on the CPU: `--until` trains the
    steps up to one and stops, unmeasured; checkpoint_parts.py slims that step's checkpoint
    to float16 and cuts it into parts with SHA-256 sums; joined into another run folder, the
    full run resumes from it (no training) and its report says how the weights were kept."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import checkpoint_parts

    recipe_path = _write(tmp_path)
    device_run = tmp_path / "device-run"
    assert main(["run", str(recipe_path), "--out", str(device_run), "--until", "trained"]) == 0
    assert "stopped there, unmeasured" in capsys.readouterr().out
    state = json.loads((device_run / "state.json").read_text())
    assert list(state["finished"]) == ["trained"] and not (device_run / "report.json").exists()

    handed_back = tmp_path / "out"
    manifest = checkpoint_parts.split(device_run / "work" / "trained-train.ckpt", handed_back,
                                      part_mib=0.1)
    assert len(manifest["parts"]) > 1 and manifest["slim"]["dtype"] == "float16"
    local = tmp_path / "local"
    ckpt = local / "work" / "trained-train.ckpt"
    ckpt.parent.mkdir(parents=True)
    checkpoint_parts.join(handed_back, ckpt)
    with pytest.raises(ConfigError, match="exists"):   # a run's checkpoint is not overwritten
        checkpoint_parts.join(handed_back, ckpt)
    first = handed_back / manifest["parts"][0]["file"]
    first.write_bytes(first.read_bytes()[:-1])
    with pytest.raises(ConfigError, match="SHA-256"):
        checkpoint_parts.join(handed_back, local / "other.ckpt")

    result = run_recipe(Recipe.from_toml(recipe_path), local, progress=False)
    history = result.variants["trained"].info["history"]
    assert len(history) == 2 and history[-1]["weights_stored_as"] == "float16"
    assert "weights kept as float16" in (local / "report.md").read_text()


@pytest.mark.parametrize("kwargs,message", [
    ({"until": "nope"}, "no step of that name; its steps are trained, sparse, onnx"),
    ({"train_device": "tpu"}, "use cpu, cuda or cuda:N"),
    ({"train_device": "cuda:x"}, "use cpu, cuda or cuda:N"),
])
def test_until_and_train_device_refuse_what_they_cannot_do(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        run_recipe(Recipe.from_toml(_write(tmp_path)), tmp_path / "out", progress=False,
                   **kwargs)
    assert not (tmp_path / "out" / "state.json").exists()   # refused before any work


def test_training_on_cuda_without_one_says_where_to_train(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device (the cuda test trains there)")
    with pytest.raises(ConfigError, match="no CUDA device.*gpu_train.sh"):
        run_recipe(Recipe.from_toml(_write(tmp_path)), tmp_path / "out", progress=False,
                   train_device="cuda")


@pytest.mark.cuda
def test_training_steps_train_on_cuda_and_the_variants_come_back_to_the_cpu(tmp_path):
    result = run_recipe(Recipe.from_toml(_write(tmp_path)), tmp_path / "out", progress=False,
                        train_device="cuda", until="trained")
    from optbench.env import device_name

    history = result.variants["trained"].info["history"]
    assert len(history) == 2 and {h["device"] for h in history} == {device_name("cuda")}
    assert all(p.device.type == "cpu" for p in result.variants["trained"].model.parameters())
