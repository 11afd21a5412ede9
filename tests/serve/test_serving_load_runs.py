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
        # sized for 50 ms queries, a ~1 ms server ends before the minimum duration: the run is
        # repeated once, sized from what it measured, and that one meets the duration
        short = run_scenario(png, "single", expected_ms=50, calibrate=False)
        assert short["min_duration_met"] is False and short["result"] == "INVALID"
        sized = run_scenario(png, "single", expected_ms=50)
        assert sized["min_duration_met"] is True and "calibrated_from" in sized
        assert sized["requests_ok"] > short["requests_ok"]
        search = find_peak_rate(spec, bound_ms=50, low_qps=20, high_qps=200, steps=2)
        assert len(search["runs"]) == 2
        out = tmp_path / "offline.json"
        assert main(["loadtest", url, "--model", "tiny", "--scenario", "offline",
                     "--duration-s", "0.3", "--connections", "4", "--out", str(out)]) == 0
        assert json.loads(out.read_text())["requests_ok"] > 0
        assert main(["loadtest", url, "--model", "nope", "--scenario", "single"]) == 2


def test_loadgen_report_checks_the_targets_at_equal_runtime_threads():
    """The LoadGen matrix's report: served/raw compares with the raw runtime at the server's
    total runtime threads (2 workers x 1 thread against 2 threads), the tail target reads the
    batched v2 run at 80% of the peak, and an error in any bisection run misses the error
    target."""
    import serving_loadgen

    raw = {"1": {"1": 100.0, "32": 400.0}, "2": {"1": 180.0, "32": 800.0}}
    meta = {"artifact": "a/manifest.json", "command": "x", "commit": "abc", "cpu": "cpu",
            "isa": {"avx2": True}, "cpus": 2, "threads": 1, "raw_target": 0.5}
    where = {"design": "batched", "path": "v2-binary"}
    rows = [{**where, "workers": 1, "scenario": "offline", "samples_per_s": 300.0,
             "p50_ms": 5.0, "p99_ms": 9.0},
            {**where, "workers": 2, "scenario": "offline", "samples_per_s": 300.0,
             "p50_ms": 5.0, "p99_ms": 9.0},
            {**where, "workers": 1, "scenario": "server-peak", "bound_ms": 15.0,
             "target_qps": 250.0, "p50_ms": 4.0, "p99_ms": 14.0, "tried_qps": [200.0, 250.0],
             "tried_errors": 0, "tried_min_requests": 10_000},
            {**where, "workers": 1, "scenario": "server-80%", "bound_ms": 15.0,
             "completed_qps": 200.0, "p50_ms": 4.0, "p99_ms": 13.0, "requests_ok": 10_000,
             "request_errors": {}}]
    text = serving_loadgen.render(rows, raw, meta)
    assert "v2-binary Offline: 0.75 (target ≥ 0.5): **met**" in text          # 300 / 400
    assert "2 worker(s), v2-binary Offline: 0.38 (target ≥ 0.5): **missed**" in text  # / 800
    assert "p99/p50 = 3.25 (target ≤ 3): **missed**" in text
    assert "over all 3 Server-scenario runs (each ≥ 10,000 requests): 0: **met**" in text
    rows[2]["tried_errors"] = 1
    assert "runs (each ≥ 10,000 requests): 1: **missed**" in serving_loadgen.render(rows, raw,
                                                                                   meta)


def test_a_run_too_short_is_repeated_sized_from_the_fastest_run_so_far(monkeypatch):
    """A calibrated SingleStream run that ends before LoadGen's minimum duration is repeated,
    each repeat sized from the fastest mean latency seen so far (a first run slowed by a cold
    server or a busy CPU must not size the next one), at most twice; Offline alike by rate."""
    from optbench import loadtest

    runs = {"single": [9.0, 2.0, 3.0, 1.0], "offline": [100.0, 400.0, 300.0]}
    seen = []

    def fake_run(spec, scenario, target_qps, bound_ms, expected_ms, requests, server_pids):
        seen.append(expected_ms if scenario == "single" else target_qps)
        value = runs[scenario].pop(0)
        key = "mean_ms" if scenario == "single" else "samples_per_s"
        return {key: value, "wall_s": 0.1, "min_duration_met": value == 3.0}

    monkeypatch.setattr(loadtest, "_run_once", fake_run)
    spec = loadtest.LoadSpec("http://x", "m")
    m = loadtest._CALIBRATION_MARGIN
    out = loadtest.run_scenario(spec, "single", expected_ms=50, requests=[("p", b"", {})])
    # 9 ms sizes the 2nd run; the 2nd (2 ms, faster) sizes the 3rd, which meets the duration
    assert seen == [50, m * 9.0, m * 2.0] and out["mean_ms"] == 3.0
    assert [r["mean_ms"] for r in out["calibrated_from"]] == [9.0, 2.0]
    seen.clear()
    out = loadtest.run_scenario(spec, "offline", target_qps=50, requests=[("p", b"", {})])
    assert seen == [50, 100.0 / m, 400.0 / m] and out["samples_per_s"] == 300.0
    # never more than the allowed repeats, and without calibration never a repeat
    runs["single"] = [5.0, 4.0, 3.5, 3.2]
    seen.clear()
    out = loadtest.run_scenario(spec, "single", requests=[("p", b"", {})])
    assert len(seen) == 1 + loadtest._CALIBRATION_REPEATS and out["min_duration_met"] is False
    seen.clear()
    assert "calibrated_from" not in loadtest.run_scenario(spec, "single", calibrate=False,
                                                          requests=[("p", b"", {})])
    assert len(seen) == 1


