import dataclasses
import itertools

import numpy as np
import pytest
from conftest import FakeWork

from optbench.measure import TimerConfig, compare

CONFIG = TimerConfig(min_samples=20, min_time_s=0.05, max_time_s=0.5, min_block_s=0.001)


def test_ratio_of_exact_durations(clock):
    result = compare({"slow": FakeWork(clock, [0.002]), "fast": FakeWork(clock, [0.001])},
                     config=CONFIG, clock=clock)
    assert result.baseline == "slow"
    ci = result.ratios["fast"].speedup
    assert (ci.estimate, ci.low, ci.high) == (2.0, 2.0, 2.0)
    assert result.ratios["slow"].speedup.estimate == 1.0
    assert len(result.measurements["slow"].samples_s) == len(result.measurements["fast"].samples_s)


def test_noisy_ratio_has_a_ci_around_the_truth(clock):
    rng = np.random.default_rng(0)
    slow = FakeWork(clock, rng.normal(0.004, 0.0002, 500))
    fast = FakeWork(clock, rng.normal(0.001, 0.00005, 500))
    ci = compare({"slow": slow, "fast": fast}, config=CONFIG, clock=clock).ratios["fast"].speedup
    assert ci.low < ci.estimate < ci.high
    assert ci.contains(4.0)


def test_turns_are_interleaved_in_rotating_order(clock):
    order = []

    def make(name):
        def fn():
            order.append(name)
            clock.now += 0.002
        return fn

    compare({"a": make("a"), "b": make("b")}, config=CONFIG, clock=clock)
    # a turn = 2 warm-up calls + a timed block of 5 (>= round_min_s 0.01 s); rounds rotate
    # (ab, ba, ab, ...), so the last rounds read a*7 b*14 a*14 ... or the mirror
    turns = [(k, len(list(g))) for k, g in itertools.groupby(order)]
    assert turns[-1][1] == 7 and all(n == 14 for _, n in turns[-4:-1])


class ColdAfterSwitch:
    """Calls of several callables sharing a machine: the first call after another callable ran
    is slow (cold caches, idle thread pool); the rest take `warm` seconds."""

    def __init__(self, clock):
        self.clock, self.last = clock, None

    def make(self, name, warm, cold_factor=3.0):
        def fn():
            self.clock.now += warm * (cold_factor if self.last != name else 1.0)
            self.last = name
        return fn


def test_turn_warm_up_keeps_cold_first_calls_out_of_the_samples(clock):
    machine = ColdAfterSwitch(clock)
    fns = {"a": machine.make("a", 0.004), "b": machine.make("b", 0.001)}
    result = compare(fns, config=CONFIG, clock=clock)
    assert np.median(result.measurements["a"].samples_s) == pytest.approx(0.004)
    assert np.median(result.measurements["b"].samples_s) == pytest.approx(0.001)
    shared = ColdAfterSwitch(clock)   # the old way: no warm-up in a turn
    no_warm = compare({"a": shared.make("a", 0.004), "b": shared.make("b", 0.001)},
                      config=dataclasses.replace(CONFIG, round_warmup_calls=0), clock=clock)
    # a block of 3 calls, the first cold: (3 * 4 + 4 + 4) / 3 = 6.7 ms instead of 4
    assert np.median(no_warm.measurements["a"].samples_s) == pytest.approx(0.02 / 3)


def test_a_long_call_gets_one_warm_up_call_and_a_one_call_block(clock):
    from optbench.measure.timer import Timer

    work = FakeWork(clock, [0.05])
    timer = Timer(work, CONFIG, clock=clock)
    timer.size_block()
    calls = work.calls
    timer.round_sample()
    assert work.calls - calls == 2 and timer.round_block == 1
    assert timer.spent_s == pytest.approx(0.1) and timer.samples == [pytest.approx(0.05)]


def test_budgets_are_per_entry_and_every_entry_gets_min_samples(clock):
    config = TimerConfig(min_samples=20, min_time_s=0.05, max_time_s=0.5, min_block_s=0.001)
    result = compare({"slow": FakeWork(clock, [0.02]), "fast": FakeWork(clock, [0.0005])},
                     config=config, clock=clock)
    slow, fast = (result.measurements[k] for k in ("slow", "fast"))
    assert len(slow.samples_s) == len(fast.samples_s) >= 20
    assert slow.stop_reason in ("converged", "max_time")
    starved = compare({"slow": FakeWork(clock, [0.1]), "fast": FakeWork(clock, [0.001])},
                      config=config, clock=clock)
    m = starved.measurements["slow"]
    assert len(m.samples_s) < 20 and m.stop_reason in ("hard_cap", "max_time")
    assert any("few samples" in w for w in m.warnings)


def test_an_entry_against_an_identical_copy_gives_a_narrow_ci_around_one(clock):
    rng = np.random.default_rng(3)
    # the machine's mood, shared, changing every 400 calls (~40 rounds: seconds, not turns)
    drift = np.repeat(rng.normal(0.004, 0.0008, 40), 400)
    shared = iter(drift)

    def make():
        def fn():
            clock.now += next(shared) * rng.normal(1.0, 0.01)
        return fn

    ci = compare({"a": make(), "a-copy": make()}, config=CONFIG, clock=clock
                 ).ratios["a-copy"].speedup
    assert ci.contains(1.0) and ci.high - ci.low < 0.05


def test_unknown_baseline_is_an_error(clock):
    with pytest.raises(ValueError, match="baseline"):
        compare({"a": FakeWork(clock, [0.001])}, baseline="zzz", config=CONFIG, clock=clock)
