"""Seeds (recipe `seeds = [...]` on a training step): one model per seed, seed-matched
downstream steps and targets, and the report's Seeds section with mean ± sd."""

import pytest
import torch

from optbench.errors import ConfigError
from optbench.pipeline import Recipe, run_recipe

BASE = {
    "data": {"dataset": "synthetic", "image_size": 16},
    "models": {"net": {"arch": "resnet18"}, "small": {"arch": "mobilenet_v2"}},
    "bench": {"runtimes": ["torch-eager"], "batch_sizes": [2], "min_time_s": 0.05,
              "max_time_s": 0.2},
}
TRAIN = {"epochs": 1, "batch_size": 64, "lr": 0.05, "max_steps_per_epoch": 2}


def _recipe(steps, **extra):
    return Recipe.from_dict({**BASE, "steps": steps, **extra})


def test_seeded_steps_expand_and_downstream_steps_follow_their_seed():
    recipe = _recipe([
        {"name": "teacher", "method": "train", "input": "net", "seeds": [0, 1],
         "train": TRAIN},
        {"name": "int8", "method": "ptq-ort-static"},                 # input: previous step
        {"name": "kd", "method": "distill", "input": "small", "teacher": "teacher",
         "train": TRAIN},
        {"name": "one", "method": "prune-unstructured", "input": "teacher@1", "ratio": 0.5},
    ], references=["teacher"],
        targets=[{"variant": "kd", "reference": "teacher", "metric": "accuracy_delta_points"},
                 {"variant": "one", "reference": "teacher", "metric": "size_ratio"}])
    steps = {s.name: s for s in recipe.steps}
    assert list(steps) == ["teacher@0", "teacher@1", "int8@0", "int8@1", "kd@0", "kd@1", "one"]
    assert [steps[f"teacher@{s}"].config.train.seed for s in (0, 1)] == [0, 1]
    assert steps["teacher@0"].input == "net"
    assert steps["int8@1"].input == "teacher@1"
    assert steps["kd@1"].input == "small" and steps["kd@1"].config.teacher == "teacher@1"
    assert [steps[f"kd@{s}"].config.train.seed for s in (0, 1)] == [0, 1]   # seed-matched
    assert steps["one"].input == "teacher@1"
    assert recipe.references == ("teacher@0", "teacher@1")
    assert [(t.variant, t.reference, t.seeds) for t in recipe.targets] == [
        ("kd@0", "teacher@0", ()), ("kd@1", "teacher@1", ()), ("kd", "teacher", (0, 1)),
        ("one", "teacher@0", ()), ("one", "teacher@1", ())]


@pytest.mark.parametrize("steps, message", [
    ([{"name": "t", "method": "train", "seeds": 3, "train": TRAIN}], "list of distinct"),
    ([{"name": "t", "method": "train", "seeds": [1, 1], "train": TRAIN}], "list of distinct"),
    ([{"name": "q", "method": "ptq-ort-static", "seeds": [0, 1]}], "need a training step"),
    ([{"name": "a", "method": "train", "input": "net", "seeds": [0, 1], "train": TRAIN},
      {"name": "b", "method": "train", "input": "small", "seeds": [2, 3], "train": TRAIN},
      {"name": "kd", "method": "distill", "input": "b", "teacher": "a", "train": TRAIN}],
     "do not match"),
    ([{"name": "t", "method": "train", "seeds": [0], "train": TRAIN},
      {"name": "p", "method": "prune-unstructured", "input": "t@5"}], "not a model or an earlier"),
    ([{"name": "t", "method": "train", "seeds": [0, 1], "timed_seeds": [2], "train": TRAIN}],
     r"timed_seeds \[2\] are not among the step's seeds \[0, 1\]"),
    ([{"name": "t", "method": "train", "seeds": [0, 1], "timed_seeds": [], "train": TRAIN}],
     "non-empty list"),
    ([{"name": "t", "method": "train", "timed_seeds": [0], "train": TRAIN}],
     "this step has no seeds"),
    ([{"name": "t", "method": "train", "timed": "no", "train": TRAIN}], "true or false"),
    ([{"name": "t", "method": "train", "seeds": [0, 1], "timed_seeds": [0], "timed": False,
       "train": TRAIN}], "not both"),
])
def test_bad_seeds_are_explained(steps, message):
    with pytest.raises(ConfigError, match=message):
        _recipe(steps)