def test_loadgen_summary_says_which_condition_failed():
    from optbench.loadtest import parse_summary

    text = """Scenario : SingleStream
Result is : INVALID
  Min duration satisfied : NO
  Min queries satisfied : Yes
  Early stopping satisfied: Yes
50.00 percentile latency (ns)   : 2002068
99.00 percentile latency (ns)   : 3910542
"""
    out = parse_summary(text)
    assert out["valid"] is False and out["min_duration_met"] is False
    assert out["min_queries_met"] is True and out["early_stopping_met"] is True
    assert out["p50_ms"] == 2.002068 and out["p99_ms"] == 3.910542


@pytest.mark.parametrize("folder", sorted(p.parent for p in (Path(__file__).resolve()
                                                           .parents[2] / "results/serving")
                                          .rglob("loadgen.json")))
def test_committed_loadgen_tables_are_the_rendering_of_their_json(folder):
    import serving_loadgen

    assert (folder / "loadgen.md").read_text() == serving_loadgen.rerender(folder), \
        f"python benchmarks/serving_loadgen.py {folder} --rerender"


def test_cpu_meter_counts_each_server_process_once():
    """A server with 2 workers: the supervisor and both workers listen on the port and the
    workers are also the supervisor's children; each must be counted once (they were counted
    twice, so 2-worker servers showed more cores than the machine has)."""
    import subprocess

    from optbench.loadtest import _CpuMeter

    code = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(60)']); print(c.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        meter = _CpuMeter((parent.pid, child))
        assert sorted(p.pid for p in meter.servers) == sorted([parent.pid, child])
    finally:
        import psutil

        for p in psutil.Process(parent.pid).children(recursive=True):
            p.kill()
        parent.kill()
        parent.wait()


def test_loadgen_sender_reads_every_response_shape_and_counts_failures():
    """The generator's own HTTP/1.1 client against a scripted server: a sized body, a chunked
    body, an error status that closes the connection, and a connection dropped without an
    answer. Every query is reported to LoadGen once, and each outcome is counted."""
    import asyncio
    import threading
    from types import SimpleNamespace

    from optbench.loadtest import LoadSpec, _Sender

    answers = [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n"
               b"0\r\n\r\n",
               b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 2\r\n"
               b"\r\nno",
               None, None]   # dropped twice: the query is retried once, then counted
    seen, port, ready = [], [], threading.Event()

    async def handle(reader, writer):
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return writer.close()
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            seen.append(await reader.readexactly(length))
            answer = answers[len(seen) - 1]
            if answer is None:
                return writer.close()
            writer.write(answer)
            if b"close" in answer:
                return writer.close()

    def run_server():
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()

    threading.Thread(target=run_server, daemon=True).start()
    ready.wait(5)
    done, finished = [], threading.Event()

    def complete(responses):
        done.extend(r.id for r in responses)
        if len(done) == 4:
            finished.set()

    lg = SimpleNamespace(QuerySamplesComplete=complete,
                         QuerySampleResponse=lambda qid, ptr, size: SimpleNamespace(id=qid))
    spec = LoadSpec(f"http://127.0.0.1:{port[0]}", "m", connections=1, timeout_s=5)
    sender = _Sender(spec, [("/x", b"body!", {"content-type": "a/b"})], lg)
    try:
        for qid in range(4):   # one connection: the queries go in order
            sender.issue([SimpleNamespace(id=qid, index=0)])
        assert finished.wait(10), f"only {done} reported"
    finally:
        sender.close()
    assert sorted(done) == [0, 1, 2, 3] and seen == [b"body!"] * 5
    assert sender.ok == 2 and sender.errors == {"HTTP 503": 1, "IncompleteReadError": 1}
