"""Load a running optbench server the way MLPerf Inference does: LoadGen decides when each query
is sent (SingleStream: one at a time; Server: Poisson arrivals at a target rate; Offline: all at
once) and measures each latency from the moment it *should* have been sent, so a slow server
cannot slow the generator down and hide its own tail (no coordinated omission, unlike `hey -c N`).

    from optbench.loadtest import LoadSpec, run_scenario, find_peak_rate
    spec = LoadSpec("http://127.0.0.1:8000", "student", path="v2-binary")
    run_scenario(spec, "server", target_qps=500, bound_ms=15)
    find_peak_rate(spec, bound_ms=15)     # the highest rate whose p99 stays under 15 ms

Queries go over HTTP from one event loop holding a pool of keep-alive connections. The
generator shares the machine with the server on a small VM: its CPU is measured and reported
beside the result, because a saturated generator would cap the rate it can offer.
Needs `pip install mlcommons-loadgen` (the `loadtest` extra).
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import io
import json
import re
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

from optbench.config import Config, check_choice, check_positive
from optbench.errors import ConfigError, MissingInputError, OptbenchError

PATHS = ("v2-binary", "v2-json", "v1-png", "v1-json")
SCENARIOS = ("single", "server", "offline")


@dataclasses.dataclass(frozen=True)
class LoadSpec(Config):
    url: str = "http://127.0.0.1:8000"
    model: str = ""
    path: str = "v2-binary"       # which request body: see PATHS
    connections: int = 64         # sender threads (one keep-alive connection each)
    samples: int = 256            # distinct request bodies, cycled
    duration_s: float = 10.0      # LoadGen's minimum duration per run
    min_queries: int = 10_000     # and minimum query count (Server, SingleStream)
    timeout_s: float = 30.0
    seed: int = 0

    def __post_init__(self):
        check_choice("LoadSpec", "path", self.path, PATHS)
        check_positive("LoadSpec", connections=self.connections, samples=self.samples,
                       duration_s=self.duration_s, timeout_s=self.timeout_s)
        if not self.model:
            raise ConfigError("LoadSpec.model: name the served model (GET /v1/models lists them)")


class LoadTestError(OptbenchError):
    """The server could not be loaded as asked (unreachable, unknown model)."""


def _import_loadgen():
    try:
        import mlperf_loadgen
    except ImportError:
        raise MissingInputError("optbench loadtest needs MLPerf LoadGen: "
                                "pip install 'optbench[loadtest]' (mlcommons-loadgen)") from None
    return mlperf_loadgen


def build_requests(spec: LoadSpec) -> list[tuple[str, bytes, dict]]:
    """`samples` request (path, body, headers) triples for the model, from its metadata."""
    meta = _get_json(spec, f"/v1/models/{urllib.parse.quote(spec.model)}")
    shape = tuple(meta["input_shape"])
    rng = np.random.default_rng(spec.seed)
    out = []
    for _ in range(spec.samples):
        if spec.path == "v1-png":
            out.append((f"/v1/models/{spec.model}/predict", _png(rng, shape),
                        {"content-type": "image/png"}))
            continue
        x = rng.standard_normal((1, *shape)).astype(np.float32)
        if spec.path == "v1-json":
            body = json.dumps({"inputs": x.tolist()}).encode()
            out.append((f"/v1/models/{spec.model}/predict", body,
                        {"content-type": "application/json"}))
            continue
        binary = spec.path == "v2-binary"
        tensor = {"name": "input", "shape": list(x.shape), "datatype": "FP32"}
        if binary:
            tensor["parameters"] = {"binary_data_size": x.nbytes}
        else:
            tensor["data"] = x.ravel().tolist()
        header = json.dumps({"inputs": [tensor], "outputs": [
            {"name": "probabilities", "parameters": {"binary_data": binary}}]}).encode()
        headers = {"content-type": "application/octet-stream" if binary
                   else "application/json"}
        if binary:
            headers["inference-header-content-length"] = str(len(header))
        out.append((f"/v2/models/{spec.model}/infer",
                    header + (x.astype("<f4").tobytes() if binary else b""), headers))
    return out


def _png(rng, shape) -> bytes:
    from PIL import Image

    side = shape[-1]
    pixels = rng.integers(0, 256, (side, side), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _get_json(spec: LoadSpec, path: str) -> dict:
    host = urllib.parse.urlsplit(spec.url)
    conn = http.client.HTTPConnection(host.hostname, host.port or 80, timeout=spec.timeout_s)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
    except OSError as exc:
        raise LoadTestError(f"cannot reach the server at {spec.url} ({exc}); start it first "
                            "(optbench serve MANIFEST)") from None
    finally:
        conn.close()
    if r.status != 200:
        raise LoadTestError(f"GET {path} answered {r.status}: {body[:300]!r}")
    return json.loads(body)


class _Sender:
    """The system under test as LoadGen sees it: one event loop, on its own thread, holding
    `connections` keep-alive HTTP/1.1 connections. LoadGen's issue callback hands queries to the
    loop; each answered query is reported back at once. One loop rather than a thread per
    connection, with each request's bytes made in advance: the generator shares the machine
    with the server it measures, so every microsecond of CPU it spends per query is taken from
    the server (a thread pool of http.client connections cost ~250 us a query, ~0.7 of 2 cores
    at 2,800 queries/s)."""

    def __init__(self, spec: LoadSpec, requests: list, lg):
        self.spec, self.lg = spec, lg
        host = urllib.parse.urlsplit(spec.url)
        self.host, self.port = host.hostname, host.port or 80
        self.raw = [_raw_request(f"{self.host}:{self.port}", *r) for r in requests]
        self.errors: dict[str, int] = {}
        self.ok = 0
        self.loop = _new_loop()
        self.queue: asyncio.Queue | None = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait()

    def _main(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.queue = asyncio.Queue()
        self.workers = [self.loop.create_task(self._work())
                        for _ in range(self.spec.connections)]
        ready.set()
        self.loop.run_forever()

    def issue(self, samples) -> None:   # LoadGen's thread
        items = [(s.id, s.index) for s in samples]
        self.loop.call_soon_threadsafe(self._enqueue, items)

    def _enqueue(self, items) -> None:
        for item in items:
            self.queue.put_nowait(item)

    async def _work(self) -> None:
        conn = None
        try:
            while (sample := await self.queue.get()) is not None:
                query_id, index = sample
                raw = self.raw[index % len(self.raw)]
                outcome = None
                for attempt in (0, 1):   # one reconnect: a server may close an idle connection
                    try:
                        async with asyncio.timeout(self.spec.timeout_s):
                            if conn is None:
                                conn = await asyncio.open_connection(self.host, self.port)
                            status, keep = await _exchange(*conn, raw)
                        outcome = "ok" if status == 200 else f"HTTP {status}"
                        if not keep:
                            conn = _close(conn)
                        break
                    except Exception as exc:  # noqa: BLE001  any failure is this query's error,
                        # and the query must still be reported, or LoadGen waits forever
                        conn = _close(conn)
                        outcome = type(exc).__name__
                        if attempt:
                            break
                if outcome == "ok":
                    self.ok += 1
                else:
                    self.errors[outcome] = self.errors.get(outcome, 0) + 1
                self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(query_id, 0, 0)])
        finally:
            _close(conn)

    def close(self) -> None:
        async def stop():
            for _ in self.workers:
                self.queue.put_nowait(None)
            await asyncio.wait(self.workers, timeout=5)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # the serve extra installs it; plain asyncio otherwise
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _raw_request(host: str, path: str, body: bytes, headers: dict) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    raw: bytes) -> tuple[int, bool]:
    """Send one request and read its whole response: (status, connection kept alive)."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(None, 2)[1])
    length, chunked, keep = None, False, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
    if chunked:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")   # the empty line after the last chunk (no trailers)
    elif length is not None:
        await reader.readexactly(length)
    else:                                  # the body ends when the server closes
        await reader.read()
        keep = False
    return status, keep


