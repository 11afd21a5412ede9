"""Compare callables measured in the same run, interleaved, with bootstrap confidence intervals.

Interleaving (one turn of each callable per round, in rotating order) spreads slow drifts of the
machine (frequency, other processes) evenly over all callables, so their ratio is fair. Each turn
is a steady-state block: warm-up calls first (discarded: the previous turn ran another model, so
caches and thread pools are cold), then a timed block of at least `round_min_s`. Budgets are per
entry (its own time), the comparison ends when every entry has converged or used its budget, and
never before each has `min_samples` (a hard cap of twice the summed budgets bounds it). Rounds
are pairs: speed-up CIs come from a moving-block bootstrap over rounds (stats.paired_ratio_ci).

`pool` joins the comparisons of the same entries made in several fresh processes (processes =
N): samples are concatenated, each keeps which process it came from, and speed-up CIs treat the
processes as the units (stats.process_ratio_ci), so they cover run-to-run variation too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from optbench.measure.measurement import Measurement, TaskSpec
from optbench.measure.timer import Clock, Timer, TimerConfig, quality_warnings
from optbench.stats import Interval, bootstrap_ratio_ci, paired_ratio_ci, process_ratio_ci

WIDE_CI = 0.10  # warn when the CI is wider than 10% of the ratio


@dataclasses.dataclass(frozen=True)
class Ratio:
    """speedup = median(baseline) / median(variant): > 1 means the variant is faster."""

    variant: str
    baseline: str
    speedup: Interval
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"variant": self.variant, "baseline": self.baseline,
                "speedup": self.speedup.to_dict(), "warnings": list(self.warnings)}


@dataclasses.dataclass(frozen=True)
class Comparison:
    measurements: dict[str, Measurement]
    ratios: dict[str, Ratio]
    baseline: str

    def to_dict(self) -> dict:
        return {"baseline": self.baseline,
                "measurements": {k: m.to_dict() for k, m in self.measurements.items()},
                "ratios": {k: r.to_dict() for k, r in self.ratios.items()}}


def compare(fns: dict[str, Callable[[], object]], baseline: str | None = None,
            config: TimerConfig | None = None, specs: dict[str, TaskSpec] | None = None,
            clock: Clock = time.perf_counter, device: str = "cpu") -> Comparison:
    """Time every callable interleaved; ratios against `baseline` (default: the first)."""
    if not fns:
        raise ValueError("compare() needs at least one callable")
    baseline = baseline or next(iter(fns))
    if baseline not in fns:
        raise ValueError(f"baseline {baseline!r} is not one of {list(fns)}")
    config = config or TimerConfig()
    timers = {name: Timer(fn, config, clock=clock, device=device) for name, fn in fns.items()}
    for timer in timers.values():
        timer.warmup()
        timer.size_block()
    reasons = _interleave(list(timers.values()), clock)
    specs = specs or {}
    measurements = {
        name: t.measurement(specs.get(name, TaskSpec(label=name, device=device)), reasons[i])
        for i, (name, t) in enumerate(timers.items())}
    ratios = {name: ratio_between(name, baseline, measurements) for name in measurements}
    return Comparison(measurements=measurements, ratios=ratios, baseline=baseline)


def _interleave(timers: list[Timer], clock: Clock) -> list[str]:
    start, rnd = clock(), 0
    hard_cap = 2 * sum(t.config.max_time_s for t in timers)
    while True:
        reasons = [t.done(t.spent_s) for t in timers]   # each on its own time
        floor = all(len(t.samples) >= t.config.min_samples for t in timers)
        if all(r is not None for r in reasons) and (floor or "max_samples" in reasons):
            return reasons
        if clock() - start >= hard_cap:  # a slow entry could not reach min_samples: flagged
            return [r or "hard_cap" for r in reasons]
        order = timers[rnd % len(timers):] + timers[:rnd % len(timers)]
        for timer in order:  # sample counts stay equal: rounds are pairs
            timer.round_sample()
        rnd += 1


def pool(comparisons: list[Comparison], config: TimerConfig | None = None) -> Comparison:
    """One comparison from the same entries compared in several processes (in order). Entries
    missing from some process keep the processes they ran in. With `config`, sample-quality
    warnings are those of the pooled samples."""
    first = comparisons[0]
    measurements = {}
    for name, m in first.measurements.items():
        parts = [c.measurements[name] for c in comparisons if name in c.measurements]
        samples = tuple(x for p in parts for x in p.samples_s)
        reasons = sorted({p.stop_reason for p in parts})
        measurements[name] = dataclasses.replace(
            m, samples_s=samples, process_sizes=tuple(len(p.samples_s) for p in parts),
            stop_reason=",".join(reasons),
            warnings=(quality_warnings(list(samples), config) if config else
                      tuple(dict.fromkeys(w for p in parts for w in p.warnings))))
    ratios = {name: ratio_between(name, first.baseline, measurements) for name in measurements}
    return Comparison(measurements=measurements, ratios=ratios, baseline=first.baseline)


def ratio_between(name: str, baseline: str, measurements: dict[str, Measurement]) -> Ratio:
    """Speed-up of `name` over `baseline` (> 1: name is faster), with the CI that fits how they
    were sampled: per-process when both ran in the same fresh processes, paired by round when
    interleaved, else independent."""
    base, var = measurements[baseline], measurements[name]
    if base.processes > 1 and base.process_sizes == var.process_sizes:  # fresh processes
        ci = process_ratio_ci(base.groups(), var.groups())
    elif len(base.samples_s) == len(var.samples_s):  # interleaved rounds: paired, blocked
        ci = paired_ratio_ci(base.samples_s, var.samples_s)
    else:
        ci = bootstrap_ratio_ci(base.samples_s, var.samples_s)
    warnings = []
    if ci.estimate > 0 and (ci.high - ci.low) / ci.estimate > WIDE_CI:
        warnings.append(f"wide CI: {ci.low:.3f}..{ci.high:.3f} around {ci.estimate:.3f}; "
                        "measure longer or on a quieter machine")
    return Ratio(variant=name, baseline=baseline, speedup=ci, warnings=tuple(warnings))
