"""Recipe targets: met or missed, by how much, and where the accuracy points went."""

import pytest
from results_factory import result, row, size

from optbench.errors import ConfigError
from optbench.pipeline import Recipe
from optbench.pipeline.targets import TargetSpec, evaluate_targets
from optbench.report.document import Document, to_markdown
from optbench.report.targets import target_blocks


def target_lines(targets):
    return to_markdown(Document("t", target_blocks(targets))).splitlines()


_row, _size = row, size
REPORT = result(
    rows=[_row("big", "torch-eager", 0.100), _row("big", "torch-compile", 0.050, est=2.0),
          _row("small", "onnxruntime", 0.004, est=25.0, ci=(24.0, 26.0))],
    quality={"big / torch-eager": {"top1_accuracy": 0.92, "n": 1000},
             "big / torch-compile": {"top1_accuracy": 0.92, "n": 1000},
             "mid / torch-eager": {"top1_accuracy": 0.90, "n": 1000},
             "small / onnxruntime": {"top1_accuracy": 0.885, "n": 1000}},
    sizes={"big": _size(100_000), "small": _size(4_000)},
    sections={"variants": {"small": {"lineage": ["net", "mid", "small"]}},
              "at_sizes": {"224": {"rows": [
                  _row("big", "torch-eager", 0.080, baseline="big / torch-eager"),
                  _row("small", "onnxruntime", 0.0041, est=19.5, ci=(19.0, 20.5),
                       baseline="big / torch-eager")]}}})


def _one(**fields):
    return evaluate_targets(REPORT, (TargetSpec(**fields),))[0]


def test_speedup_against_a_named_runtime_carries_the_measured_ci():
    t = _one(variant="small", reference="big", metric="speedup", at_least=20.0,
             reference_runtime="torch-eager")
    assert t["measured"] == pytest.approx(25.0) and t["met"] and t["ci95"] == [24.0, 26.0]


def test_speedup_against_the_fastest_reference_gets_its_ci_from_the_shared_rounds():
    t = _one(variant="small", reference="big", metric="speedup", at_least=20.0)
    assert t["measured"] == pytest.approx(12.5) and not t["met"]
    assert t["short_by"] == pytest.approx(7.5) and t["ci95"] == pytest.approx([12.5, 12.5])
    assert t["runtime"] == "onnxruntime" and t["reference_runtime_used"] == "torch-compile"


def test_a_ratio_between_two_non_baseline_rows_is_paired_by_round():
    """Neither row is the run's baseline, so the CI is computed from their own samples, paired
    by the interleaved round: a drift of the machine that slows both in a round cancels."""
    import numpy as np

    rng = np.random.default_rng(0)
    mood = 1.0 + 0.5 * rng.random(60)              # each round's slowdown, shared by both
    big = 0.050 * mood
    small = 0.004 * mood * (1.0 + 0.01 * rng.standard_normal(60))
    rows = [_row("big", "torch-eager", 0.1), _row("big", "torch-compile", 0.0, samples=big),
            _row("small", "onnxruntime", 0.0, samples=small)]
    spec = TargetSpec(variant="small", reference="big", metric="speedup", at_least=12.0)
    paired = evaluate_targets(result(rows=rows), (spec,))[0]
    low, high = paired["ci95"]
    assert low < paired["measured"] < high and (high - low) / paired["measured"] < 0.04
    assert paired["verdict"] == "met"
    shuffled = [*rows[:2], _row("small", "onnxruntime", 0.0, samples=rng.permutation(small))]
    unpaired = evaluate_targets(result(rows=shuffled), (spec,))[0]
    low_u, high_u = unpaired["ci95"]      # the pairing broken: the drift no longer cancels
    assert (high_u - low_u) > 3 * (high - low) and unpaired["verdict"] == "undecided"


def test_speedup_at_another_size_and_a_missing_size_is_said():
    t = _one(variant="small", reference="big", metric="speedup", at_least=20.0, size=224,
             reference_runtime="torch-eager")
    assert t["measured"] == pytest.approx(0.080 / 0.0041) and t["met"] is False
    assert t["verdict"] == "undecided"   # 19.51x, CI [19.0, 20.5] holds 20
    half, gap = 0.75, 20.0 - 0.080 / 0.0041
    assert t["more_evidence_factor"] == pytest.approx((half / gap) ** 2)
    lines = "\n".join(target_lines([t]))
    assert "contains the target 20; this run cannot tell" in lines and "**missed**" not in lines
    assert "undecided (needs about 2.4x the timing samples or processes)" in lines
    gone = _one(variant="small", reference="big", metric="speedup", at_least=20.0, size=512)
    assert gone["met"] is None and "extra_sizes" in gone["why"]


