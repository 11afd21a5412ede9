"""A/B statistics over the server's per-arm records: is model B better, worse, or not yet
distinguishable from A?

Accuracy (or any success rate): two-proportion z-test with a Wald interval of the difference.
Latency: Mann-Whitney U test and a bootstrap interval of the median ratio B/A. The sample size
needed for a minimum detectable effect is computed up front; testing before it is reached is
flagged as peeking (repeated looks inflate false positives).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np

from optbench.errors import ConfigError, MissingInputError
from optbench.stats import Interval, bootstrap_ratio_ci


def _norm_ppf(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclasses.dataclass(frozen=True)
class ProportionTest:
    rate_a: float
    rate_b: float
    difference: Interval      # rate_b - rate_a
    z: float
    p_value: float


def two_proportion_ztest(success_a: int, n_a: int, success_b: int, n_b: int,
                         confidence: float = 0.95) -> ProportionTest:
    """Pooled two-sided z-test of rate_b == rate_a; unpooled (Wald) interval of the difference."""
    if min(n_a, n_b) <= 0:
        raise ValueError("both arms need at least one observation")
    pa, pb = success_a / n_a, success_b / n_b
    pooled = (success_a + success_b) / (n_a + n_b)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (pb - pa) / se0 if se0 > 0 else 0.0
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    half = _norm_ppf(0.5 + confidence / 2) * se
    return ProportionTest(pa, pb, Interval(pb - pa, pb - pa - half, pb - pa + half, confidence),
                          z, 2 * _norm_sf(abs(z)))


def mann_whitney(a, b) -> tuple[float, float]:
    """Mann-Whitney U of sample b vs a (U counts pairs with b > a) and the two-sided p-value of
    the normal approximation with tie and continuity corrections (as scipy's 'asymptotic')."""
    from scipy.stats import rankdata

    a, b = np.asarray(a, float), np.asarray(b, float)
    n1, n2 = len(a), len(b)
    ranks = rankdata(np.concatenate([a, b]))
    u_b = ranks[n1:].sum() - n2 * (n2 + 1) / 2
    _, counts = np.unique(ranks, return_counts=True)
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - (counts ** 3 - counts).sum() / (n * (n - 1))))
    mu = n1 * n2 / 2
    if sigma == 0:
        return float(u_b), 1.0
    z = (abs(u_b - mu) - 0.5) / sigma
    return float(u_b), float(min(1.0, 2 * _norm_sf(max(z, 0.0))))


