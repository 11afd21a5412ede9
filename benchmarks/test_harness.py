"""The harness against pytest-benchmark on the same callables, and the harness's own overhead.

Our timer runs before and after pytest-benchmark on the same callable (same block of calls);
the two ratios optbench median / pytest-benchmark median are stored in extra_info and the nearer
one must lie within a factor AGREEMENT of 1: 1.15 by default, for a quiet machine (the target is
5%; the bound is looser because the timers run one after the other on a bursty 2-core VM, where
a plain repeat moved 20%). OPTBENCH_HARNESS_AGREEMENT sets another factor: CI's check
(tests/test_benchmarks_run.py, benchmarking enabled) runs on whatever machine it gets, right
after the rest of the suite, and asks only for a factor of 2, which a unit or block-size error
in the timer would break; there the 15% check failed once with both of our runs at 1.43x and
1.46x pytest-benchmark's median on a 1 ms Python loop (a noisy one: its IQR was 26% of its
median). results/harness/ holds a saved run.
"""

import math
import os

import numpy as np
import pytest

from optbench.measure import TimerConfig, time_callable

A = np.random.default_rng(0).standard_normal((192, 192)).astype(np.float32)
AGREEMENT = float(os.environ.get("OPTBENCH_HARNESS_AGREEMENT", "1.15"))


def _matmul():
    return A @ A


def _sleepless_loop():
    total = 0
    for i in range(20000):
        total += i
    return total


@pytest.mark.parametrize("fn", [_matmul, _sleepless_loop], ids=["matmul", "python-loop"])
def test_agreement_with_pytest_benchmark(benchmark, fn):
    config = TimerConfig(min_time_s=1.0, max_time_s=5.0)
    before = time_callable(fn, config)
    # the same blocks of calls as ours: single calls of a 0.1 ms BLAS matmul let its thread
    # pool sleep between them (measured 1.9x slower), which is a different question
    benchmark.pedantic(fn, rounds=max(20, len(before.samples_s)), warmup_rounds=5,
                       iterations=before.block_size)
    after = time_callable(fn, config)   # ours again: the machine's drift brackets theirs
    if benchmark.stats is None:  # --benchmark-disable: ran once, nothing to compare
        return
    theirs = benchmark.stats.stats.median
    ratios = [before.median_s / theirs, after.median_s / theirs]
    benchmark.extra_info.update(optbench_median_s=[before.median_s, after.median_s],
                                ratio_optbench_to_pytest_benchmark=ratios)
    assert min(abs(math.log(r)) for r in ratios) <= math.log(AGREEMENT), (
        f"optbench medians {before.median_s:.3e} / {after.median_s:.3e} s (before / after) vs "
        f"pytest-benchmark {theirs:.3e} s: ratios {ratios[0]:.3f}, {ratios[1]:.3f}, allowed "
        f"{1 / AGREEMENT:.3f}-{AGREEMENT:.3f}")


def test_overhead_of_an_empty_callable(benchmark):
    m = time_callable(lambda: None, TimerConfig(min_time_s=0.5, max_time_s=2.0))
    benchmark.extra_info.update(optbench_empty_call_median_s=m.median_s,
                                optbench_block_size=m.block_size)
    benchmark(lambda: None)
