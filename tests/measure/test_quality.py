import numpy as np
import pytest

from optbench.measure import agreement, collect_logits, top1_accuracy


def test_accuracy_and_agreement_known_values():
    a = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5], [0.2, 0.1]])
    b = np.array([[2.0, 1.5], [0.0, 3.0], [0.0, 0.5], [0.2, 0.1]])
    assert top1_accuracy(a, np.array([0, 1, 1, 0])) == 0.75
    agree = agreement(a, b)
    assert agree.top1_agreement == 0.75
    assert agree.max_abs_diff == pytest.approx(1.0)
    assert agree.mean_abs_diff == pytest.approx(1.5 / 8)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        agreement(np.zeros((2, 3)), np.zeros((3, 3)))


def test_collect_logits_concatenates_batches():
    batches = [(np.eye(2), np.array([0, 1])), (np.eye(2)[::-1], np.array([0, 0]))]
    logits, labels = collect_logits(lambda x: x * 2, batches)
    assert logits.shape == (4, 2)
    assert top1_accuracy(logits, labels) == 0.75


def test_paired_comparison_known_answer_with_per_class_holm():
    from optbench.measure.quality import paired_comparison
    from optbench.stats import holm, mcnemar_exact_p

    labels = np.array([0] * 40 + [1] * 40)
    reference = labels.copy()                 # the parent: all right
    pred = labels.copy()
    pred[:12] = 1                              # class 0: 12 of 40 lost
    pred[40:41] = 0                            # class 1: 1 of 40 lost
    res = paired_comparison(reference, pred, labels, num_classes=3)
    assert (res["n"], res["a_only"], res["b_only"]) == (80, 13, 0)
    assert res["delta"]["estimate"] == pytest.approx(-13 / 80)
    assert res["p_value"] == pytest.approx(mcnemar_exact_p(13, 0))
    c0, c1, c2 = res["per_class"]
    assert c2 is None                           # no examples of class 2
    expected = holm([mcnemar_exact_p(12, 0), mcnemar_exact_p(1, 0)])
    assert (c0["p_holm"], c1["p_holm"]) == pytest.approx(tuple(expected))
    assert c0["p_holm"] < 0.05 < c1["p_holm"] and c0["delta"] == pytest.approx(-0.3)


def test_padded_calls_one_shape_and_returns_the_same_outputs():
    import torch

    from optbench.measure import padded

    weights = torch.randn(4, 3)
    shapes = []

    def predict(x):
        shapes.append(tuple(x.shape))
        return (x @ weights.T).numpy()

    x = torch.randn(10, 3)
    fixed = padded(predict, 4)
    out = np.concatenate([fixed(x[i:i + 4]) for i in range(0, 10, 4)])
    np.testing.assert_allclose(out, (x @ weights.T).numpy(), rtol=1e-6)
    assert shapes == [(4, 3)] * 3          # the last batch of 2 was filled up to 4
