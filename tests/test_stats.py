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