def test_an_estimate_on_the_target_up_to_rounding_asks_for_no_more_evidence():
    """2.5 points measured as 2.4999999999999996 (a difference of two accuracies in %): the
    1/sqrt(n) law would ask for ~1e28 times the test images; the verdict says the estimate
    sits on the target, and a merely huge factor is said as "over 1000x"."""
    from optbench.pipeline.targets import verdict

    on = verdict(2.4999999999999996, 2.5, [2.04, 2.96])
    assert on == {"verdict": "undecided", "more_evidence_factor": float("inf")}
    near = verdict(2.5 + 1e-4, 2.5, [2.04, 2.96])
    assert near["more_evidence_factor"] == pytest.approx((0.46 / 1e-4) ** 2)
    base = {"target": "a top-1 points vs b: >= +2.50", "variant": "a", "reference": "b",
            "metric": "accuracy_delta_points",
            "at_least": 2.5, "measured": 2.5, "met": True, "short_by": 0.0,
            "ci95": [2.04, 2.96], "verdict": "undecided"}
    text = "\n".join(target_lines([{**base, **on}, {**base, **near}]))
    assert "the estimate sits on the target" in text
    assert "needs over 1000x the test images: the estimate is all but on the target" in text
    assert "e+" not in text and "000000" not in text


def test_accuracy_shortfall_is_split_along_the_lineage():
    t = _one(variant="small", reference="big", metric="accuracy_delta_points", at_least=-1.5)
    assert t["measured"] == pytest.approx(-3.5) and t["short_by"] == pytest.approx(2.0)
    steps = [(b["from"], b["to"], round(b["points"], 6)) for b in t["breakdown"]]
    assert steps == [("big", "mid", -2.0), ("mid", "small", -1.5)]
    assert sum(b["points"] for b in t["breakdown"]) == pytest.approx(t["measured"])
    assert "big → mid -2.00; mid → small -1.50" in "\n".join(target_lines([t]))


def test_verdicts_have_three_values():
    met = _one(variant="small", reference="big", metric="speedup", at_least=20.0,
               reference_runtime="torch-eager")
    assert met["verdict"] == "met"        # 25x, CI [24, 26] above 20
    missed = _one(variant="small", reference="big", metric="speedup", at_least=30.0,
                  reference_runtime="torch-eager")
    assert missed["verdict"] == "missed" and "**missed**" in "\n".join(target_lines([missed]))
    no_ci = _one(variant="small", reference="big", metric="speedup", at_least=20.0)
    assert no_ci["verdict"] == "missed"   # one sample per row: a CI of one point, 12.5x


def _predictions(n_wrong_small: int, n_wrong_big: int, n: int = 1000) -> dict:
    import numpy as np

    labels = np.arange(n) % 10
    big, small = labels.copy(), labels.copy()
    big[:n_wrong_big] = (labels[:n_wrong_big] + 1) % 10
    small[:n_wrong_small] = (labels[:n_wrong_small] + 1) % 10
    # a report stores every entry's predictions; big's accuracy is its fastest runtime's
    return {"big / torch-eager": big, "big / torch-compile": big, "small / onnxruntime": small,
            "labels": labels}


def test_accuracy_targets_are_paired_tests_with_an_undecided_zone():
    from optbench.stats import mcnemar_exact_p

    def spec(at_least):
        return (TargetSpec(variant="small", reference="big", metric="accuracy_delta_points",
                           at_least=at_least),)

    # as in REPORT's quality: big 92.0%, small 88.5% on 1000 images; small is wrong on 35 more
    predictions = _predictions(115, 80)
    close = evaluate_targets(REPORT, spec(-3.0), predictions)[0]
    assert close["measured"] == pytest.approx(-3.5) and close["paired_n"] == 1000
    assert close["verdict"] == "undecided" and close["ci95"][0] < -3.0 < close["ci95"][1]
    assert close["mcnemar_p"] == pytest.approx(mcnemar_exact_p(35, 0))
    text = "\n".join(target_lines([close]))
    assert "x the test images)" in text and "seeds" not in text
    far = evaluate_targets(REPORT, spec(-1.5), predictions)[0]
    assert far["verdict"] == "missed" and far["ci95"][1] < -1.5
    without = evaluate_targets(REPORT, spec(-3.0))[0]
    assert without["verdict"] == "missed" and "ci95" not in without


