import pytest
from conftest import FakeWork

from optbench.errors import ConfigError, MeasurementError
from optbench.measure import Measurement, TaskSpec, Timer, TimerConfig


def test_block_is_doubled_until_it_lasts_min_block(clock):
    timer = Timer(FakeWork(clock, [0.0003]), TimerConfig(min_block_s=0.001), clock=clock)
    assert timer.size_block() == 4  # 1 call 0.3 ms, 2 calls 0.6 ms, 4 calls 1.2 ms >= 1 ms


def test_samples_are_per_call_means_of_a_block(clock):
    timer = Timer(FakeWork(clock, [0.0001, 0.0003]), TimerConfig(min_block_s=0.00075),
                  clock=clock)
    timer.size_block()  # 1 call: 0.1 ms, 2 calls: 0.4 ms, 4 calls: 0.8 ms >= 0.75 ms
    assert timer.block_size == 4
    assert timer.sample() == pytest.approx(0.0002)


def test_stops_when_converged_after_min_samples_and_min_time(clock):
    config = TimerConfig(min_samples=10, min_time_s=0.05, max_time_s=1.0, min_block_s=0.001)
    m = Timer(FakeWork(clock, [0.002]), config, clock=clock).run()
    # constant 2 ms: spread 0, so it stops at the first check with >= 10 samples and >= 50 ms
    assert m.stop_reason == "converged"
    assert len(m.samples_s) == 25
    assert m.median_s == pytest.approx(0.002)
    assert m.block_size == 1


def test_stops_at_max_time_and_warns_when_spread_stays_high(clock):
    config = TimerConfig(min_samples=10, min_time_s=0.01, max_time_s=0.1, min_block_s=0.001,
                         target_rel_spread=0.05)
    m = Timer(FakeWork(clock, [0.001, 0.003]), config, clock=clock).run()
    assert m.stop_reason == "max_time"
    assert len(m.samples_s) == 50  # 25 pairs of (1 ms + 3 ms) fill exactly 0.1 s
    assert any(w.startswith("high spread") for w in m.warnings)


def test_warns_about_too_few_samples(clock):
    config = TimerConfig(min_samples=10, min_time_s=0.5, max_time_s=2.0, warmup_s=0.0,
                         warmup_iters=1)
    m = Timer(FakeWork(clock, [1.0]), config, clock=clock).run()
    assert len(m.samples_s) == 2
    assert any(w.startswith("few samples") for w in m.warnings)


def test_warmup_runs_at_least_the_configured_calls_and_time(clock):
    work = FakeWork(clock, [0.125])  # exact in binary floating point
    Timer(work, TimerConfig(warmup_s=0.5, warmup_iters=3), clock=clock).warmup()
    assert work.calls == 4  # time-bound
    work = FakeWork(clock, [0.125])
    Timer(work, TimerConfig(warmup_s=0.5, warmup_iters=6), clock=clock).warmup()
    assert work.calls == 6  # count-bound


def test_statistics_match_hand_computed_values():
    samples = tuple(x / 1000 for x in range(1, 11))  # 1..10 ms
    m = Measurement(TaskSpec(label="x", batch_size=8), samples)
    assert m.median_s == pytest.approx(0.0055)
    assert m.mean_s == pytest.approx(0.0055)
    assert m.iqr_s == pytest.approx(0.00775 - 0.00325)
    assert m.p90_s == pytest.approx(0.0091)
    assert m.p99_s == pytest.approx(0.00991)
    assert m.throughput_items_s == pytest.approx(8 / 0.0055)
    assert Measurement.from_dict(m.to_dict()) == m


def test_backwards_clock_is_an_error():
    times = iter([1.0, 0.5])
    timer = Timer(lambda: None, clock=lambda: next(times))
    with pytest.raises(MeasurementError, match="backwards"):
        timer.time_block(1)


def test_bad_timer_config_names_the_field():
    with pytest.raises(ConfigError, match="min_samples"):
        TimerConfig(min_samples=100, max_samples=10)
    with pytest.raises(ConfigError, match="max_time_s"):
        TimerConfig(max_time_s=0)


@pytest.mark.cuda
def test_cuda_timing_uses_events():
    import torch

    x = torch.randn(256, 256, device="cuda")
    config = TimerConfig(min_time_s=0.05, max_time_s=1.0)
    m = Timer(lambda: x @ x, config, device="cuda").run()
    assert m.median_s > 0
