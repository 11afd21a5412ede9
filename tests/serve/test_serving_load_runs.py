"""The serving load benchmark must keep running: a short run with a tiny artifact through the
real server and hey (no speed asserted; the numbers live in results/serving/)."""

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.mark.skipif(shutil.which("hey") is None, reason="hey is not installed (apt-get install "
                    "-y hey)")
def test_load_benchmark_runs_both_designs(tmp_path, fashion_dir):
    import serving_load
    from serve_helpers import onnx_artifact

    manifest = onnx_artifact(tmp_path, "tiny")
    out = tmp_path / "out"
    assert serving_load.main([str(manifest), "--requests", "100", "--clients", "1,4",
                              "--out", str(out)]) == 0
    data = json.loads((out / "load.json").read_text())
    rows = {(r["design"], r["clients"]): r for r in data["rows"]}
    assert set(rows) == {("naive", 1), ("batched", 1), ("naive", 4), ("batched", 4)}
    assert all(r["errors"] == 0 and r["requests"] == 100 for r in rows.values())
    assert rows[("naive", 4)]["mean_batch"] == 1.0  # one request, one forward pass
    assert "| batched | 4 |" in (out / "load.md").read_text()