def test_undecided_on_the_whole_test_split_says_more_images_are_not_the_way():
    import copy

    spec = (TargetSpec(variant="small", reference="big", metric="accuracy_delta_points",
                       at_least=-3.0),)
    whole = copy.deepcopy(REPORT)
    whole.sections.test_split = {"examples": 1000, "whole": True}
    t = evaluate_targets(whole, spec, _predictions(115, 80))[0]
    assert t["verdict"] == "undecided" and t["test_split_whole"] is True
    assert "x the test images, and every test image the data has was used" in "\n".join(
        target_lines([t]))
    top1 = evaluate_targets(whole, (TargetSpec(variant="big", metric="top1", at_least=92.5),))[0]
    assert top1["verdict"] == "undecided" and top1["test_split_whole"] is True
    subset = evaluate_targets(REPORT, spec, _predictions(115, 80))[0]   # no record: a subset
    assert subset["test_split_whole"] is False
    assert "every test image" not in "\n".join(target_lines([subset]))


def test_size_ratio():
    t = _one(variant="small", reference="big", metric="size_ratio", at_least=10.0)
    assert t["measured"] == pytest.approx(25.0) and t["met"]


RECIPE = """
[data]
dataset = "synthetic"
[models.net]
arch = "resnet18"
[[steps]]
name = "trained"
method = "train"
train = { epochs = 1 }
"""


