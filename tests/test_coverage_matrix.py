"""The coverage matrix's fast subset: every cell is ok or a clear OptbenchError, never a crash
(scripts/coverage.py; the full matrix is committed in results/coverage/)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_fast_subset_has_no_crash_cell(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/coverage.py"), "--models", "ci",
                           "--methods", "ci", "--out", str(tmp_path), "--cell-timeout", "240"],
                          capture_output=True, text=True, timeout=900)
    report = json.loads((tmp_path / "coverage.json").read_text())
    cells = [c for cells in report["models"].values() for c in cells]
    assert len(cells) == 6, proc.stderr[-2000:]
    outcomes = {(model, c["method"]): c["outcome"]
                for model, model_cells in report["models"].items() for c in model_cells}
    assert outcomes == {(model, method): ("error" if (model, method) == (
        "shufflenet_v2_x0_5", "prune-structured") else "ok")
        for model in ("mobilenet_v3_small", "shufflenet_v2_x0_5")
        for method in ("prune-structured", "ptq-ort-static", "export-onnx")}, cells
    assert proc.returncode == 0
    shuffle = {c["method"]: c for c in report["models"]["shufflenet_v2_x0_5"]}
    error = shuffle["prune-structured"]
    assert error["error"] == "UnsupportedModelError"
    assert "channel split" in error["detail"] and "prune-unstructured" in error["detail"]
    for c in cells:
        if c["outcome"] == "ok" and c["method"] != "prune-structured":
            assert c["agreement"] >= 0.9 and c["size_ratio"] > 0.5 and c["speedup_b1"] > 0
    md = (tmp_path / "coverage.md").read_text()
    assert "| prune-structured | 1 | 1 | 0 | 0 |" in md and "scripts/coverage.py" in md
