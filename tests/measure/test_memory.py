import time

import numpy as np
import pytest

from optbench.measure import measure_peak_memory, track_peak_memory
from optbench.measure.memory import read_status

MIB = 2**20


def test_sees_a_short_lived_200_mb_allocation_within_10_percent():
    def spike():
        block = np.ones(200 * MIB // 8)  # 200 MiB, touched
        time.sleep(0.005)
        del block

    mem = measure_peak_memory(spike)
    assert mem.method == "vmhwm"
    assert mem.peak_delta_bytes == pytest.approx(200 * MIB, rel=0.10)


def test_a_region_that_allocates_little_reports_little():
    with track_peak_memory() as mem:
        _ = [0] * 1000
    assert mem.peak_delta_bytes < 20 * MIB
    assert mem.peak_rss_bytes >= mem.baseline_rss_bytes > 0


def test_peak_is_reset_between_regions():
    measure_peak_memory(lambda: np.ones(150 * MIB // 8))
    second = measure_peak_memory(lambda: None)
    assert second.peak_delta_bytes < 20 * MIB
    assert read_status()["VmHWM"] >= read_status()["VmRSS"]


@pytest.mark.cuda
def test_cuda_peak_allocation_is_reported():
    import torch

    def alloc():
        x = torch.empty(64 * MIB, dtype=torch.uint8, device="cuda")
        torch.cuda.synchronize()
        del x

    mem = measure_peak_memory(alloc, device="cuda")
    assert mem.cuda_peak_allocated_bytes >= 64 * MIB


def test_a_frozen_heap_still_frees_what_is_made_inside_it_before_each_region():
    """bench_entries measures its regions inside frozen_heap(): the collection before a region
    then skips what was alive at the start, and must still free the cyclic garbage made since
    (here a 150 MiB array held by a reference cycle), so the next region does not count it or
    reuse its memory."""
    import gc
    import weakref

    from optbench.measure.memory import frozen_heap

    class Node:
        pass

    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with frozen_heap():   # nested: frozen once (frozen objects may still die meanwhile)
            assert gc.get_freeze_count() <= frozen
        assert gc.get_freeze_count() > 0   # the inner exit left the outer block's freeze
        a, b = Node(), Node()
        a.other, b.other, a.block = b, a, np.ones(150 * MIB // 8)
        alive = weakref.ref(a)
        del a, b
        mem = measure_peak_memory(lambda: np.ones(100 * MIB // 8))
        assert alive() is None
        assert mem.peak_delta_bytes == pytest.approx(100 * MIB, rel=0.10)
    assert gc.get_freeze_count() == 0
