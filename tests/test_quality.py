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