def _close(conn) -> None:
    if conn is not None:
        conn[1].close()


def run_scenario(spec: LoadSpec, scenario: str, *, target_qps: float = 0.0,
                 bound_ms: float = 15.0, requests: list | None = None,
                 server_pids: tuple[int, ...] = (), expected_ms: float = 0.0,
                 calibrate: bool = True) -> dict:
    """One LoadGen run. Returns its summary: rates, latency percentiles (ms), VALID or not
    (with which of LoadGen's conditions held), request errors, and the CPU (cores) of this
    generator and of the server processes.

    SingleStream and Offline runs are sized by LoadGen from an expectation (the latency of one
    query, `expected_ms`, default `bound_ms`; the Offline rate, `target_qps`, default 1,000/s):
    a server faster than expected finishes before the minimum duration and LoadGen calls the
    run INVALID. With `calibrate` such a run is repeated, sized from the fastest run so far (its
    mean latency, its rate) with a margin, up to `_CALIBRATION_REPEATS` times (a shared CPU can
    make a repeat faster than the run it was sized from); the last run is returned and
    `calibrated_from` lists the runs before it."""
    check_choice("run_scenario", "scenario", scenario, SCENARIOS)
    requests = requests or build_requests(spec)
    result = _run_once(spec, scenario, target_qps, bound_ms, expected_ms, requests, server_pids)
    if not calibrate or scenario == "server":
        return result
    earlier: list[dict] = []
    while result.get("min_duration_met") is False and len(earlier) < _CALIBRATION_REPEATS:
        if scenario == "single" and result.get("mean_ms"):
            fastest = min([result["mean_ms"]] + [r["mean_ms"] for r in earlier])
            expected_ms = _CALIBRATION_MARGIN * fastest
            earlier.append({"mean_ms": result["mean_ms"], "wall_s": result["wall_s"]})
        elif scenario == "offline" and result.get("samples_per_s"):
            fastest = max([result["samples_per_s"]] + [r["samples_per_s"] for r in earlier])
            target_qps = fastest / _CALIBRATION_MARGIN
            earlier.append({"samples_per_s": result["samples_per_s"], "wall_s": result["wall_s"]})
        else:
            break
        result = _run_once(spec, scenario, target_qps, bound_ms, expected_ms, requests,
                           server_pids)
    if earlier:
        result["calibrated_from"] = earlier
    return result


