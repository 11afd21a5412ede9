import dataclasses
import importlib
import json

import pytest
import torch

from optbench.bench import BenchConfig, bench
from optbench.errors import ConfigError
from optbench.report import bench_frame, load_result, render_bench, save_bench
from optbench.transforms.export import export_onnx

FAST = dict(input_shape=(1, 16, 16), min_time_s=0.05, max_time_s=0.3)


@pytest.fixture(scope="module")
def result(synthetic):
    torch.manual_seed(0)
    from conftest import TinyNet

    config = BenchConfig(runtimes=("torch-eager", "onnxruntime"), batch_sizes=(1, 4), **FAST)
    return bench(TinyNet().eval(), config, label="tiny", eval_data=synthetic)


def test_rows_cover_every_runtime_and_batch(result):
    assert [(r.runtime, r.batch_size) for r in result.rows] == [
        ("torch-eager", 1), ("onnxruntime", 1), ("torch-eager", 4), ("onnxruntime", 4)]
    for row in result.rows:
        assert row.measurement.median_s > 0
        assert row.measurement.spec.batch_size == row.batch_size
        assert row.memory_bytes >= 0 and row.run_memory.method == "vmhwm"
    assert result.rows[0].speedup.speedup.estimate == 1.0  # the baseline against itself


def test_sizes_quality_and_environment_travel_with_the_result(result):
    assert set(result.sizes) == {"torch", "onnx"}
    assert result.sizes["torch"].parameters == sum(
        p.numel() for p in __import__("conftest").TinyNet().parameters())
    q = result.quality["tiny / onnxruntime"]
    assert q.n == 512 and q.agreement["top1_agreement"] == 1.0
    assert q.top1_accuracy == result.quality["tiny / torch-eager"].top1_accuracy
    assert {"cpu_model", "isa", "torch_threads", "packages", "date"} <= set(result.env)


def test_saved_result_round_trips_to_json_csv_markdown(result, tmp_path):
    paths = save_bench(result, tmp_path)
    data = load_result(paths["json"])
    assert json.loads(paths["json"].read_text())["label"] == "tiny"
    frame = bench_frame(data)
    assert list(frame["runtime"]) == ["torch-eager", "onnxruntime"] * 2
    assert {"median_ms", "p90_ms", "p99_ms", "iqr_ms", "speedup", "memory_mb"} <= set(frame)
    md = render_bench(data)
    assert "| tiny / onnxruntime | 4 |" in md and "## Environment" in md
    assert not list(tmp_path.glob("*.tmp"))


def test_onnx_input_skips_torch_runtimes_with_a_reason(tiny_model, tmp_path):
    path = export_onnx(tiny_model, torch.randn(1, 1, 16, 16), tmp_path / "m.onnx")
    config = BenchConfig(runtimes=("torch-eager", "onnxruntime"), batch_sizes=(2,), **FAST)
    res = bench(str(path), config)
    assert [r.runtime for r in res.rows] == ["onnxruntime"]
    assert "nn.Module" in res.skipped["torch-eager"]


def test_bad_bench_configs_are_explained():
    with pytest.raises(ConfigError, match="batch_sizes"):
        BenchConfig(batch_sizes=(0,))
    with pytest.raises(ConfigError, match="input_shape"):
        BenchConfig(input_shape=())
    with pytest.raises(ConfigError, match="device"):
        BenchConfig(device="tpu")
    with pytest.raises(ConfigError, match="onnx"):
        bench("model.pt", BenchConfig(**FAST))


@pytest.mark.cuda
def test_bench_on_cuda(tiny_model):
    config = BenchConfig(runtimes=("torch-eager",), batch_sizes=(1,), device="cuda", **FAST)
    row = bench(tiny_model, config).rows[0]
    assert row.run_memory.cuda_peak_allocated_bytes > 0


def test_processes_time_in_fresh_workers_and_pool_them(tiny_model):
    # a budget that reaches min_samples even with the CPU shared (seen: 14 of 20 samples with
    # FAST's 0.3 s while training ran beside the suite); a quiet machine stops at min_time_s
    config = BenchConfig(runtimes=("torch-eager", "onnxruntime"), batch_sizes=(2,),
                         processes=2, **{**FAST, "max_time_s": 3.0})
    res = bench(tiny_model, config, label="tiny")
    base, ort = res.rows
    for row in res.rows:
        m = row.measurement
        assert m.processes == 2 and len(m.process_sizes) == 2
        assert sum(m.process_sizes) == len(m.samples_s) >= 2 * 20   # min_samples per process
        assert m.summary()["between_process_spread"] >= 0
    assert base.measurement.process_sizes == ort.measurement.process_sizes  # paired rounds
    assert (base.speedup.speedup.low, base.speedup.speedup.high) == (1.0, 1.0)
    ci = ort.speedup.speedup
    assert ci.low < ci.estimate < ci.high
    data = res.to_dict()
    assert data["rows"][1]["measurement"]["process_sizes"] == list(ort.measurement.process_sizes)
    from optbench.results import BenchResult

    again = BenchResult.from_dict(json.loads(json.dumps(data)))
    assert again.rows[1].measurement.groups() == ort.measurement.groups()


