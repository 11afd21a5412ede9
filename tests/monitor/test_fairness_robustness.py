import numpy as np
import pytest
import torch

from optbench.monitor import fairness, robustness


@pytest.fixture
def binary_case():
    rng = np.random.default_rng(0)
    groups = rng.choice(["a", "b", "c"], size=600)
    y_true = rng.integers(0, 2, 600)
    bias = np.where(groups == "a", 0.2, 0.0)
    y_pred = (rng.random(600) < 0.4 + bias + 0.3 * y_true).astype(int)
    return y_true, y_pred, groups


def test_matches_fairlearn(binary_case):
    fl = pytest.importorskip("fairlearn.metrics")
    y_true, y_pred, groups = binary_case
    kw = dict(sensitive_features=groups)
    assert fairness.demographic_parity_difference(y_true, y_pred, groups) == pytest.approx(
        fl.demographic_parity_difference(y_true, y_pred, **kw))
    assert fairness.demographic_parity_ratio(y_true, y_pred, groups) == pytest.approx(
        fl.demographic_parity_ratio(y_true, y_pred, **kw))
    assert fairness.equalized_odds_difference(y_true, y_pred, groups) == pytest.approx(
        fl.equalized_odds_difference(y_true, y_pred, **kw))
    frame = fl.MetricFrame(metrics={"tpr": fl.true_positive_rate, "fpr": fl.false_positive_rate,
                                    "sel": fl.selection_rate},
                           y_true=y_true, y_pred=y_pred, **kw)
    for g in fairness.group_metrics(y_true, y_pred, groups):
        row = frame.by_group.loc[g.group]
        assert (g.tpr, g.fpr, g.selection_rate) == pytest.approx(
            (row["tpr"], row["fpr"], row["sel"]))


def test_one_vs_rest_and_who_pays():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    ref = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    var = np.array([0, 0, 1, 0, 2, 1, 1, 2])
    np.testing.assert_allclose(fairness.per_class_accuracy(y, var, 3), [1.0, 0.5, 0.5])
    rows = fairness.who_pays(y, ref, var, ["x", "y", "z"])
    assert [r["class"] for r in rows][:2] == ["y", "z"] and rows[0]["delta_points"] == -50.0
    # "is it x?" predicted for 2 of 4 in group p (items 0, 1) and 1 of 4 in group q (item 3)
    ovr = fairness.one_vs_rest(y, var, np.array(list("ppqqppqq")), ["x", "y", "z"])
    assert set(ovr) == {"x", "y", "z"} and ovr["x"]["demographic_parity_difference"] == 0.25


def _trained_tiny():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 3))
    x = torch.rand(300, 1, 8, 8)
    y = (x.mean((1, 2, 3)) * 3 * 1.999 - 2.0).clamp(0, 2).long()
    opt = torch.optim.Adam(model.parameters(), 0.01)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model((x - 0.5) / 0.25), y).backward()
        opt.step()
    return model.eval(), x, y


def test_fgsm_and_pgd_match_the_adversarial_robustness_toolbox():
    pytest.importorskip("art")
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    model, x, y = _trained_tiny()
    mean, std = 0.5, 0.25
    art_model = PyTorchClassifier(robustness._PixelModel(model, mean, std).eval(),
                                  loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                                  nb_classes=3, clip_values=(0.0, 1.0), device_type="cpu")
    ours = robustness.fgsm(model, x, y, eps=0.03, mean=mean, std=std)
    theirs = FastGradientMethod(art_model, eps=0.03).generate(x.numpy(), y=y.numpy())
    assert np.abs(ours.numpy() - theirs).max() <= 1e-6
    assert (ours != x).any()  # the attack moved something
    ours = robustness.pgd(model, x, y, eps=0.03, alpha=0.01, steps=5, random_start=False,
                          mean=mean, std=std)
    theirs = ProjectedGradientDescentPyTorch(
        art_model, eps=0.03, eps_step=0.01, max_iter=5, num_random_init=0, batch_size=len(y),
        verbose=False).generate(x.numpy(), y=y.numpy())
    assert np.abs(ours.numpy() - theirs).max() <= 1e-6


def test_robust_accuracy_falls_with_eps_and_transfer_is_labelled_by_the_caller():
    model, x, y = _trained_tiny()
    data = ((x - 0.5) / 0.25, y)
    white = robustness.robust_accuracy(model, data, [0.0, 0.03, 0.1], mean=0.5, std=0.25)
    assert white[0.0] > 0.8 and white[0.1] < white[0.03] < white[0.0]
    # PGD stays in the eps ball and the pixel range
    adv = robustness.pgd(model, x, y, eps=0.05, mean=0.5, std=0.25)
    assert (adv - x).abs().max() <= 0.05 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    # transfer: crafted on the model, scored on another predictor (here a copy)

    def target(batch):
        with torch.no_grad():
            return model(batch).numpy()

    transfer = robustness.robust_accuracy(model, data, [0.03], target=target, mean=0.5,
                                          std=0.25)
    assert transfer[0.03] == pytest.approx(white[0.03])
