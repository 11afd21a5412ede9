"""Small typed results for tests that need a report with chosen figures (no timing)."""

from optbench.results import BenchResult


def row(variant, runtime, median_s, baseline="big / torch-eager", est=1.0, ci=(0.9, 1.1),
        batch=1, threads=2, samples=None) -> dict:
    """A stored row (dict) whose median latency is median_s (or whose samples are `samples`,
    one per interleaved round)."""
    memory = {"baseline_rss_bytes": 0, "peak_rss_bytes": 0, "method": "vmhwm"}
    return {"variant": variant, "runtime": runtime, "batch_size": batch, "load_s": 0.0,
            "measurement": {"spec": {"label": f"{variant} / {runtime}", "batch_size": batch,
                                     "threads": threads},
                            "samples_s": [median_s] if samples is None else list(samples)},
            "speedup": {"variant": f"{variant} / {runtime}", "baseline": baseline,
                        "speedup": {"estimate": est, "low": ci[0], "high": ci[1],
                                    "confidence": 0.95}},
            "load_memory": memory, "run_memory": memory}


def size(file_bytes: int) -> dict:
    return {"format": "onnx", "file_bytes": file_bytes, "gzip_bytes": file_bytes,
            "parameters": 1, "nonzero_parameters": 1, "dtype_bytes": {}}


def result(rows, env=None, quality=None, sizes=None, sections=None) -> BenchResult:
    return BenchResult.from_dict({"version": 2, "label": "test", "config": {},
                                  "env": env or {}, "rows": rows, "quality": quality or {},
                                  "sizes": sizes or {}, "sections": sections or {}})
