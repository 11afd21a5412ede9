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


def test_loadgen_scenarios_drive_a_live_server(tmp_path):
    """MLPerf LoadGen through optbench.loadtest: Server (Poisson), SingleStream and Offline runs
    over v2 binary tensors and v1 PNG, with every query answered and counted; the peak-rate
    search bisects. No speed is asserted."""
    from live_server import serve
    from serve_helpers import onnx_artifact

    from optbench.cli import main
    from optbench.loadtest import LoadSpec, find_peak_rate, run_scenario

    manifest = onnx_artifact(tmp_path, "tiny")
    with serve([manifest]) as url:
        spec = LoadSpec(url, "tiny", connections=8, samples=16, duration_s=0.5, min_queries=100)
        server = run_scenario(spec, "server", target_qps=200, bound_ms=50)
        assert server["requests_ok"] >= 100 and server["request_errors"] == {}
        assert server["p50_ms"] <= server["p99_ms"] and server["result"] in ("VALID", "INVALID")
        assert server["generator_cores"] > 0
        png = LoadSpec(url, "tiny", path="v1-png", connections=2, samples=4, duration_s=0.3,
                       min_queries=20)
        single = run_scenario(png, "single")
        assert single["requests_ok"] >= 20 and single["request_errors"] == {}
        search = find_peak_rate(spec, bound_ms=50, low_qps=20, high_qps=200, steps=2)
        assert len(search["runs"]) == 2
        out = tmp_path / "offline.json"
        assert main(["loadtest", url, "--model", "tiny", "--scenario", "offline",
                     "--duration-s", "0.3", "--connections", "4", "--out", str(out)]) == 0
        assert json.loads(out.read_text())["requests_ok"] > 0
        assert main(["loadtest", url, "--model", "nope", "--scenario", "single"]) == 2