class _Wide(torch.nn.Module):
    """32 MB of fp32 weights: large enough to see in a process's resident memory."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(16 * 16, 32 * 1024 * 1024 // 4 // 256)

    def forward(self, x):
        return self.fc(x.flatten(1)).sum(1, keepdim=True)


def test_memory_per_entry_in_a_fresh_process_counts_the_weights_once(tmp_path):
    torch.manual_seed(0)
    model = _Wide().eval()
    onnx = export_onnx(model, torch.randn(2, 1, 16, 16), tmp_path / "wide.onnx")
    config = BenchConfig(runtimes=("torch-eager",), batch_sizes=(2,), memory="process", **FAST)
    eager = bench(model, config, label="wide").rows[0]
    ort = bench(str(onnx), dataclasses.replace(config, runtimes=("onnxruntime",)),
                label="wide").rows[0]
    for row in (eager, ort):   # 32 MiB of weights, counted
        assert row.load_memory.peak_delta_bytes >= 30 * 2**20, row.runtime
        assert row.first_call_memory is not None and row.load_memory.method == "vmhwm"
        assert row.to_dict()["first_call_memory"]["peak_rss_bytes"] > 0
    # eager's load is the runtime's copy of the weights, once (the model reached the worker
    # before the measured region, as ordinary memory); ORT's peak also holds the file and
    # its parsed graph while the session builds
    assert eager.load_memory.peak_delta_bytes < 48 * 2**20


def _fake_processes(monkeypatch, fail_on: set):
    """bench._in_fresh_process replaced by a worker that makes one comparison per call
    (samples 1, 2, 3... ms, numbered by call since `calls` was last cleared) and raises on the
    calls in `fail_on` (a set the test may change)."""
    bench_module = importlib.import_module("optbench.bench")   # optbench.bench is also a function
    from optbench.measure.compare import Comparison
    from optbench.measure.measurement import Measurement, TaskSpec

    calls = []

    def worker(setting, instead, fn, entries, config, threads):
        calls.append(len(calls) + 1)
        if calls[-1] in fail_on:
            raise KeyboardInterrupt("the sitting ended")
        ms = {e.label: Measurement(TaskSpec(label=e.label, batch_size=2),
                                   tuple([calls[-1] / 1000] * 3)) for e in entries}
        return {2: Comparison(measurements=ms, ratios={}, baseline=entries[0].label)}, {}

    monkeypatch.setattr(bench_module, "_in_fresh_process", worker)
    return calls


def test_a_timing_cut_short_resumes_from_the_processes_it_finished(tmp_path, monkeypatch):
    from optbench.bench import Entry, FinishedProcesses, time_in_processes

    entries = [Entry("a", "torch-eager", None), Entry("b", "torch-eager", None)]
    config = BenchConfig(runtimes=("torch-eager",), batch_sizes=(2,), processes=3, **FAST)
    fail_on = {3}
    calls = _fake_processes(monkeypatch, fail_on)
    kept = FinishedProcesses(tmp_path / "timing", context="recipe 1")
    with pytest.raises(KeyboardInterrupt):
        time_in_processes(entries, config, 2, {}, kept)
    assert sorted(p.name for p in kept.folder.iterdir()) == ["process-1.json", "process-2.json"]

    calls.clear()
    fail_on.clear()
    again = FinishedProcesses(tmp_path / "timing", context="recipe 1", reuse=True)
    pooled = time_in_processes(entries, config, 2, {}, again)
    assert calls == [1]                                  # only the third process ran
    m = pooled[2].measurements["b / torch-eager"]
    assert m.groups() == [(0.001,) * 3, (0.002,) * 3, (0.001,) * 3]   # kept, kept, new
    assert [(p["process"], p["reused"]) for p in again.processes] == [
        (1, True), (2, True), (3, False)]

    calls.clear()   # another recipe (or settings, machine, software): nothing is reused
    other = FinishedProcesses(tmp_path / "timing", context="recipe 2", reuse=True)
    time_in_processes(entries, config, 2, {}, other)
    assert calls == [1, 2, 3]
    calls.clear()   # without reuse the kept processes are dropped first: a fresh run
    fresh = FinishedProcesses(tmp_path / "timing", context="recipe 2")
    time_in_processes(entries, config, 2, {}, fresh)
    assert calls == [1, 2, 3] and not any(p["reused"] for p in fresh.processes)