# a calibrated repeat expects queries this much faster than the fastest run so far (so it plans
# ~1/0.7 = 1.4x the minimum duration), and is tried at most this many times
_CALIBRATION_MARGIN = 0.7
_CALIBRATION_REPEATS = 2


def _run_once(spec: LoadSpec, scenario: str, target_qps: float, bound_ms: float,
              expected_ms: float, requests: list, server_pids: tuple[int, ...]) -> dict:
    lg = _import_loadgen()
    settings = lg.TestSettings()
    settings.mode = lg.TestMode.PerformanceOnly
    settings.min_duration_ms = int(spec.duration_s * 1000)
    if scenario == "server":
        if target_qps <= 0:
            raise ConfigError("the server scenario needs target_qps > 0 (or search for the "
                              "peak rate: find_peak_rate, or optbench loadtest without --qps)")
        settings.scenario = lg.TestScenario.Server
        settings.server_target_qps = float(target_qps)
        settings.server_target_latency_ns = int(bound_ms * 1e6)
        settings.min_query_count = spec.min_queries
    elif scenario == "single":
        settings.scenario = lg.TestScenario.SingleStream
        settings.single_stream_expected_latency_ns = int(
            (expected_ms if expected_ms > 0 else max(bound_ms, 1.0)) * 1e6)
        settings.min_query_count = min(spec.min_queries, 1024)
    else:
        settings.scenario = lg.TestScenario.Offline
        settings.offline_expected_qps = float(target_qps or 1000.0)
    sender = _Sender(spec, requests, lg)
    sut = lg.ConstructSUT(sender.issue, lambda: None)
    qsl = lg.ConstructQSL(len(requests), len(requests), lambda s: None, lambda s: None)
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        log = lg.LogSettings()
        log.log_output.outdir = tmp
        log.log_output.copy_summary_to_stdout = False
        cpu = _CpuMeter(server_pids)
        started = time.perf_counter()
        try:
            lg.StartTestWithLogSettings(sut, qsl, settings, log)
        finally:
            wall = time.perf_counter() - started
            used = cpu.stop(wall)
            sender.close()
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
        summary = parse_summary((Path(tmp) / "mlperf_log_summary.txt").read_text())
    summary.update(scenario=scenario, path=spec.path, model=spec.model, wall_s=wall,
                   requests_ok=sender.ok, request_errors=dict(sender.errors), **used)
    if scenario == "server":
        summary.update(target_qps=target_qps, bound_ms=bound_ms)
    return summary


