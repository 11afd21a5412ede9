"""Sound timing of a callable: warm-up, block sizing, adaptive stop, raw samples kept.

The clock is injected so the algorithm can be tested with a fake clock. On CUDA the block is
timed with CUDA events recorded on the current stream and synchronized inside the clock.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from optbench.config import Config, check_positive
from optbench.errors import ConfigError, MeasurementError
from optbench.measure.measurement import Measurement, TaskSpec
from optbench.stats import relative_spread

Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class TimerConfig(Config):
    """How long and how carefully to time. Times in seconds."""

    warmup_s: float = 0.2            # run at least this long before measuring...
    warmup_iters: int = 2            # ...and at least this many calls
    min_block_s: float = 0.001       # a timed block lasts at least this (clock overhead < 0.1%)
    min_samples: int = 20
    max_samples: int = 2000
    min_time_s: float = 0.5          # measure at least this long
    max_time_s: float = 10.0         # and never longer than this
    target_rel_spread: float = 0.05  # stop once IQR/median is below this
    high_spread_warn: float = 0.10   # attach a warning when IQR/median ends above this
    # interleaved comparisons (compare): each entry's turn in a round opens with untimed
    # warm-up calls (another model ran just before: cold caches, idle thread pools), then
    # times a block of calls lasting at least round_min_s; budgets are per entry (own time)
    round_warmup_calls: int = 2
    round_min_s: float = 0.01

    def __post_init__(self):
        check_positive("TimerConfig", min_block_s=self.min_block_s, min_samples=self.min_samples,
                       max_time_s=self.max_time_s, target_rel_spread=self.target_rel_spread)
        if self.min_samples > self.max_samples:
            raise ConfigError(f"TimerConfig.min_samples ({self.min_samples}) must not exceed "
                              f"max_samples ({self.max_samples})")
        if self.round_warmup_calls < 0:
            raise ConfigError(f"TimerConfig.round_warmup_calls must be >= 0, got "
                              f"{self.round_warmup_calls}")
        if self.min_time_s > self.max_time_s:
            raise ConfigError(f"TimerConfig.min_time_s ({self.min_time_s}) must not exceed "
                              f"max_time_s ({self.max_time_s})")


class Timer:
    """Times `fn` in blocks of `block_size` calls; each sample is one block's mean per call."""

    def __init__(self, fn: Callable[[], object], config: TimerConfig | None = None,
                 clock: Clock = time.perf_counter, device: str = "cpu"):
        self.fn = fn
        self.config = config or TimerConfig()
        self.clock = clock
        self.device = device
        self.block_size = 1
        self.samples: list[float] = []
        self.spent_s = 0.0            # this timer's own time in rounds (warm-ups included)
        self.round_block: int | None = None
        self._per_call_s: float | None = None

    # -- the pieces, also used by compare() to interleave several timers ---------------------
    def warmup(self) -> None:
        cfg, start, calls = self.config, self.clock(), 0
        while calls < cfg.warmup_iters or self.clock() - start < cfg.warmup_s:
            self.fn()
            calls += 1
        self._sync()

    def size_block(self) -> int:
        """Double the block until one block lasts at least min_block_s."""
        n = 1
        while True:
            elapsed = self.time_block(n)
            if elapsed >= self.config.min_block_s or n >= 1 << 20:
                self.block_size = n
                self._per_call_s = elapsed / n
                return n
            n *= 2

    def time_block(self, n: int) -> float:
        """Seconds taken by n calls, the device synchronized inside the clock."""
        if self.device.startswith("cuda"):
            return _cuda_block(self.fn, n)
        t0 = self.clock()
        for _ in range(n):
            self.fn()
        elapsed = self.clock() - t0
        if elapsed < 0:
            raise MeasurementError(f"the clock went backwards ({elapsed} s); use a monotonic clock")
        return elapsed

    def sample(self) -> float:
        per_call = self.time_block(self.block_size) / self.block_size
        self.samples.append(per_call)
        return per_call

    def round_sample(self) -> float:
        """One turn in an interleaved round: warm-up calls (discarded; one is enough for a call
        longer than round_min_s), then one timed block lasting at least round_min_s."""
        cfg = self.config
        t0, calls = self.clock(), 0
        while calls < cfg.round_warmup_calls and (calls == 0 or
                                                  self.clock() - t0 < cfg.round_min_s):
            self.fn()
            calls += 1
        self._sync()
        self.spent_s += self.clock() - t0
        if self.round_block is None:
            per_call = self._per_call_s or self.time_block(1)
            self.round_block = max(self.block_size, math.ceil(cfg.round_min_s / max(per_call,
                                                                                     1e-9)))
        elapsed = self.time_block(self.round_block)
        self.spent_s += elapsed
        self.samples.append(elapsed / self.round_block)
        return self.samples[-1]

    def done(self, elapsed: float) -> str | None:
        """The reason to stop now, or None to keep going."""
        cfg, n = self.config, len(self.samples)
        if n >= cfg.max_samples:
            return "max_samples"
        if elapsed >= cfg.max_time_s:
            return "max_time"
        if (n >= cfg.min_samples and elapsed >= cfg.min_time_s
                and relative_spread(self.samples) <= cfg.target_rel_spread):
            return "converged"
        return None

    def warnings(self) -> tuple[str, ...]:
        return quality_warnings(self.samples, self.config)

    # -- the whole procedure -----------------------------------------------------------------
    def run(self, spec: TaskSpec | None = None) -> Measurement:
        self.warmup()
        self.size_block()
        start = self.clock()
        while (reason := self.done(self.clock() - start)) is None:
            self.sample()
        return self.measurement(spec, reason)

    def measurement(self, spec: TaskSpec | None, stop_reason: str) -> Measurement:
        return Measurement(spec=spec or TaskSpec(label="callable"), samples_s=tuple(self.samples),
                           block_size=self.round_block or self.block_size,
                           stop_reason=stop_reason,
                           warnings=self.warnings())

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()


def quality_warnings(samples: list[float], config: TimerConfig) -> tuple[str, ...]:
    out = []
    if len(samples) < config.min_samples:
        out.append(f"few samples: {len(samples)} < {config.min_samples} (max_time_s reached); "
                   "raise max_time_s for a trustworthy median")
    if samples and (spread := relative_spread(samples)) > config.high_spread_warn:
        out.append(f"high spread: IQR/median = {spread:.1%} > {config.high_spread_warn:.0%}; "
                   "close other programs, pin threads, or measure longer")
    if 0 < len(samples) < 100:
        out.append(f"p99 from {len(samples)} samples is the near-maximum, not a tail estimate")
    return tuple(out)


def _cuda_block(fn: Callable[[], object], n: int) -> float:
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def time_callable(fn: Callable[[], object], config: TimerConfig | None = None,
                  label: str = "callable", device: str = "cpu") -> Measurement:
    """Time any zero-argument callable with the default procedure."""
    return Timer(fn, config, device=device).run(TaskSpec(label=label, device=device))
