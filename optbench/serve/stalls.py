"""Probes for what stops a server for milliseconds at a time: an event-loop lag probe (a task
that asks to wake every `period` and records how late it woke) and garbage-collector pauses
(gc.callbacks). Both feed Prometheus histograms (optbench_event_loop_lag_seconds,
optbench_gc_pause_seconds), so a tail-latency stall can be told apart from queueing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time


def settle_gc(mode: str) -> None:
    """After the models load: "freeze" collects once, then moves every surviving object (the
    models, modules, caches) to a permanent generation the collector never scans again, and
    makes young collections rarer, so a full collection walks only request garbage."""
    if mode != "freeze":
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)


class StallProbes:
    def __init__(self, metrics, period_s: float = 0.005):
        self.metrics, self.period_s = metrics, period_s
        self._task: asyncio.Task | None = None
        self._gc_start: float | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._lag())
        gc.callbacks.append(self._on_gc)

    async def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.period_s)
            self.metrics.loop_lag.observe(max(0.0, loop.time() - asked - self.period_s))

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self._gc_start is not None:
            self.metrics.gc_pause.labels(generation=str(info.get("generation", "?"))).observe(
                time.perf_counter() - self._gc_start)
            self._gc_start = None
