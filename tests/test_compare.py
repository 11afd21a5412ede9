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


def test_calls_are_interleaved_in_rotating_order(clock):
    order = []

    def make(name):
        def fn():
            order.append(name)
            clock.now += 0.002
        return fn

    compare({"a": make("a"), "b": make("b")}, config=CONFIG, clock=clock)
    timed = order[-6:]
    assert sorted(timed) == ["a", "a", "a", "b", "b", "b"]
    assert "".join(order[-4:]) in ("abba", "baab")


def test_unknown_baseline_is_an_error(clock):
    with pytest.raises(ValueError, match="baseline"):
        compare({"a": FakeWork(clock, [0.001])}, baseline="zzz", config=CONFIG, clock=clock)
