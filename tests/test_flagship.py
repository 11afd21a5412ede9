"""The flagship recipe's --quick run, end to end on real Fashion-MNIST (a few minutes)."""

import json
from pathlib import Path

import pytest
from browser import assert_not_blank, console_errors_and_screenshot, images_loaded, needs_chromium

from optbench.cli import main

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fashion_resnet50_to_mobilenet.toml"


@pytest.fixture(scope="module")
def run(fashion_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("flagship")
    assert main(["run", str(RECIPE), "--quick", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_every_report_file(run):
    for name in ("report.json", "report.csv", "report.md", "report.html", "state.json"):
        assert (run / name).is_file(), name
    data = json.loads((run / "report.json").read_text())
    variants = data["extra"]["variants"]
    assert variants["student-int8-pt2e"]["lineage"] == [
        "mobilenet_v2", "student-kd", "student-pruned", "student-int8-pt2e"]
    assert {"teacher", "student-scratch", "student-kd", "student-qat",
            "student-int8-ort", "student-onnx"} <= set(variants)
    refs = data["extra"]["references"]
    assert {(c["variant"], c["reference"]) for c in refs} >= {
        ("student-int8-ort", "teacher"), ("student-int8-ort", "student-scratch")}
    md = (run / "report.md").read_text()
    assert "## Against the references" in md and "## Diagnosis" in md


@needs_chromium
def test_quick_report_opens_in_chromium(run, tmp_path):
    loaded, total = images_loaded(run / "report.html", tmp_path)
    assert total == 4 and loaded == total
    errors, pixels = console_errors_and_screenshot(run / "report.html", tmp_path)
    assert errors == []
    assert_not_blank(pixels)
