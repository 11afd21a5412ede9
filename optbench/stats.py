"""Small, exact statistics shared by measure/, report/ and monitor/.

Pure functions over sequences of floats; quantiles use linear interpolation between closest
ranks (numpy's default, "type 7"), so hand-computed values are easy to check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def quantile(samples: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) with linear interpolation between closest ranks."""
    arr = _as_array(samples)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must lie in [0, 1], got {q}")
    return float(np.quantile(arr, q))


def iqr(samples: Sequence[float]) -> float:
    """Interquartile range: the 75th minus the 25th percentile."""
    arr = _as_array(samples)
    q25, q75 = np.quantile(arr, [0.25, 0.75])
    return float(q75 - q25)


def relative_spread(samples: Sequence[float]) -> float:
    """IQR divided by the median: the timer's stopping criterion and the high-spread warning."""
    med = quantile(samples, 0.5)
    return iqr(samples) / med if med > 0 else float("inf")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high,
                "confidence": self.confidence}


def bootstrap_ratio_ci(
    numerator: Sequence[float],
    denominator: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.median,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap CI of statistic(numerator) / statistic(denominator).

    The two samples are resampled independently (they come from different callables).
    """
    num, den = _as_array(numerator), _as_array(denominator)
    rng = np.random.default_rng(seed)
    num_idx = rng.integers(0, len(num), size=(resamples, len(num)))
    den_idx = rng.integers(0, len(den), size=(resamples, len(den)))
    num_stats = np.apply_along_axis(statistic, 1, num[num_idx])
    den_stats = np.apply_along_axis(statistic, 1, den[den_idx])
    ratios = num_stats / den_stats
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return Interval(float(statistic(num) / statistic(den)), float(low), float(high), confidence)


def block_length(n: int) -> int:
    """Moving-block length for n serially correlated rounds: about 1.5 n^(1/3) (the usual
    n^(1/3) rate; the factor because timing series here had lag-1 autocorrelation up to 0.8)."""
    return max(1, min(n, round(1.5 * n ** (1 / 3))))


def paired_ratio_ci(
    numerator: Sequence[float],
    denominator: Sequence[float],
    statistic: Callable[..., float] = np.median,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
    block: int | None = None,
) -> Interval:
    """CI of statistic(numerator) / statistic(denominator) where numerator[i] and
    denominator[i] were measured in the same interleaved round.

    A moving-block bootstrap over rounds: blocks of consecutive rounds are drawn with
    replacement, the same rounds for both series, so a slow drift of the machine that hits both
    in a round cancels in the ratio (pairing), and the serial correlation inside a block is kept.
    A series compared with an identical copy of itself gives exactly [1, 1].
    """
    num, den = _as_array(numerator), _as_array(denominator)
    if len(num) != len(den):
        raise ValueError(f"paired series need equal lengths, got {len(num)} and {len(den)}")
    n = len(num)
    length = block or block_length(n)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - length + 1, size=(resamples, -(-n // length)))
    idx = (starts[:, :, None] + np.arange(length)).reshape(resamples, -1)[:, :n]
    ratios = statistic(num[idx], axis=1) / statistic(den[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    return Interval(float(statistic(num) / statistic(den)), float(low), float(high), confidence)


def process_ratio_ci(
    numerator_groups: Sequence[Sequence[float]],
    denominator_groups: Sequence[Sequence[float]],
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """CI of median(numerator) / median(denominator) pooled over several processes, where
    group p of each was timed in the same fresh process p (rounds paired inside it).

    Between-process variation is what one process cannot see (allocator state, memory layout,
    which core, thermal state), so the processes are the units: a t-interval on the
    per-process log ratios (N-1 degrees of freedom), centred on the pooled ratio. Its
    standard error is never taken below what the processes' own paired block bootstraps
    allow (with 2-3 processes their spread can look small by chance). One process: the paired
    block bootstrap alone. A series compared with an identical copy gives [1, 1].
    """
    if len(numerator_groups) != len(denominator_groups):
        raise ValueError("numerator and denominator need the same processes")
    num = np.concatenate([_as_array(g) for g in numerator_groups])
    den = np.concatenate([_as_array(g) for g in denominator_groups])
    if len(numerator_groups) == 1:
        return paired_ratio_ci(num, den, confidence=confidence, seed=seed)
    z = _normal_quantile(0.5 + confidence / 2)
    logs, within = [], []
    for p, (n, d) in enumerate(zip(numerator_groups, denominator_groups, strict=True)):
        ci = paired_ratio_ci(n, d, confidence=confidence, seed=seed + p)
        logs.append(math.log(ci.estimate))
        within.append(((math.log(ci.high) - math.log(ci.low)) / (2 * z)) ** 2)
    k = len(logs)
    se = math.sqrt(max(float(np.var(logs, ddof=1)), float(np.mean(within))) / k)
    half = t_quantile(0.5 + confidence / 2, k - 1) * se
    pooled = float(np.median(num) / np.median(den))
    return Interval(pooled, pooled * math.exp(-half), pooled * math.exp(half), confidence)


def proportion_half_width(p: float, n: int, confidence: float = 0.95) -> float:
    """Half-width of the normal-approximation CI of a proportion p measured on n examples
    (e.g. a top-1 accuracy on a split of n images), in the proportion's units."""
    return _normal_quantile(0.5 + confidence / 2) * math.sqrt(p * (1 - p) / n)


def _normal_quantile(q: float) -> float:
    return float(np.sqrt(2.0) * _erfinv(2.0 * q - 1.0))


def _erfinv(y: float) -> float:
    lo, hi = -6.0, 6.0     # erf is monotone: bisection is exact enough and dependency-free
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
    return (lo + hi) / 2


def t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t with df degrees of freedom (numerical integration of the
    density; no SciPy needed)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    grid = np.linspace(0.0, abs(x), 4001)
    dens = c * (1 + grid ** 2 / df) ** (-(df + 1) / 2)
    half = float(np.trapezoid(dens, grid))
    return 0.5 + half if x >= 0 else 0.5 - half


def t_quantile(q: float, df: int) -> float:
    """Quantile of Student's t with df degrees of freedom (0.5 < q < 1), by bisection on its
    CDF."""
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < q else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class PairedT:
    """Paired replicates (e.g. seed-matched training runs): the mean difference, its Student-t
    CI over the replicates, and the two-sided p-value of "no difference"."""

    n: int
    mean: float
    sd: float
    ci: Interval
    p_value: float

    def to_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "ci": self.ci.to_dict(),
                "p_value": self.p_value}


