"""Quality of a variant: top-1 accuracy on a dataset, and agreement between two variants."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How closely two variants' outputs (logits) match on the same inputs."""

    n: int
    top1_agreement: float   # fraction of inputs where both predict the same class
    max_abs_diff: float
    mean_abs_diff: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def collect_logits(predict: Callable, batches: Iterable) -> tuple[np.ndarray, np.ndarray]:
    """Run predict(images) -> logits over (images, labels) batches; return logits and labels."""
    outs, labels = [], []
    for images, target in batches:
        outs.append(_to_numpy(predict(images)))
        labels.append(_to_numpy(target))
    return np.concatenate(outs), np.concatenate(labels)


def padded(predict: Callable, rows: int) -> Callable:
    """predict, called on batches of exactly `rows`: a shorter batch is filled up with copies
    of its last example and the copies' outputs dropped. Examples are independent in eval mode,
    so the outputs are the same; a runtime compiled per input shape (torch-compile) then
    compiles once instead of again for the last, short batch."""
    def call(images):
        import torch

        n = len(images)
        if n >= rows or n == 0:
            return predict(images)
        filler = images[-1:].expand(rows - n, *images.shape[1:])
        return predict(torch.cat([images, filler]))[:n]
    return call


def top1_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        raise ValueError("top1_accuracy needs at least one example")
    return float((np.asarray(logits).argmax(axis=1) == np.asarray(labels)).mean())


def per_class_accuracy(labels, predicted, num_classes: int) -> np.ndarray:
    """Recall of each class (accuracy on the examples of that class); NaN for absent classes."""
    labels, predicted = np.asarray(labels).astype(np.int64), np.asarray(predicted)
    total = np.bincount(labels, minlength=num_classes).astype(float)
    correct = np.bincount(labels[labels == predicted], minlength=num_classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / total, np.nan)


def agreement(a: np.ndarray, b: np.ndarray) -> Agreement:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"outputs differ in shape: {a.shape} vs {b.shape}")
    diff = np.abs(a - b)
    return Agreement(n=len(a), top1_agreement=float((a.argmax(1) == b.argmax(1)).mean()),
                     max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()))


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.cpu().numpy()
    return np.asarray(x)


def paired_comparison(reference_pred, pred, labels, num_classes: int) -> dict:
    """Accuracy of `pred` minus `reference_pred` on the same examples, paired: a CI of the
    difference and McNemar's exact test overall, and per class with Holm's correction (which
    class changes are more than chance)."""
    from optbench.stats import holm, paired_accuracy

    labels = np.asarray(labels)
    ref_ok, ok = np.asarray(reference_pred) == labels, np.asarray(pred) == labels
    overall = paired_accuracy(ref_ok, ok).to_dict()
    per_class, p_values = [], []
    for k in range(num_classes):
        mask = labels == k
        if not mask.any():
            per_class.append(None)
            continue
        res = paired_accuracy(ref_ok[mask], ok[mask])
        per_class.append({"delta": res.delta.estimate, "a_only": res.a_only,
                          "b_only": res.b_only, "p_value": res.p_value})
        p_values.append(res.p_value)
    adjusted = iter(holm(p_values)) if p_values else iter(())
    for entry in per_class:
        if entry is not None:
            entry["p_holm"] = float(next(adjusted))
    return {**overall, "per_class": per_class}
