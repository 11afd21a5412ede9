"""Dynamic batching: concurrent requests are grouped into one forward pass.

A batch takes every request already queued; it waits (at most `max_wait_s`) for more only while
other requests are still arriving (their bodies being read and parsed, see `arriving`), so a lone
client never waits for company that is not coming. A batch closes early at `max_batch` items.
Forward passes run on one worker thread, off the event loop; while one runs, the next batch
gathers. Each request gets its own rows of the output back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

RunFn = Callable[[np.ndarray], np.ndarray]
OnBatch = Callable[[int, float], None]  # (items, seconds) per forward pass


class Batcher:
    def __init__(self, run: RunFn, executor: Executor, max_batch: int = 32,
                 max_wait_s: float = 0.002, on_batch: OnBatch | None = None):
        self.run, self.executor = run, executor
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.on_batch = on_batch or (lambda n, s: None)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._carry: tuple | None = None
        self._arriving = 0

    @contextlib.contextmanager
    def arriving(self):
        """Wrap the reading and parsing of a request that will be submitted."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, items: np.ndarray) -> asyncio.Future:
        """Queue (n, ...) items; the future gets their rows of the output (an array, or each
        field of a tuple of arrays) once their batch has run. Cancelling it (a timeout) drops
        the request from a batch that has not run yet."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called (the app's lifespan does it)")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((items, future))
        return future

    async def _loop(self) -> None:
        while True:
            batch = await self._gather()
            await self._run_batch(batch)

    async def _gather(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, size = [first], len(first[0])
        deadline = time.perf_counter() + self.max_wait_s
        while size < self.max_batch:
            if not self._queue.empty():
                item = self._queue.get_nowait()
            else:
                timeout = deadline - time.perf_counter()
                if self._arriving == 0 or timeout <= 0:
                    break  # nobody else is on the way, or waited long enough
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
            if size + len(item[0]) > self.max_batch:
                self._carry = item  # would overflow: it opens the next batch
                break
            batch.append(item)
            size += len(item[0])
        return batch

    async def _run_batch(self, batch: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        live = [(x, f) for x, f in batch if not f.done()]  # skip requests that timed out
        if not live:
            return
        inputs = live[0][0] if len(live) == 1 else np.concatenate([x for x, _ in live])
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        try:
            outputs = await loop.run_in_executor(self.executor, self.run, inputs)
        except Exception as exc:  # the forward pass failed: every request in it hears why
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        self.on_batch(len(inputs), time.perf_counter() - start)
        offset = 0
        for x, future in live:
            if not future.done():
                future.set_result(_rows(outputs, offset, offset + len(x)))
            offset += len(x)


def _rows(outputs, start: int, stop: int):
    """Rows [start, stop) of an output array, or of each array in a (named) tuple of them."""
    if isinstance(outputs, tuple):
        rows = [o[start:stop] for o in outputs]
        return type(outputs)(*rows) if hasattr(outputs, "_fields") else tuple(rows)
    return outputs[start:stop]


class Direct:
    """The naive design, with the same interface: each request is its own forward pass, run on
    a thread pool as a plain synchronous endpoint would be."""

    def __init__(self, run: RunFn, executor: Executor, on_batch: OnBatch | None = None):
        self.run, self.executor = run, executor
        self.on_batch = on_batch or (lambda n, s: None)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @contextlib.contextmanager
    def arriving(self):
        yield

    async def submit(self, items: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = await asyncio.get_running_loop().run_in_executor(self.executor, self.run, items)
        self.on_batch(len(items), time.perf_counter() - start)
        return out
