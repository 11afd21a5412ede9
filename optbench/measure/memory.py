"""Exact peak resident memory of a region of code.

On Linux, writing "5" to /proc/self/clear_refs resets the high-water mark VmHWM, so the VmHWM
read after the region is the exact peak RSS reached inside it (the kernel tracks it; no sampling
thread can miss a short spike). Elsewhere we fall back to ru_maxrss, the whole process's lifetime
peak, which is only an upper bound, and say so in `method`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import resource
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_LIBC = ctypes.CDLL(None)  # the process's own symbols: libc and any preloaded allocator


@dataclasses.dataclass
class MemoryMeasurement:
    baseline_rss_bytes: int = 0        # resident memory just before the region
    peak_rss_bytes: int = 0            # highest resident memory inside the region
    method: str = ""                   # "vmhwm" (exact) or "ru_maxrss" (upper bound)
    cuda_peak_allocated_bytes: int | None = None

    @property
    def peak_delta_bytes(self) -> int:
        """What the region added on top of what was resident before it."""
        return max(0, self.peak_rss_bytes - self.baseline_rss_bytes)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "peak_delta_bytes": self.peak_delta_bytes}


def read_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes (empty dict where /proc is absent)."""
    out = {}
    try:
        for line in _STATUS.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS so the next region's RSS growth is its own.

    Without this, a region can reuse memory an earlier step freed and look smaller than it is.
    """
    gc.collect()
    for symbol in ("MallocExtension_ReleaseFreeMemory", "malloc_trim"):  # tcmalloc, glibc
        fn = getattr(_LIBC, symbol, None)
        if fn is not None:
            fn(0) if symbol == "malloc_trim" else fn()
            return


_frozen_depth = 0


@contextmanager
def frozen_heap() -> Iterator[None]:
    """For a block that measures many regions: what is alive at its start is moved out of the
    collector's reach (gc.freeze) and handed back at its end (gc.unfreeze).

    release_free_memory's full collection before each region then walks only the objects made
    since, not the whole heap: once Dynamo, Inductor and ONNX have filled it, a full collection
    took 1.4 s (74 s over the 52 regions of a --quick flagship run, profiled on 2 AVX2 cores
    that a training job shared).
    Garbage made since the start is still collected before every region. An object alive at the
    start that becomes garbage inside the block stays allocated until the block ends: it is part
    of every later region's baseline, never of its peak, and no collection inside a region frees
    it for the region to reuse. Nested blocks freeze once."""
    global _frozen_depth
    if _frozen_depth == 0:
        gc.collect()
        gc.freeze()
    _frozen_depth += 1
    try:
        yield
    finally:
        _frozen_depth -= 1
        if _frozen_depth == 0:
            gc.unfreeze()


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS. False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


@contextmanager
def track_peak_memory(device: str = "cpu") -> Iterator[MemoryMeasurement]:
    """Measure the peak RSS (and CUDA peak allocation) of the code inside the `with` block."""
    cuda = device.startswith("cuda")
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    release_free_memory()
    exact = reset_peak()
    result = MemoryMeasurement(method="vmhwm" if exact else "ru_maxrss")
    result.baseline_rss_bytes = read_status().get("VmRSS", 0)
    yield result
    if exact:
        result.peak_rss_bytes = read_status()["VmHWM"]
    else:
        scale = 1 if sys.platform == "darwin" else 1024
        result.peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    if cuda:
        torch.cuda.synchronize()
        result.cuda_peak_allocated_bytes = torch.cuda.max_memory_allocated()


def measure_peak_memory(fn: Callable[[], object], device: str = "cpu") -> MemoryMeasurement:
    with track_peak_memory(device) as mem:
        fn()
    return mem
