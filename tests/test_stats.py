import numpy as np
import pytest

from optbench import stats


def test_quantiles_by_linear_interpolation():
    data = [3.0, 1.0, 2.0, 4.0]
    assert stats.quantile(data, 0.5) == pytest.approx(2.5)
    assert stats.quantile(data, 0.25) == pytest.approx(1.75)
    assert stats.iqr(data) == pytest.approx(3.25 - 1.75)
    assert stats.relative_spread(data) == pytest.approx(1.5 / 2.5)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        stats.quantile([], 0.5)
    with pytest.raises(ValueError):
        stats.quantile([1.0], 1.5)


def test_bootstrap_of_constant_samples_is_exact():
    ci = stats.bootstrap_ratio_ci([4.0] * 20, [2.0] * 30)
    assert (ci.estimate, ci.low, ci.high) == (2.0, 2.0, 2.0)


def test_bootstrap_ci_covers_the_true_ratio():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(40):
        a = rng.normal(10.0, 0.5, 60)
        b = rng.normal(5.0, 0.25, 60)
        covered += stats.bootstrap_ratio_ci(a, b, resamples=500, seed=rng.integers(1e9)
                                            ).contains(2.0)
    assert covered >= 34  # nominal 95%: 38 of 40; allow for bootstrap's small-sample undercover


def _drifting_pair(rng, n=120, ratio=2.0, phi=0.8):
    """Two series timed in the same rounds: a shared AR(1) drift of the machine (lag-1
    autocorrelation phi) plus each callable's own noise; true ratio of medians = ratio."""
    drift = np.zeros(n)
    shocks = rng.normal(0, 0.15, n)
    for i in range(1, n):
        drift[i] = phi * drift[i - 1] + shocks[i]
    base = ratio * np.exp(drift + rng.normal(0, 0.03, n))
    variant = np.exp(drift + rng.normal(0, 0.03, n))
    return base, variant


