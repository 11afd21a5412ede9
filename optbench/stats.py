"""Small, exact statistics shared by measure/, report/ and monitor/.

Pure functions over sequences of floats; quantiles use linear interpolation between closest
ranks (numpy's default, "type 7"), so hand-computed values are easy to check.
"""

from __future__ import annotations

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


def _as_array(samples: Sequence[float]) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"expected a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    return arr