def test_each_seed_trains_its_own_model_and_the_report_shows_mean_and_sd(tmp_path):
    recipe = _recipe([{"name": "trained", "method": "train", "input": "net", "seeds": [0, 1],
                       "train": TRAIN}])
    result = run_recipe(recipe, tmp_path / "out", progress=False)
    a, b = (result.variants[f"trained@{s}"].model.state_dict() for s in (0, 1))
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    assert (tmp_path / "out" / "work" / "trained@1-train.ckpt").is_file() or any(
        "trained@1" in p.name for p in (tmp_path / "out" / "work").iterdir())
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Seeds" in text
    accs = [result.bench.accuracy(f"trained@{s}") * 100 for s in (0, 1)]
    row = next(line for line in text.splitlines() if line.startswith("| trained |"))
    assert f"0: {accs[0]:.2f}" in row and f"1: {accs[1]:.2f}" in row
    assert f"{sum(accs) / 2:.2f} ± " in row


def test_timed_seeds_time_one_seed_and_measure_the_others_for_accuracy(tmp_path):
    """timed_seeds = [0]: seed 1 is evaluated but never timed (no rows, no extra-size pass,
    no speed target), and the Seeds section and accuracy targets still count it. Like [bench],
    it leaves the fingerprint that finished training is kept under as it was. (Which runtime
    an untimed seed's accuracy is read on: test_results.)"""
    steps = [{"name": "trained", "method": "train", "input": "net", "seeds": [0, 1],
              "train": TRAIN}]
    plain = _recipe(steps)
    recipe = _recipe([{**steps[0], "timed_seeds": [0]}], measure_models=["net"],
                     bench={**BASE["bench"], "extra_sizes": [24]},
                     targets=[{"variant": "trained@1", "reference": "trained@0",
                               "metric": "accuracy_delta_points", "at_least": -50.0},
                              {"variant": "trained", "reference": "net", "metric": "speedup",
                               "batch_size": 2, "at_least": 0.01}])
    assert [s.timed for s in recipe.steps] == [True, False]
    assert recipe.fingerprint() == plain.fingerprint()
    assert [(t.variant, t.metric) for t in recipe.targets] == [
        ("trained@1", "accuracy_delta_points"), ("trained@0", "speedup")]
    result = run_recipe(recipe, tmp_path / "out", progress=False)
    bench = result.bench
    assert {r.variant for r in bench.rows} == {"net", "trained@0"}
    assert {r.variant for r in bench.sections.at_sizes[24].rows} == {"net", "trained@0"}
    assert [q.variant for q in bench.quality.values()] == ["net", "trained@0", "trained@1"]
    assert bench.accuracy_only() == ["trained@1"]
    accuracy, speed = bench.sections.targets
    assert accuracy["measured"] is not None and accuracy["met"]
    assert speed["measured"] is not None, speed
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Timed: trained seed 0. Their other seeds have no latency rows" in text
    row = next(line for line in text.splitlines() if line.startswith("| trained |"))
    assert f"1: {bench.accuracy('trained@1') * 100:.2f}" in row


def test_a_speed_target_on_an_untimed_seed_is_refused():
    with pytest.raises(ConfigError, match="measured for accuracy only"):
        _recipe([{"name": "t", "method": "train", "input": "net", "seeds": [0, 1],
                  "timed_seeds": [0], "train": TRAIN}],
                targets=[{"variant": "t@1", "reference": "net", "metric": "speedup"}],
                measure_models=["net"])
