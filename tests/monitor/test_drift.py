import numpy as np
import pytest
import torch

scipy_stats = pytest.importorskip("scipy.stats")

from optbench.monitor import drift  # noqa: E402


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_ks_matches_scipy(shift):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=400), rng.normal(shift, 1, size=300)
    d, p = drift.ks_2samp(a, b)
    ref = scipy_stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)


def test_psi_closed_form():
    # shares 0.5/0.5 -> 0.25/0.75: (0.25-0.5) ln(0.5) + (0.75-0.5) ln(1.5)
    expected = -0.25 * np.log(0.5) + 0.25 * np.log(1.5)
    assert drift.psi_from_counts([50, 50], [25, 75]) == pytest.approx(expected)
    assert drift.psi_from_counts([10, 20, 30], [10, 20, 30]) == 0.0
    rng = np.random.default_rng(1)
    same = drift.psi(rng.normal(size=5000), rng.normal(size=5000))
    assert same < 0.01
    assert drift.psi(rng.normal(size=5000), rng.normal(1.0, 1, size=5000)) > 0.25


def test_chi_square_matches_scipy():
    ref, cur = [120, 80, 50, 0], [100, 95, 40, 0]
    stat, p, dof = drift.chi_square(ref, cur)
    expected = scipy_stats.chi2_contingency(np.array([ref[:3], cur[:3]]), correction=False)
    assert stat == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    assert dof == expected.dof == 2


def test_holm_matches_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> monotone: .02,.03,.06,.06
    np.testing.assert_allclose(drift.holm(p), [0.03, 0.06, 0.06, 0.02])


def _fashion(fashion_dir, split, limit, seed):
    from optbench.data import ImageTransform, load_fashion_mnist

    ds = load_fashion_mnist(split, fashion_dir, ImageTransform(size=28), limit=limit, seed=seed)
    return ds.images.numpy().astype(np.float64) / 255.0


def _rotate(images):
    return np.rot90(images, 1, axes=(1, 2))


SHIFTS = {
    "brightened": lambda x, rng: np.clip(x + 0.15, 0, 1),
    "rotated 90": lambda x, rng: _rotate(x),
    "gaussian noise": lambda x, rng: np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1),
}


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_real_shifts_are_flagged(fashion_dir, shift):
    reference = _fashion(fashion_dir, "train", 2000, seed=0)
    current = SHIFTS[shift](_fashion(fashion_dir, "test", 500, seed=0),
                            np.random.default_rng(0))
    report = drift.compare(drift.build_profile(inputs=reference), inputs=current)
    assert report.drifted, report.table()


def test_same_distribution_false_alarm_rate_is_near_nominal(fashion_dir):
    """Windows drawn from the test split against a profile of the training split: with a
    family-wise alpha of 0.05 over all features, alarms should be rare."""
    profile = drift.build_profile(inputs=_fashion(fashion_dir, "train", 3000, seed=0))
    pool = _fashion(fashion_dir, "test", 10000, seed=0)
    rng = np.random.default_rng(0)
    alarms = 0
    draws = 40
    for _ in range(draws):
        window = pool[rng.choice(len(pool), 300, replace=False)]
        alarms += drift.compare(profile, inputs=window, alpha=0.05).drifted
    # nominal 5%: P(Binomial(40, 0.05) >= 7) < 0.01
    assert alarms / draws < 7 / draws, alarms


def test_prediction_shift_is_caught_by_chi_square():
    rng = np.random.default_rng(0)
    ref_probs = rng.dirichlet(np.ones(10), size=2000)
    skewed = rng.dirichlet(np.ones(10), size=500)
    skewed[:, 3] += 2.0  # the model now says class 3 far more often
    skewed /= skewed.sum(1, keepdims=True)
    report = drift.compare(drift.build_profile(probabilities=ref_probs), probabilities=skewed)
    chi = [t for t in report.tests if t.test == "chi2"][0]
    assert chi.drifted and report.drifted


def test_profile_is_saved_with_a_checksum_and_live_monitor_reports(tmp_path):
    import json

    from serve_helpers import onnx_artifact

    from optbench.artifact import read_manifest

    manifest = onnx_artifact(tmp_path)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(600, 1, 8, 8))
    probs = rng.dirichlet(np.ones(10), size=600)
    drift.save_profile(manifest.parent, drift.build_profile(inputs, probs))
    assert drift.PROFILE_FILE in json.loads(manifest.read_text())["files"]
    read_manifest(manifest)  # checksums still verify
    monitor = drift.LiveDriftMonitor(drift.load_profile(manifest.parent), window=100)
    assert monitor.observe(inputs[:50], probs[:50]) is None
    report = monitor.observe(inputs[50:100] + 3.0, probs[50:100])
    assert report is not None and report.drifted
    assert "brightness" in report.table()


def test_server_publishes_drift_gauges(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from serve_helpers import SHAPE, onnx_artifact

    from optbench.serve import ServeSettings, create_app

    manifest = onnx_artifact(tmp_path)
    rng = np.random.default_rng(0)
    drift.save_profile(manifest.parent, drift.build_profile(
        rng.normal(size=(500, *SHAPE)), rng.dirichlet(np.ones(10), size=500)))
    settings = ServeSettings(manifests=(str(manifest),), drift_window=40, max_items=64)
    with TestClient(create_app(settings)) as c:
        x = torch.randn(40, *SHAPE) + 5.0
        assert c.post("/v1/models/tiny/predict", json={"inputs": x.tolist()}).status_code == 200
        text = c.get("/metrics").text
    assert 'optbench_drift_detected{model="tiny"} 1.0' in text
    assert 'optbench_drift_p_value{feature="brightness",model="tiny",test="ks"}' in text