_FIELDS = {"Completed samples per second": "completed_qps",
           "Scheduled samples per second": "scheduled_qps",
           "Samples per second": "samples_per_s",
           "Result is": "result"}

# why a run is VALID or not, as LoadGen's summary lists it
_CONDITIONS = {"Min duration satisfied": "min_duration_met",
               "Min queries satisfied": "min_queries_met",
               "Early stopping satisfied": "early_stopping_met",
               "Performance constraints satisfied": "latency_bound_met"}


def parse_summary(text: str) -> dict:
    """LoadGen's mlperf_log_summary.txt -> rates, VALID/INVALID and latencies in ms."""
    out: dict = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key in _FIELDS:
            out[_FIELDS[key]] = value if key == "Result is" else float(value)
        elif key in _CONDITIONS:
            out[_CONDITIONS[key]] = value.lower() in ("yes", "true")
        m = re.fullmatch(r"(\d+\.\d+) percentile latency \(ns\)", key)
        if m:
            out[f"p{float(m.group(1)):g}_ms"] = float(value) / 1e6
        elif key in ("Min latency (ns)", "Max latency (ns)", "Mean latency (ns)"):
            out[key.split()[0].lower() + "_ms"] = float(value) / 1e6
    out["valid"] = out.get("result") == "VALID"
    return out


class _CpuMeter:
    """CPU seconds of this process (the generator) and of the server's processes over a run,
    as cores (CPU seconds / wall seconds)."""

    def __init__(self, server_pids: tuple[int, ...]):
        import psutil

        self.me = psutil.Process()
        found = {}   # by pid: a multi-worker server's supervisor and its workers all listen
        for pid in server_pids:   # on the port, and the workers are its children too
            try:
                p = psutil.Process(pid)
                for q in (p, *p.children(recursive=True)):
                    found.setdefault(q.pid, q)
            except psutil.NoSuchProcess:
                pass
        self.servers = list(found.values())
        self.start_me = _cpu(self.me)
        self.start_servers = [_cpu(p) for p in self.servers]

    def stop(self, wall: float) -> dict:
        out = {"generator_cores": (_cpu(self.me) - self.start_me) / wall}
        if self.servers:
            used = sum(_cpu(p) - s for p, s in zip(self.servers, self.start_servers,
                                                    strict=True))
            out["server_cores"] = used / wall
        return out


def _cpu(p) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system
    except Exception:   # a process that ended: count nothing more for it
        return 0.0


def find_peak_rate(spec: LoadSpec, bound_ms: float, *, low_qps: float = 10.0,
                   high_qps: float | None = None, steps: int = 6,
                   server_pids: tuple[int, ...] = ()) -> dict:
    """The highest Server-scenario rate whose p99 stays under `bound_ms` with no request error
    (LoadGen's VALID), by bisection between low_qps and high_qps (default: the Offline
    throughput). Returns the peak run and every run tried."""
    requests = build_requests(spec)
    runs = []
    if high_qps is None:
        offline = run_scenario(dataclasses.replace(spec, duration_s=min(spec.duration_s, 5.0)),
                               "offline", requests=requests, server_pids=server_pids)
        runs.append(offline)
        high_qps = offline.get("samples_per_s") or offline.get("completed_qps") or 100.0
    lo, hi, best = low_qps, float(high_qps), None
    for _ in range(steps):
        qps = (lo + hi) / 2
        run = run_scenario(spec, "server", target_qps=qps, bound_ms=bound_ms,
                           requests=requests, server_pids=server_pids)
        runs.append(run)
        good = run["valid"] and not run["request_errors"]
        if good:
            best, lo = run, qps
        else:
            hi = qps
    return {"bound_ms": bound_ms, "peak": best, "runs": runs}