def test_paired_block_ci_of_a_series_against_itself_is_exactly_one():
    rng = np.random.default_rng(0)
    base, _ = _drifting_pair(rng)
    ci = stats.paired_ratio_ci(base, base.copy())
    assert (ci.estimate, ci.low, ci.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_ratio_ci([1.0, 2.0], [1.0])


def test_paired_block_ci_covers_under_shared_drift_and_is_narrower_than_unpaired():
    rng = np.random.default_rng(2)
    covered, paired_w, unpaired_w = 0, [], []
    for _ in range(60):
        base, variant = _drifting_pair(rng)
        seed = int(rng.integers(1e9))
        paired = stats.paired_ratio_ci(base, variant, resamples=400, seed=seed)
        unpaired = stats.bootstrap_ratio_ci(base, variant, resamples=400, seed=seed)
        covered += paired.contains(2.0)
        paired_w.append(paired.high - paired.low)
        unpaired_w.append(unpaired.high - unpaired.low)
    assert covered >= 51  # nominal 95% of 60 = 57; at least 85%
    assert np.median(paired_w) < 0.5 * np.median(unpaired_w)


def test_block_length_grows_slowly_with_the_rounds():
    assert [stats.block_length(n) for n in (1, 8, 27, 125, 1000)] == [1, 3, 4, 7, 15]


def test_mcnemar_exact_matches_scipys_binomial_test():
    from scipy.stats import binomtest

    for a_only, b_only in [(0, 0), (3, 0), (15, 30), (40, 41), (7, 19), (200, 160)]:
        n = a_only + b_only
        expected = 1.0 if n == 0 else binomtest(a_only, n, 0.5).pvalue
        assert stats.mcnemar_exact_p(a_only, b_only) == pytest.approx(expected, rel=1e-9)


def test_paired_accuracy_counts_and_interval():
    a = np.array([1, 1, 1, 0, 0, 1, 0, 1] * 25, bool)   # 62.5% right
    b = np.array([1, 1, 0, 1, 1, 1, 0, 1] * 25, bool)   # 75% right
    res = stats.paired_accuracy(a, b)
    assert (res.n, res.a_only, res.b_only) == (200, 25, 50)
    assert res.delta.estimate == pytest.approx(0.125)
    # Agresti-Min's Wald+2: half an example added to each of the 2x2 table's cells
    centre = (50 - 25) / 202
    half = 1.959963984540054 * np.sqrt(50 + 25 + 1 - 25 ** 2 / 202) / 202
    assert (res.delta.low, res.delta.high) == pytest.approx((centre - half, centre + half))
    assert res.p_value == pytest.approx(stats.mcnemar_exact_p(25, 50))
    # two models that never disagree: a difference of 0, but not a certain one
    same = stats.paired_accuracy(a, a)
    assert same.p_value == 1.0 and same.delta.estimate == 0.0
    assert same.delta.low == pytest.approx(-1.959963984540054 / 202)
    assert same.delta.high == pytest.approx(1.959963984540054 / 202)
    always = stats.paired_accuracy(np.zeros(20, bool), np.ones(20, bool))
    assert always.delta.estimate == always.delta.high == 1.0 and 0 < always.delta.low < 1
    with pytest.raises(ValueError, match="equal, non-empty"):
        stats.paired_accuracy(a, b[:10])


def test_paired_accuracy_interval_covers_with_few_disagreements():
    """200 examples on which the models disagree about 3 times (0.5% one way, 1% the other):
    the plain Wald interval of the mean difference covers the true difference in about 86% of
    the draws, the adjusted one in at least 95%."""
    rng = np.random.default_rng(0)
    n, a_only, b_only = 200, 0.005, 0.01
    true, draws, adjusted, wald = b_only - a_only, 600, 0, 0
    for _ in range(draws):
        cell = rng.choice(3, size=n, p=[a_only, b_only, 1 - a_only - b_only])
        a, b = cell != 1, cell != 0   # 0: only a right, 1: only b right, 2: both right
        res = stats.paired_accuracy(a, b)
        adjusted += res.delta.low <= true <= res.delta.high
        d = b.astype(float) - a.astype(float)
        half = 1.959963984540054 * d.std(ddof=1) / np.sqrt(n)
        wald += d.mean() - half <= true <= d.mean() + half
    assert adjusted / draws >= 0.95
    assert wald / draws <= 0.9


def test_holm_lives_in_stats_and_drift_uses_it():
    from optbench.monitor import drift

    assert drift.holm is stats.holm
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_t_quantiles_match_the_table():
    from optbench.stats import t_quantile

    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)):
        assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-3)


def _processes(rng, k, n, between, within=0.05, ratio=2.0):
    """k processes of n paired rounds; each process has its own speed level for each entry
    (log-normal, sd `between`), the ratio between the entries is `ratio` on average."""
    num, den = [], []
    for _ in range(k):
        a = 10.0 * np.exp(rng.normal(0, between))
        b = a / ratio * np.exp(rng.normal(0, between))
        num.append(a * np.exp(rng.normal(0, within, n)))
        den.append(b * np.exp(rng.normal(0, within, n)))
    return num, den


def test_process_ci_covers_run_to_run_variation_where_one_process_cannot():
    from optbench.stats import paired_ratio_ci, process_ratio_ci

    rng = np.random.default_rng(7)
    hit_process = hit_pooled = 0
    trials = 120
    for t in range(trials):
        num, den = _processes(rng, k=3, n=30, between=0.08)
        ci = process_ratio_ci(num, den, seed=t)
        hit_process += ci.low <= 2.0 <= ci.high
        pooled = paired_ratio_ci(np.concatenate(num), np.concatenate(den), seed=t)
        hit_pooled += pooled.low <= 2.0 <= pooled.high
    assert hit_process / trials >= 0.88          # nominal 95%
    assert hit_pooled / trials <= 0.8            # one process's CI misses the between part


def test_process_ci_of_a_series_against_itself_is_exactly_one():
    from optbench.stats import process_ratio_ci

    num, _ = _processes(np.random.default_rng(1), k=3, n=25, between=0.1)
    ci = process_ratio_ci(num, num)
    assert (ci.estimate, ci.low, ci.high) == (1.0, 1.0, 1.0)
