"""The results model: typed rows, quality and sections; version 2 on disk, version 1 still
loads; every committed report loads and round-trips."""

import json
from pathlib import Path

import pytest
from results_factory import result, row

from optbench.errors import ConfigError
from optbench.results import REPORT_VERSION, BenchResult, RowKey, VariantFacts, load_report

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "results").glob("*/report.json")) + sorted(
    (ROOT / "results").glob("*/*/result.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_report_loads_and_round_trips(path):
    stored = json.loads(path.read_text())
    loaded = load_report(path)
    data = loaded.to_dict()
    assert data["version"] == REPORT_VERSION
    assert BenchResult.from_dict(json.loads(json.dumps(data))).to_dict() == data
    # the figures are the ones stored, not recomputed
    for old, new in zip(stored["rows"], data["rows"], strict=True):
        assert new["measurement"]["stats"] == old["measurement"]["stats"]
        assert new["speedup"] == old["speedup"]


def test_version_1_sections_move_out_of_extra():
    v1 = json.loads((ROOT / "results/flagship-first-edition/report.json").read_text())
    assert "version" not in v1 and "extra" in v1
    r = BenchResult.from_dict(v1)
    assert r.sections.references == v1["extra"]["references"]
    assert r.sections.targets == v1["extra"]["targets"]
    assert r.sections.class_names == v1["extra"]["class_names"]
    assert set(r.sections.at_sizes) == {int(k) for k in v1["extra"]["at_sizes"]}
    record = r.sections.variants["student-int8-ort"]
    assert record.lineage[-1] == "student-int8-ort" and record.facts.int8
    assert record.facts.method == "ptq-ort-static"
    assert record.to_dict() == v1["extra"]["variants"]["student-int8-ort"]


def test_the_earliest_files_are_keyed_by_runtime_and_load_under_entry_labels():
    demo = load_report(ROOT / "results/demo/report.json")
    assert {r.variant for r in demo.rows} == {demo.label}
    assert set(demo.quality) == {r.entry for r in demo.rows}
    assert demo.sections.training is not None and demo.sections.training.history


def test_rows_are_keyed_by_variant_runtime_batch_and_size():
    r = load_report(ROOT / "results/flagship/report.json")
    keys = {row.key for row in r.rows}
    assert len(keys) == len(r.rows)
    assert RowKey("teacher", "torch-eager", 1, 32) in keys
    first = load_report(ROOT / "results/flagship-first-edition/report.json")
    at224 = first.sections.at_sizes[224].rows[0].key
    assert at224.size == 224


def test_a_newer_version_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="upgrade optbench"):
        BenchResult.from_dict({"version": REPORT_VERSION + 1, "rows": [], "label": "x",
                               "config": {}, "env": {}})
    with pytest.raises(ConfigError, match="not an optbench report: no rows"):
        BenchResult.from_dict({"label": "x", "config": {}, "env": {}})


def test_a_missing_or_broken_file_says_what_to_do(tmp_path):
    from optbench.errors import MissingInputError

    with pytest.raises(MissingInputError, match="optbench run"):
        load_report(tmp_path / "report.json")
    (tmp_path / "report.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_report(tmp_path / "report.json")


def test_variant_facts_keep_what_they_do_not_name():
    info = {"int8": True, "ops": {"conv": 3}, "history": [1, 2], "backend": "fx",
            "warnings": ["w"]}
    facts = VariantFacts.from_info(info)
    assert facts.int8 and facts.ops == {"conv": 3} and facts.warnings == ("w",)
    assert facts.other == {"history": [1, 2], "backend": "fx"}
    assert facts.to_info() == info


def test_an_empty_diagnosis_survives_the_round_trip():
    r = result([row("a", "torch-eager", 0.01)], sections={"diagnosis": []})
    assert r.sections.diagnosis == []
    assert BenchResult.from_dict(r.to_dict()).sections.diagnosis == []


def test_best_and_first_quality_are_per_variant():
    r = result([row("a", "torch-eager", 0.01), row("a", "onnxruntime", 0.005)],
               quality={"a / torch-eager": {"top1_accuracy": 0.80, "n": 10},
                        "a / onnxruntime": {"top1_accuracy": 0.90, "n": 10}})
    assert r.accuracy("a") == 0.90 and r.accuracy("b") is None
    assert r.first_quality()["a"].runtime == "torch-eager"


def test_an_untimed_seed_is_read_on_the_runtime_its_timed_seed_deploys_on():
    """timed_seeds = [0]: k@1 has accuracy on both runtimes but no rows; it is read where k@0
    runs fastest (ONNX Runtime), not on its first evaluated runtime; a variant of no seeded
    step with no rows keeps its first entry."""
    quality = {f"{v} / {rt}": {"top1_accuracy": acc, "n": 10} for v, rt, acc in [
        ("k@0", "torch-eager", 0.80), ("k@0", "onnxruntime", 0.81),
        ("k@1", "torch-eager", 0.70), ("k@1", "onnxruntime", 0.71),
        ("lone", "torch-eager", 0.60), ("lone", "onnxruntime", 0.61)]}
    r = result([row("k@0", "torch-eager", 0.01), row("k@0", "onnxruntime", 0.005)],
               quality=quality)
    deployed = r.deployed_quality()
    assert deployed["k@0"].runtime == deployed["k@1"].runtime == "onnxruntime"
    assert r.accuracy("k@1") == 0.71
    assert deployed["lone"].runtime == "torch-eager"
    assert r.accuracy_only() == ["k@1", "lone"]


def test_a_variants_accuracy_is_that_of_the_runtime_it_runs_fastest_on():
    """One int8 file can score differently on two runtimes: the variant's accuracy must not
    come from one runtime while its speed comes from another."""
    quality = {"a / onnxruntime": {"top1_accuracy": 0.92, "n": 10},
               "a / openvino": {"top1_accuracy": 0.91, "n": 10}}
    r = result([row("a", "onnxruntime", 0.002), row("a", "openvino", 0.001)], quality=quality)
    assert r.accuracy("a") == 0.91
    assert r.deployed_quality()["a"].runtime == "openvino"
    # the smallest batch decides when runtimes swap places across batch sizes
    r = result([row("a", "onnxruntime", 0.002), row("a", "openvino", 0.001),
                row("a", "onnxruntime", 0.010, batch=8), row("a", "openvino", 0.020, batch=8)],
               quality=quality)
    assert r.accuracy("a") == 0.91
    # a variant that was evaluated but not timed keeps its first entry, not the best
    r = result([row("b", "torch-eager", 0.01)], quality=quality)
    assert r.accuracy("a") == 0.92


def test_an_artifacts_manifest_states_the_accuracy_of_the_runtime_that_serves_it():
    """An ONNX int8 file timed fastest on OpenVINO is still served by ONNX Runtime: its
    manifest gives ONNX Runtime's accuracy, the report the deployed runtime's."""
    from optbench.pipeline.run import variant_figures

    r = result([row("a", "onnxruntime", 0.002), row("a", "openvino", 0.001)],
               quality={"a / onnxruntime": {"top1_accuracy": 0.92, "n": 10},
                        "a / openvino": {"top1_accuracy": 0.91, "n": 10}})
    assert variant_figures(r, "a", "onnxruntime")["top1_accuracy"] == 0.92
    assert r.accuracy("a") == 0.91
    assert variant_figures(r, "b", "onnxruntime")["top1_accuracy"] is None


def test_split_seed_reads_only_the_names_seeded_steps_get():
    """`NAME@SEED` is one seed of a seeded step (pipeline.recipe.expand_seeds names them);
    a name that merely contains the separator is a variant of its own."""
    from optbench.pipeline.recipe import expand_seeds
    from optbench.results import split_seed

    steps, _ = expand_seeds([{"name": "kd", "method": "train", "seeds": [0, 7]}], "m", "t")
    assert [split_seed(s["name"]) for s in steps] == [("kd", 0), ("kd", 7)]
    assert split_seed("kd@-1") == ("kd", -1)
    for name in ("kd", "kd@best", "@3", "kd@"):
        assert split_seed(name) == (name, None)
