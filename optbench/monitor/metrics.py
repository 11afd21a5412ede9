"""Prometheus metrics of a running server, held in one registry per app (no import-time globals).

Names follow Prometheus conventions: counters end in `_total`, durations are `_seconds`.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401  (re-exported)
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

# inference on CPU takes ~0.3 ms (tiny int8) to ~100 ms (ResNet50 fp32); requests queue on top
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# stalls: how late the event loop wakes up, and how long the garbage collector stops the process
STALL_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


class ServeMetrics:
    """Every series the server exports. `render()` gives the text exposition format."""

    def __init__(self, prefix: str = "optbench"):
        self.registry = r = CollectorRegistry(auto_describe=True)
        p = prefix
        self.requests = Counter(f"{p}_requests", "HTTP requests answered",
                                ["model", "endpoint", "status"], registry=r)
        self.latency = Histogram(f"{p}_request_duration_seconds", "Time from request to response",
                                 ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.inference = Histogram(f"{p}_inference_duration_seconds", "One forward pass of a "
                                   "(possibly batched) input", ["model"], buckets=LATENCY_BUCKETS,
                                   registry=r)
        self.batch_size = Histogram(f"{p}_batch_size", "Items per forward pass (dynamic batching "
                                    "groups requests)", ["model"], buckets=BATCH_BUCKETS,
                                    registry=r)
        self.predictions = Counter(f"{p}_predictions", "Predicted class per item",
                                   ["model", "class_name"], registry=r)
        self.in_flight = Gauge(f"{p}_requests_in_flight", "Requests being handled now",
                               registry=r)
        self.model_info = Info(f"{p}_model", "Loaded model artifacts", ["model"], registry=r)
        self.ab_requests = Counter(f"{p}_ab_requests", "Requests per A/B route and arm",
                                   ["route", "arm", "model"], registry=r)
        self.drift_statistic = Gauge(f"{p}_drift_statistic", "Drift test statistic of the live "
                                     "window against the reference profile",
                                     ["model", "feature", "test"], registry=r)
        self.drift_p_value = Gauge(f"{p}_drift_p_value", "Drift test p-value (1 = no evidence)",
                                   ["model", "feature", "test"], registry=r)
        self.drift_detected = Gauge(f"{p}_drift_detected", "1 if the live window has drifted "
                                    "after multiple-testing correction", ["model"], registry=r)
        self.loop_lag = Histogram(f"{p}_event_loop_lag_seconds", "How much later than asked "
                                  "the event loop woke a periodic probe (time it spent busy "
                                  "or blocked)", buckets=STALL_BUCKETS, registry=r)
        self.gc_pause = Histogram(f"{p}_gc_pause_seconds", "Garbage collector pauses",
                                  ["generation"], buckets=STALL_BUCKETS, registry=r)
        self.drift_window_size = Gauge(f"{p}_drift_window_items", "Items in the live drift "
                                       "window", ["model"], registry=r)

    def record_model(self, name: str, version: str, fmt: str, sha256: str) -> None:
        self.model_info.labels(model=name).info({"version": version, "format": fmt,
                                                 "sha256": sha256})

    def record_batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model=model).observe(size)
        self.inference.labels(model=model).observe(seconds)

    def record_predictions(self, model: str, class_names, indices) -> None:
        """Count a batch's predicted classes (`indices` into `class_names`), one update per
        class present."""
        counts = np.bincount(np.asarray(indices, dtype=np.int64))
        for i in np.flatnonzero(counts):
            name = class_names[i] if i < len(class_names) else str(i)
            self.predictions.labels(model=model, class_name=name).inc(int(counts[i]))

    def record_drift(self, model: str, report) -> None:
        """Publish a monitor.drift.DriftReport's per-feature statistics."""
        for test in report.tests:
            labels = dict(model=model, feature=test.feature, test=test.test)
            self.drift_statistic.labels(**labels).set(test.statistic)
            self.drift_p_value.labels(**labels).set(test.p_value)
        self.drift_detected.labels(model=model).set(1.0 if report.drifted else 0.0)
        self.drift_window_size.labels(model=model).set(report.n_current)

    def render(self) -> bytes:
        return generate_latest(self.registry)