def sample_size(baseline_rate: float, min_detectable_effect: float, alpha: float = 0.05,
                power: float = 0.8) -> int:
    """Observations per arm for a two-sided two-proportion test to detect an absolute change
    of `min_detectable_effect` from `baseline_rate` with the given power."""
    p1, p2 = baseline_rate, baseline_rate + min_detectable_effect
    if not (0 < p1 < 1 and 0 < p2 < 1) or min_detectable_effect == 0:
        raise ConfigError(f"rates must stay inside (0, 1) and the effect must be non-zero; got "
                          f"baseline {p1} and effect {min_detectable_effect}")
    p_bar = (p1 + p2) / 2
    za, zb = _norm_ppf(1 - alpha / 2), _norm_ppf(power)
    n = (za * math.sqrt(2 * p_bar * (1 - p_bar))
         + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / min_detectable_effect ** 2
    return math.ceil(n)


@dataclasses.dataclass(frozen=True)
class ABReport:
    n: dict[str, int]
    accuracy: ProportionTest | None
    latency_median_s: dict[str, float]
    latency_ratio: Interval | None          # median B / median A
    latency_p_value: float | None
    planned_n: int | None
    peeking: bool
    verdict: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def render(self) -> str:
        lines = [f"A/B: n = {self.n['a']} (A) vs {self.n['b']} (B)"]
        if self.accuracy:
            acc = self.accuracy
            d = acc.difference
            lines.append(f"accuracy: A {acc.rate_a:.4f}, B {acc.rate_b:.4f}, B - A = "
                         f"{d.estimate:+.4f} [{d.low:+.4f}, {d.high:+.4f}], z = {acc.z:.2f}, "
                         f"p = {acc.p_value:.3g}")
        if self.latency_ratio:
            r = self.latency_ratio
            lines.append(f"latency median: A {self.latency_median_s['a'] * 1e3:.2f} ms, B "
                         f"{self.latency_median_s['b'] * 1e3:.2f} ms, B/A = {r.estimate:.3f} "
                         f"[{r.low:.3f}, {r.high:.3f}], Mann-Whitney p = "
                         f"{self.latency_p_value:.3g}")
        if self.peeking:
            lines.append(f"WARNING: tested before the planned {self.planned_n} per arm "
                         "(peeking): repeated looks inflate false positives; wait for the full "
                         "sample before acting on this verdict")
        lines.append(f"verdict: {self.verdict}")
        return "\n".join(lines)


def analyze(records: list[dict], alpha: float = 0.05, planned_n: int | None = None,
            metric: str = "accuracy") -> ABReport:
    """`records` as the server logs them: arm, latency_s, status, predictions and (when clients
    sent them) labels. `metric` decides the verdict: 'accuracy' or 'latency'."""
    ok = [r for r in records if r.get("status", 200) == 200]
    arms = {arm: [r for r in ok if r["arm"] == arm] for arm in ("a", "b")}
    n = {arm: len(rs) for arm, rs in arms.items()}
    if min(n.values()) < 2:
        raise ConfigError(f"each arm needs at least 2 successful records, got {n}; send more "
                          "traffic through the A/B route")
    accuracy = _accuracy(arms)
    lat = {arm: np.array([r["latency_s"] for r in rs]) for arm, rs in arms.items()}
    ratio = bootstrap_ratio_ci(lat["b"], lat["a"])
    _, lat_p = mann_whitney(lat["a"], lat["b"])
    peeking = planned_n is not None and min(n.values()) < planned_n
    if metric == "accuracy" and accuracy is None:
        raise ConfigError("no labels in the records, so accuracy cannot be compared; send "
                          "\"labels\" with requests, or use metric='latency'")
    verdict = _verdict(metric, accuracy, ratio, lat_p, alpha)
    return ABReport(n, accuracy, {k: float(np.median(v)) for k, v in lat.items()}, ratio,
                    lat_p, planned_n, peeking, verdict)


def _accuracy(arms: dict[str, list[dict]]) -> ProportionTest | None:
    counts = {}
    for arm, rs in arms.items():
        pairs = [(p, y) for r in rs if r.get("labels") is not None
                 for p, y in zip(r["predictions"], r["labels"], strict=True)]
        if not pairs:
            return None
        counts[arm] = (sum(p == y for p, y in pairs), len(pairs))
    return two_proportion_ztest(*counts["a"], *counts["b"])


def _verdict(metric: str, accuracy: ProportionTest | None, ratio: Interval, lat_p: float,
             alpha: float) -> str:
    if metric == "accuracy":
        if accuracy.p_value >= alpha:
            return (f"not yet distinguishable: accuracy differs by "
                    f"{accuracy.difference.estimate:+.4f} with p = {accuracy.p_value:.3g} "
                    f">= {alpha}")
        better = accuracy.difference.estimate > 0
        return f"B is {'better' if better else 'worse'} in accuracy (p = {accuracy.p_value:.3g})"
    if lat_p >= alpha:
        return f"not yet distinguishable in latency (Mann-Whitney p = {lat_p:.3g} >= {alpha})"
    faster = ratio.estimate < 1
    return (f"B is {'better' if faster else 'worse'}: {'faster' if faster else 'slower'} "
            f"(median ratio B/A {ratio.estimate:.3f}, p = {lat_p:.3g})")


def load_records(path: str | os.PathLike) -> list[dict]:
    """The JSON-lines log written by `optbench serve --ab-log`."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"A/B log not found: {path}; start the server with --ab-log "
                                f"{path}")
    records = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"{path}:{i} is not a JSON line; the A/B log holds one JSON "
                              "object per line") from None
        if not isinstance(rec, dict) or rec.get("arm") not in ("a", "b"):
            raise ConfigError(f"{path}:{i}: a record needs \"arm\": \"a\" or \"b\"")
        records.append(rec)
    return records
