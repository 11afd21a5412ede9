"""--mlflow against a real MLflow file store: what the report says is what MLflow holds. The
recipe also times its variants at a second input size ([bench] extra_sizes), the pass the
flagship's full run makes at 224x224."""

import json
import sys

import pytest
from test_pipeline import RECIPE

from optbench.cli import main
from optbench.errors import MissingInputError, RuntimeUnavailableError
from optbench.io import sha256_file
from optbench.tracking import ROLE_TAG, log_results

mlflow = pytest.importorskip("mlflow")

AT24 = RECIPE.replace("max_time_s = 0.3\n", "max_time_s = 0.3\nextra_sizes = [24]\n"
                      "extra_batch_sizes = [1]\n")
assert AT24 != RECIPE


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking")
    (root / "recipe.toml").write_text(AT24)
    out, store = root / "out", root / "store"
    assert main(["run", str(root / "recipe.toml"), "--out", str(out), "--mlflow", str(store),
                 "--mlflow-experiment", "unit"]) == 0
    client = mlflow.MlflowClient(str(store))
    exp = client.get_experiment_by_name("unit")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    return out, store, client, runs


def test_one_pipeline_run_and_one_nested_run_per_variant(logged):
    out, _, client, runs = logged
    parent = runs["out"]
    assert parent.data.tags[ROLE_TAG] == "pipeline"
    variants = {name: run for name, run in runs.items() if name != "out"}
    assert set(variants) == {"trained", "sparse", "onnx"}
    for run in variants.values():
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
    logged_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.json", "report.md", "report.html", "report.csv"} <= logged_files
    assert parent.data.tags["optbench.report_sha256"] == sha256_file(out / "report.json")


def test_metrics_and_params_are_the_reports_numbers(logged):
    out, _, _, runs = logged
    report = json.loads((out / "report.json").read_text())
    sparse = runs["sparse"].data
    assert sparse.params["method"] == "prune-unstructured"
    assert sparse.params["config.ratio"] == "0.5"
    assert sparse.params["lineage"] == "net > trained > sparse"
    row = next(r for r in report["rows"] if r["entry"] == "sparse / torch-eager")
    assert sparse.metrics["latency_median_ms.torch-eager.b2"] == pytest.approx(
        row["measurement"]["stats"]["median_s"] * 1e3)
    assert sparse.metrics["size.sparsity"] == pytest.approx(report["sizes"]["sparse"]["sparsity"])
    onnx = runs["onnx"].data
    assert onnx.metrics["top1_accuracy"] == pytest.approx(
        report["quality"]["onnx / onnxruntime"]["top1_accuracy"])
    ref = next(c for c in report["sections"]["references"] if c["variant"] == "onnx")
    assert onnx.metrics["vs.trained.size_ratio"] == pytest.approx(ref["size_ratio"])


def test_the_other_size_pass_is_reported_and_logged(logged):
    out, _, _, runs = logged
    report = json.loads((out / "report.json").read_text())
    at24 = report["sections"]["at_sizes"]["24"]
    assert {r["variant"] for r in at24["rows"]} == {"trained", "sparse", "onnx"}
    assert all(r["measurement"]["spec"]["input_shape"][-2:] == [24, 24] and
               r["batch_size"] == 1 for r in at24["rows"])
    assert {c["variant"] for c in at24["references"]} == {"sparse", "onnx"}
    # the ONNX variant was exported again at 24x24 (its graph fixes the spatial size)
    exported = list((out / "work" / "at24").rglob("*.onnx"))
    assert exported
    from onnx import load as load_onnx

    for path in exported:
        dims = load_onnx(str(path), load_external_data=False).graph.input[0].type.tensor_type
        assert [d.dim_value for d in dims.shape.dim][-2:] == [24, 24], path
    assert "## Latency at 24x24" in (out / "report.md").read_text()
    onnx = runs["onnx"].data.metrics
    assert onnx["at24.latency_median_ms.onnxruntime.b1"] == pytest.approx(next(
        r["measurement"]["stats"]["median_s"] * 1e3 for r in at24["rows"]
        if r["entry"] == "onnx / onnxruntime"))


def test_the_onnx_variant_carries_its_deployable_artifact(logged):
    out, _, client, runs = logged
    files = {a.path for a in client.list_artifacts(runs["onnx"].info.run_id, "artifact")}
    assert "artifact/manifest.json" in files
    manifest = json.loads((out / "artifacts" / "onnx" / "manifest.json").read_text())
    assert {f"artifact/{name}" for name in manifest["files"]} <= files


def test_logging_the_same_report_again_adds_nothing(logged):
    out, store, client, runs = logged
    again = log_results(out, str(store), experiment="unit")
    assert again.already_logged and again.parent_run_id == runs["out"].info.run_id
    exp = client.get_experiment_by_name("unit")
    assert len(client.search_runs([exp.experiment_id])) == len(runs)
    assert set(again.variant_runs) == {"trained", "sparse", "onnx"}


def test_mlflow_with_no_measure_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "r.toml").write_text(RECIPE)
    code = main(["run", str(tmp_path / "r.toml"), "--out", str(tmp_path / "o"), "--no-measure",
                 "--mlflow"])
    assert code == 2 and "--no-measure" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_missing_mlflow_and_missing_report_are_explained(tmp_path, monkeypatch):
    with pytest.raises(MissingInputError, match="report.json"):
        log_results(tmp_path)
    (tmp_path / "report.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(RuntimeUnavailableError, match=r"optbench\[mlflow\]"):
        log_results(tmp_path)


def test_seeded_names_become_keys_mlflow_accepts():
    from optbench.tracking import mlflow_key

    assert mlflow_key("vs.student-scratch@0.speedup.b1") == "vs.student-scratch_seed0.speedup.b1"
    assert mlflow_key("at224.latency_p50_ms.openvino.b1") == "at224.latency_p50_ms.openvino.b1"
    assert mlflow_key("a+b=c") == "a_b_c"