def paired_t(differences: Sequence[float], confidence: float = 0.95) -> PairedT:
    """The paired t-test on per-replicate differences (b - a); needs at least two."""
    d = _as_array(differences)
    if d.size < 2:
        raise ValueError(f"a paired t-test needs at least 2 replicates, got {d.size}")
    mean, sd, df = float(d.mean()), float(d.std(ddof=1)), d.size - 1
    se = sd / math.sqrt(d.size)
    if se == 0:
        p = 1.0 if mean == 0 else 0.0
        return PairedT(d.size, mean, sd, Interval(mean, mean, mean, confidence), p)
    half = t_quantile(0.5 + confidence / 2, df) * se
    p = 2 * (1 - t_cdf(abs(mean) / se, df))
    return PairedT(d.size, mean, sd, Interval(mean, mean - half, mean + half, confidence),
                   min(1.0, max(0.0, p)))


def units_to_decide(sd: float, gap: float, n: int, confidence: float = 0.95,
                    most: int = 100_000) -> int | None:
    """The fewest units (seeds) whose Student-t CI of the mean, with this `sd`, would be
    narrower than `gap` on each side: t(n'-1) * sd / sqrt(n') < gap, for n' >= n. The t
    quantile shrinks as units are added, so at a few seeds this is fewer than the 1/sqrt(n)
    law gives. None when even `most` units would not do (gap 0)."""
    if gap <= 0:
        return None
    if sd <= 0:
        return n
    k = max(n, 2)
    while k <= most:
        if t_quantile(0.5 + confidence / 2, k - 1) * sd / math.sqrt(k) < gap:
            return k
        k = k + 1 if k < 1000 else int(k * 1.01) + 1
    return None


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class PairedAccuracy:
    """Two classifiers scored on the same examples: b's accuracy minus a's, with a CI of the
    paired difference and McNemar's exact test on the examples where they disagree."""

    n: int
    a_only: int               # examples a gets right and b gets wrong
    b_only: int               # and the other way round
    delta: Interval           # accuracy(b) - accuracy(a), as a fraction
    p_value: float            # exact two-sided McNemar (binomial on the discordant pairs)

    def to_dict(self) -> dict:
        return {"n": self.n, "a_only": self.a_only, "b_only": self.b_only,
                "delta": self.delta.to_dict(), "p_value": self.p_value}


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value: P(X <= min) * 2 for X ~ Binomial(a_only + b_only, 1/2)."""
    import math

    n, k = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2 ** n)


def paired_accuracy(a_correct, b_correct, confidence: float = 0.95) -> PairedAccuracy:
    """Compare two models' per-example correctness (booleans, same examples, same order).

    The CI is Agresti and Min's adjusted Wald interval for matched pairs ("Wald+2", 2005: half
    an example added to each cell of the 2x2 table, truncated to [-1, 1]). The plain Wald
    interval of the mean difference collapses to a point when the two models never disagree
    and is too narrow with few disagreements (small test sets, per-class comparisons); at
    thousands of examples the two agree to a few thousandths of a point."""
    from statistics import NormalDist

    a, b = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired accuracy needs two equal, non-empty 1-D arrays, got "
                         f"{a.shape} and {b.shape}")
    n = a.size
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    centre = (b_only - a_only) / (n + 2)
    se = math.sqrt(a_only + b_only + 1 - (b_only - a_only) ** 2 / (n + 2)) / (n + 2)
    return PairedAccuracy(n=n, a_only=a_only, b_only=b_only,
                          delta=Interval((b_only - a_only) / n, max(-1.0, centre - z * se),
                                         min(1.0, centre + z * se), confidence),
                          p_value=mcnemar_exact_p(a_only, b_only))


def _as_array(samples: Sequence[float]) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"expected a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    return arr
