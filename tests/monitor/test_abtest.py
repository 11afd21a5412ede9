import json
import math

import numpy as np
import pytest

scipy_stats = pytest.importorskip("scipy.stats")

from optbench.errors import ConfigError  # noqa: E402
from optbench.monitor import abtest  # noqa: E402


def test_two_proportion_ztest_closed_form():
    # 80/100 vs 90/100: pooled 0.85, se0 = sqrt(.85*.15*.02) = 0.050498; z = 0.1/0.050498
    t = abtest.two_proportion_ztest(80, 100, 90, 100)
    assert t.z == pytest.approx(0.1 / math.sqrt(0.85 * 0.15 * 0.02))
    assert t.p_value == pytest.approx(2 * scipy_stats.norm.sf(t.z))
    se = math.sqrt(0.8 * 0.2 / 100 + 0.9 * 0.1 / 100)
    assert t.difference.low == pytest.approx(0.1 - 1.959964 * se, abs=1e-6)
    assert t.difference.high == pytest.approx(0.1 + 1.959964 * se, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_mann_whitney_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = np.round(rng.lognormal(0, 0.3, 200), 2)   # rounding makes ties
    b = np.round(rng.lognormal(0.05 * seed, 0.3, 150), 2)
    u, p = abtest.mann_whitney(a, b)
    ref = scipy_stats.mannwhitneyu(b, a, method="asymptotic", use_continuity=True)
    assert u == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue, rel=1e-9)


def test_sample_size_closed_form():
    # p1 = .5, p2 = .6, alpha .05 two-sided, power .8: the textbook answer is 388 per arm
    assert abtest.sample_size(0.5, 0.1) == 388
    assert abtest.sample_size(0.9, 0.01) > abtest.sample_size(0.9, 0.02)
    with pytest.raises(ConfigError, match="inside"):
        abtest.sample_size(0.95, 0.1)


def _records(n, acc_a, acc_b, lat_a, lat_b, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for arm, acc, lat in (("a", acc_a, lat_a), ("b", acc_b, lat_b)):
        for _ in range(n):
            y = int(rng.integers(10))
            pred = y if rng.random() < acc else (y + 1) % 10
            out.append({"arm": arm, "latency_s": float(rng.lognormal(np.log(lat), 0.2)),
                        "status": 200, "predictions": [pred], "labels": [y]})
    return out


def test_verdicts_and_peeking():
    better = abtest.analyze(_records(2000, 0.85, 0.90, 0.010, 0.010))
    assert better.verdict.startswith("B is better in accuracy")
    worse = abtest.analyze(_records(2000, 0.90, 0.85, 0.010, 0.010))
    assert worse.verdict.startswith("B is worse")
    tie = abtest.analyze(_records(300, 0.88, 0.88, 0.010, 0.010), planned_n=1000)
    assert tie.verdict.startswith("not yet distinguishable") and tie.peeking
    assert "peeking" in tie.render()
    faster = abtest.analyze(_records(500, 0.9, 0.9, 0.010, 0.007), metric="latency")
    assert faster.verdict.startswith("B is better: faster")
    assert faster.latency_ratio.high < 1.0


def test_records_round_trip_through_the_server_log_format(tmp_path):
    log = tmp_path / "ab.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in _records(50, 0.9, 0.9, 0.01, 0.01)))
    assert len(abtest.load_records(log)) == 100
    log.write_text("{bad json\n")
    with pytest.raises(ConfigError, match=":1 is not a JSON line"):
        abtest.load_records(log)
    with pytest.raises(ConfigError, match="at least 2"):
        abtest.analyze([{"arm": "a", "latency_s": 0.1}])