def test_every_target_reference_is_compared_with_after_the_recipe_references(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('references = ["trained"]\n' + RECIPE
                    + '[[steps]]\nname = "onnx"\nmethod = "export-onnx"\n'
                    '[[steps]]\nname = "sparse"\nmethod = "prune-unstructured"\n'
                    '[[targets]]\nvariant = "sparse"\nreference = "onnx"\n'
                    '[[targets]]\nvariant = "onnx"\nreference = "trained"\n')
    recipe = Recipe.from_toml(path)
    assert recipe.references == ("trained",)
    assert recipe.compared_with == ("trained", "onnx")


@pytest.mark.parametrize("target, message", [
    ('variant = "nope"\nreference = "trained"', "not a measured variant"),
    ('variant = "trained"\nreference = "trained"\nmetric = "speed"', "metric"),
    ('variant = "trained"', "needs variant and reference"),
])
def test_bad_targets_fail_before_any_work(tmp_path, target, message):
    path = tmp_path / "r.toml"
    path.write_text(RECIPE + "[[targets]]\n" + target + "\n")
    with pytest.raises(ConfigError, match=message):
        Recipe.from_toml(path)


def test_accuracy_over_seeds_is_the_mean_with_a_paired_t_test():
    """Seed-matched students: the target is checked on the mean difference, its t CI over the
    seeds decides; each seed keeps its own McNemar test on the same test images."""
    import numpy as np

    accs = {"kd@0": 0.912, "kd@1": 0.915, "kd@2": 0.910,
            "scratch@0": 0.900, "scratch@1": 0.905, "scratch@2": 0.899}
    report = result(rows=[], quality={f"{n} / torch-eager": {"top1_accuracy": a, "n": 1000}
                                      for n, a in accs.items()})
    labels = np.zeros(1000, int)
    predictions = {"labels": labels, **{f"{n} / torch-eager": np.where(
        np.arange(1000) < round(a * 1000), 0, 1) for n, a in accs.items()}}
    spec = TargetSpec(variant="kd", reference="scratch", metric="accuracy_delta_points",
                      at_least=0.5, seeds=(0, 1, 2))
    t = evaluate_targets(report, (spec,), predictions)[0]
    deltas = [1.2, 1.0, 1.1]
    assert t["measured"] == pytest.approx(np.mean(deltas))
    assert [e["points"] for e in t["per_seed"]] == pytest.approx(deltas)
    # t(0.975, 2) = 4.303; sd 0.1 over 3 seeds
    half = 4.303 * 0.1 / np.sqrt(3)
    assert t["ci95"] == pytest.approx([1.1 - half, 1.1 + half], abs=1e-3)
    assert t["verdict"] == "met" and t["t_p"] < 0.01
    assert all(0 < e["mcnemar_p"] < 0.05 for e in t["per_seed"])
    assert "mean over seeds 0, 1, 2" in t["target"]
    assert "paired t over seeds p = " in "\n".join(target_lines([t]))
    # two seeds that disagree in sign: the CI holds the target, undecided
    report2 = result(rows=[], quality={f"{n} / torch-eager": {"top1_accuracy": a, "n": 1000}
                                       for n, a in {"kd@0": 0.91, "kd@1": 0.90, "scratch@0":
                                                    0.90, "scratch@1": 0.905}.items()})
    t2 = evaluate_targets(report2, (TargetSpec(variant="kd", reference="scratch",
                                               metric="accuracy_delta_points", at_least=0.0,
                                               seeds=(0, 1)),))[0]
    assert t2["verdict"] == "undecided" and t2["t_p"] > 0.05
    # how many seeds would decide it: only more seeds narrow a CI over seeds, and the t
    # quantile shrinks with them (SciPy's here, optbench.stats' own in the code)
    from scipy.stats import t as student

    needed, gap, sd = t2["seeds_to_decide"], abs(t2["measured"]), t2["sd"]

    def half(k):
        return student.ppf(0.975, k - 1) * sd / np.sqrt(k)

    assert half(needed) < gap <= half(needed - 1)
    assert t2["more_evidence_factor"] == pytest.approx(needed / 2)
    text = "\n".join(target_lines([t2]))
    assert f"needs about {needed} seeds at this spread" in text and "test images" not in text
    with pytest.raises(ConfigError, match="only accuracy targets"):
        TargetSpec(variant="kd", reference="scratch", metric="speedup", seeds=(0, 1))


def test_seeds_that_all_give_the_same_difference_leave_the_target_undecided():
    """Two seeds both +2.00 points (ties are common on small test splits): the t-interval
    would be a point and p = 0, yet the spread over seeds is unknown, not zero. No interval,
    no p-value, undecided, and the text says more seeds decide it, not how many."""
    from optbench.report.document import Document, to_markdown
    from optbench.report.render import build_document

    accs = {"kd@0": 0.92, "kd@1": 0.93, "scratch@0": 0.90, "scratch@1": 0.91}
    report = result(rows=[row(n, "torch-eager", 0.01) for n in accs],
                    quality={f"{n} / torch-eager": {"top1_accuracy": a, "n": 500}
                             for n, a in accs.items()})
    for at_least in (0.5, 3.0):   # a point estimate far above the target, or below it
        t = evaluate_targets(report, (TargetSpec(
            variant="kd", reference="scratch", metric="accuracy_delta_points",
            at_least=at_least, seeds=(0, 1)),))[0]
        assert t["measured"] == pytest.approx(2.0)
        assert t["verdict"] == "undecided" and t["spread_unknown"]
        assert "ci95" not in t and "t_p" not in t and "seeds_to_decide" not in t
        text = "\n".join(target_lines([t]))
        assert "both seeds gave the same difference" in text and "needs about" not in text
    report.sections.targets = [t]
    md = to_markdown(Document("r", build_document(report).blocks))
    assert "**undecided** (every seed +2.00 points" in md and "p = 0" not in md


def test_top1_target_needs_no_reference_and_carries_a_binomial_ci():
    t = _one(variant="big", metric="top1", at_least=90.0)
    half = 1.96 * (0.92 * 0.08 / 1000) ** 0.5 * 100
    assert t["measured"] == pytest.approx(92.0) and t["ci95"] == pytest.approx(
        [92.0 - half, 92.0 + half])
    assert t["verdict"] == "met" and t["target"] == "big top-1 (%) on the test split: >= 90"
    assert "92.00% [" in "\n".join(target_lines([t]))
    assert _one(variant="big", metric="top1", at_least=92.5)["verdict"] == "undecided"
    assert _one(variant="big", metric="top1", at_least=95.0)["verdict"] == "missed"
    with pytest.raises(ConfigError, match="needs variant and reference"):
        TargetSpec(variant="big", metric="speedup")


def test_a_shortfall_against_another_seed_passes_through_the_variants_own_seed():
    """pruned descends from kd@0; against scratch@3 the points go first from seed 3 to seed 0
    of scratch (the seed-to-seed spread), then from scratch@0 to kd@0; against an ancestor,
    the steps before it are not part of the path."""
    quality = {f"{name} / torch-eager": {"top1_accuracy": acc, "n": 1000} for name, acc in
               {"scratch@0": 0.900, "scratch@3": 0.905, "kd@0": 0.902, "pruned": 0.899}.items()}
    report = result(rows=[row("pruned", "torch-eager", 0.01)], quality=quality,
                    sections={"variants": {"pruned": {"lineage": ["net", "kd@0", "pruned"]}}})
    t, own = evaluate_targets(report, (
        TargetSpec(variant="pruned", reference="scratch@3", metric="accuracy_delta_points",
                   at_least=0.0),
        TargetSpec(variant="pruned", reference="kd@0", metric="accuracy_delta_points",
                   at_least=0.0)))
    steps = [(b["from"], b["to"], round(b["points"], 6)) for b in t["breakdown"]]
    assert steps == [("scratch@3", "scratch@0", -0.5), ("scratch@0", "kd@0", 0.2),
                     ("kd@0", "pruned", -0.3)]
    assert [b.get("another_seed", False) for b in t["breakdown"]] == [True, False, False]
    assert sum(b["points"] for b in t["breakdown"]) == pytest.approx(t["measured"])
    assert ("scratch@3 → scratch@0 -0.50 (another seed); scratch@0 → kd@0 +0.20"
            in "\n".join(target_lines([t])))
    assert [(b["from"], b["to"]) for b in own["breakdown"]] == [("kd@0", "pruned")]


def test_the_breakdown_between_two_seeds_of_one_step_is_one_step():
    """trained@1 against trained@0, with the untrained net measured too: one step from seed 0
    to seed 1 (the root net shared by both is not a step), summing to the measured delta."""
    quality = {f"{name} / torch-eager": {"top1_accuracy": acc, "n": 1000} for name, acc in
               {"net": 0.10, "trained@0": 0.90, "trained@1": 0.88}.items()}
    report = result(rows=[row("net", "torch-eager", 0.01)], quality=quality,
                    sections={"variants": {"trained@0": {"lineage": ["net", "trained@0"]},
                                           "trained@1": {"lineage": ["net", "trained@1"]}}})
    (t,) = evaluate_targets(report, (TargetSpec(
        variant="trained@1", reference="trained@0", metric="accuracy_delta_points",
        at_least=0.0),))
    assert [(b["from"], b["to"]) for b in t["breakdown"]] == [("trained@0", "trained@1")]
    assert t["breakdown"][0]["another_seed"]
    assert t["breakdown"][0]["points"] == pytest.approx(t["measured"]) == pytest.approx(-2.0)


def test_optbench_report_checks_saved_targets_again_and_says_where(tmp_path):
    """`optbench report DIR` re-checks the targets from the stored measurements with today's
    code (a report keeps its verdicts otherwise, e.g. an older breakdown), rewrites report.json
    only when that changes them, and says where; paired accuracy targets are not re-checked
    without their predictions.npz."""
    import copy
    import json

    from optbench.report import rerender
    from optbench.report.store import save_bench, save_predictions
    from optbench.results import load_report

    specs = (TargetSpec(variant="small", reference="big", metric="speedup", at_least=20.0,
                        reference_runtime="torch-eager"),
             TargetSpec(variant="small", reference="big", metric="accuracy_delta_points",
                        at_least=-3.0))
    predictions = _predictions(115, 80)
    saved = copy.deepcopy(REPORT)
    saved.sections.targets = evaluate_targets(saved, specs, predictions)
    current = copy.deepcopy(saved.sections.targets)
    stale = saved.sections.targets
    stale[1]["breakdown"] = [{"from": "net", "to": "small", "points": -3.5}]  # older code's
    stale[0].update(verdict="missed", met=False)
    save_bench(saved, tmp_path, stem="report")
    save_predictions(predictions, tmp_path / "predictions.npz")

    paths = rerender(tmp_path)
    stored = load_report(tmp_path / "report.json").sections
    assert "json" in paths and stored.targets == current
    assert set(stored.targets_checked) >= {"git_commit", "date", "command"}
    assert "Checked again by" in (tmp_path / "report.md").read_text()
    before = (tmp_path / "report.json").read_text()
    assert "json" not in rerender(tmp_path)          # nothing more to change
    assert (tmp_path / "report.json").read_text() == before

    saved.sections.targets = copy.deepcopy(stale)    # stale again, without its predictions
    save_bench(saved, tmp_path, stem="report")
    (tmp_path / "predictions.npz").unlink()
    assert "json" not in rerender(tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["sections"]["targets"] == \
        json.loads(json.dumps(stale))
    assert "Checked again by" not in (tmp_path / "report.md").read_text()
