"""Fairness metrics per group, and "who pays for compression": per-class accuracy change.

Binary predictions: per-group selection rate, TPR, FPR and accuracy; demographic parity
difference/ratio and equalized odds difference (as Fairlearn defines them). Multi-class labels
are handled one-vs-rest (one binary problem per class). Pure numpy.

`per_class_accuracy` lives in optbench.measure.quality (the harness reports it for every
variant) and is re-exported here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from optbench.measure.quality import per_class_accuracy


@dataclasses.dataclass(frozen=True)
class GroupMetrics:
    group: str
    n: int
    selection_rate: float
    tpr: float
    fpr: float
    accuracy: float


def _rate(num, den) -> float:
    return float(num / den) if den else float("nan")


def group_metrics(y_true, y_pred, groups) -> list[GroupMetrics]:
    """Per-group metrics of binary (0/1) labels and predictions."""
    y_true, y_pred, groups = (np.asarray(v) for v in (y_true, y_pred, groups))
    if not (len(y_true) == len(y_pred) == len(groups)):
        raise ValueError(f"y_true, y_pred and groups differ in length: {len(y_true)}, "
                         f"{len(y_pred)}, {len(groups)}")
    out = []
    for g in np.unique(groups):
        m = groups == g
        t, p = y_true[m].astype(bool), y_pred[m].astype(bool)
        out.append(GroupMetrics(str(g), int(m.sum()), _rate(p.sum(), m.sum()),
                                _rate((p & t).sum(), t.sum()), _rate((p & ~t).sum(), (~t).sum()),
                                _rate((p == t).sum(), m.sum())))
    return out


def demographic_parity_difference(y_true, y_pred, groups) -> float:
    rates = [g.selection_rate for g in group_metrics(y_true, y_pred, groups)]
    return float(max(rates) - min(rates))


def demographic_parity_ratio(y_true, y_pred, groups) -> float:
    rates = [g.selection_rate for g in group_metrics(y_true, y_pred, groups)]
    return float(min(rates) / max(rates)) if max(rates) > 0 else float("nan")


def equalized_odds_difference(y_true, y_pred, groups) -> float:
    """The larger of the TPR spread and the FPR spread across groups."""
    gm = group_metrics(y_true, y_pred, groups)
    tpr = [g.tpr for g in gm if not np.isnan(g.tpr)]
    fpr = [g.fpr for g in gm if not np.isnan(g.fpr)]
    return float(max(max(tpr) - min(tpr), max(fpr) - min(fpr)))


def one_vs_rest(y_true, y_pred, groups, classes) -> dict[str, dict]:
    """For each class: the binary fairness summary of 'is it this class?'."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = {}
    for k, name in enumerate(classes):
        t, p = (y_true == k).astype(int), (y_pred == k).astype(int)
        out[name] = {"demographic_parity_difference": demographic_parity_difference(t, p, groups),
                     "equalized_odds_difference": equalized_odds_difference(t, p, groups),
                     "groups": [dataclasses.asdict(g) for g in group_metrics(t, p, groups)]}
    return out


def who_pays(y_true, reference_pred, variant_pred, classes) -> list[dict]:
    """Per-class accuracy of a compressed variant against its reference, worst loss first.
    (Compressed models tend to lose the hard, minority classes first, while the average
    barely moves.)"""
    ref = per_class_accuracy(y_true, reference_pred, len(classes))
    var = per_class_accuracy(y_true, variant_pred, len(classes))
    rows = [{"class": name, "reference_accuracy": float(r), "variant_accuracy": float(v),
             "delta_points": float((v - r) * 100)}
            for name, r, v in zip(classes, ref, var, strict=True)]
    return sorted(rows, key=lambda row: row["delta_points"])
