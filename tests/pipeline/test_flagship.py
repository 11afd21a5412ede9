"""The flagship recipe's --quick run, end to end on real Fashion-MNIST (a few minutes)."""

import importlib.util
import json
from pathlib import Path

import pytest
from browser import assert_not_blank, console_errors_and_screenshot, images_loaded, needs_chromium

from optbench.cli import main

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "fashion_resnet50_to_mobilenet.toml"


@pytest.fixture(scope="module")
def run(fashion_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("flagship")
    args = ["run", str(RECIPE), "--quick", "--out", str(out)]
    if importlib.util.find_spec("mlflow"):  # the dev extra installs it; CI has it
        args.append("--mlflow")
    assert main(args) == 0
    return out


def test_quick_run_writes_every_report_file(run):
    for name in ("report.json", "report.csv", "report.md", "report.html", "state.json"):
        assert (run / name).is_file(), name
    data = json.loads((run / "report.json").read_text())
    variants = data["sections"]["variants"]
    assert variants["student-int8-pt2e"]["lineage"] == [
        "mobilenet_v2", "student-kd@0", "student-pruned", "student-int8-pt2e"]
    # [quick] seeds = [0, 1]: two seeds of each student
    assert {"teacher", "student-scratch@0", "student-scratch@1", "student-kd@0", "student-kd@1",
            "student-qat", "student-int8-ort", "student-onnx", "teacher-onnx"} <= set(variants)
    assert variants["student-kd@1"]["info"]["teacher_logits"].startswith("per batch")
    # the distilling steps are taught by the teacher's int8 ONNX file, on ONNX Runtime
    for step in ("student-kd@1", "student-pruned", "student-qat"):
        config = variants[step]["info"]["config"]
        assert config["teacher"] == "teacher-int8", step
    assert variants["student-kd@1"]["info"]["config"]["teacher_runtime"] == "onnxruntime"
    assert "teacher-int8" not in variants   # used, not measured
    refs = data["sections"]["references"]
    assert {(c["variant"], c["reference"]) for c in refs} >= {
        ("student-int8-ort", "teacher"), ("student-int8-ort", "student-scratch@1"),
        ("student-int8-ort", "teacher-onnx")}   # a target's reference, compared with too
    md = (run / "report.md").read_text()
    assert "## Against the references" in md and "## Diagnosis" in md
    assert "## Seeds" in md and "## Training runs" in md
    targets = {(t["metric"], t["variant"], t["reference"], tuple(t.get("seeds", ()))): t
               for t in data["sections"]["targets"]}
    assert len(targets) == 14 and "### Targets" in md
    assert targets[("size_ratio", "student-int8-ort", "teacher", ())]["measured"] > 1
    assert "breakdown" in targets[("accuracy_delta_points", "student-int8-ort", "teacher", ())]
    over = targets[("accuracy_delta_points", "student-kd", "student-scratch", (0, 1))]
    # a paired t-test over the seeds, or, where the barely trained quick students tie on
    # every seed (they often do), undecided without one
    assert len(over["per_seed"]) == 2
    assert "t_p" in over or (over["spread_unknown"] and over["verdict"] == "undecided")
    top1 = targets[("top1", "teacher", "", ())]
    assert top1["measured"] == pytest.approx(100 * max(   # its most accurate runtime's
        q["top1_accuracy"] for k, q in data["quality"].items() if k.startswith("teacher /")))
    assert top1["ci95"][0] < top1["measured"] < top1["ci95"][1] and top1["n"] == 500
    # the quick run has no 224x224 pass: the 224 target is said to be unmeasured
    assert "224" in targets[("speedup", "student-int8-ort", "teacher", ())]["why"]


def test_quick_run_reports_robustness_and_per_class(run):
    data = json.loads((run / "report.json").read_text())
    assert not data["sections"].get("at_sizes")   # [quick] has no other-size pass
    rob = data["sections"]["robustness"]
    assert rob["student-kd@0"]["mode"] == "white-box"
    assert rob["student-int8-ort"]["mode"] == "transfer from student-pruned"
    assert set(rob["student-int8-ort"]["accuracy"]) == {"0.0", "0.01", "0.03"}
    per_class = data["quality"]["student-int8-ort / onnxruntime"]["per_class_accuracy"]
    assert len(per_class) == len(data["sections"]["class_names"]) == 10
    # [quick] tests on a subset: an undecided accuracy target may still ask for more images
    assert data["sections"]["test_split"] == {"examples": 500, "whole": False}
    md = (run / "report.md").read_text()
    for heading in ("## Who pays for compression",
                    "## Robustness: accuracy under attack"):
        assert heading in md


def test_quick_run_writes_servable_artifacts(run):
    import torch

    from optbench.artifact import load_artifact

    art = load_artifact(run / "artifacts" / "student-int8-ort" / "manifest.json")
    assert art.manifest.lineage[-1] == "student-int8-ort"
    assert art.manifest.metrics["top1_accuracy"] is not None
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    assert art.predict(art.preprocess_images(images)).shape == (2, 10)


@needs_chromium
def test_quick_report_opens_in_chromium(run, tmp_path):
    loaded, total = images_loaded(run / "report.html", tmp_path)
    # accuracy vs latency, size, latency distributions, training curves; no throughput-vs-batch
    # plot: the quick run times one batch size
    assert total == 4 and loaded == total
    errors, pixels = console_errors_and_screenshot(run / "report.html", tmp_path)
    assert errors == []
    assert_not_blank(pixels)


def test_quick_run_is_logged_to_mlflow_per_variant(run):
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.MlflowClient(str(run / "mlruns"))  # the default store: OUT/mlruns
    runs = client.search_runs([client.get_experiment_by_name("optbench").experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    report = json.loads((run / "report.json").read_text())
    assert set(by_name) == {run.name, *report["sections"]["variants"]}
    deployed = by_name["student-int8-ort"].data
    assert deployed.params["method"] == "ptq-ort-static"
    assert deployed.metrics["top1_accuracy"] == pytest.approx(
        report["quality"]["student-int8-ort / onnxruntime"]["top1_accuracy"])
    assert "vs.teacher.speedup.b1" in deployed.metrics
    files = client.list_artifacts(by_name["student-int8-ort"].info.run_id, "artifact")
    assert "artifact/manifest.json" in {f.path for f in files}
