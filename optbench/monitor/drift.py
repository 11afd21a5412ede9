"""Drift detection: is a window of live inputs still like the data the model was checked on?

A reference `Profile` keeps samples of summary features of the reference inputs (for images:
per-channel mean and std, brightness, contrast; for tabular inputs: each column) and of the
model's outputs (confidence, predicted class). `compare` tests a current window against it:
two-sample Kolmogorov-Smirnov and PSI for each numeric feature, chi-square for the predicted-class
distribution, with a Holm correction over all tests. Pure numpy/scipy; the server feeds it a
sliding window (`LiveDriftMonitor`).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from optbench.stats import holm

PSI_MODERATE, PSI_MAJOR = 0.1, 0.25   # the usual reading: < 0.1 stable, > 0.25 major shift
PROFILE_FILE = "drift_profile.json"


# ---- statistics ---------------------------------------------------------------------------

def ks_2samp(a, b) -> tuple[float, float]:
    """Two-sample KS statistic D = sup |F_a - F_b| and its two-sided p-value from the
    Kolmogorov-Smirnov distribution at the effective size n m / (n + m) (as scipy's
    method='asymp')."""
    from scipy.stats import kstwo

    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        raise ValueError("KS test needs two non-empty samples")
    grid = np.concatenate([a, b])
    d = float(np.max(np.abs(np.searchsorted(a, grid, "right") / n
                            - np.searchsorted(b, grid, "right") / m)))
    return d, float(kstwo.sf(d, round(n * m / (n + m))))


def psi(reference, current, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index over `bins` quantile bins of the reference:
    sum (c_i - r_i) ln(c_i / r_i), shares floored at `eps`."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    r = np.bincount(np.searchsorted(edges, reference, "right"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, current, "right"), minlength=len(edges) + 1)
    return psi_from_counts(r, c, eps)


def psi_from_counts(reference_counts, current_counts, eps: float = 1e-4) -> float:
    r = np.maximum(np.asarray(reference_counts, float) / np.sum(reference_counts), eps)
    c = np.maximum(np.asarray(current_counts, float) / np.sum(current_counts), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def chi_square(reference_counts, current_counts) -> tuple[float, float, int]:
    """Chi-square test of homogeneity on a 2 x k table (reference vs current class counts);
    categories empty in both are dropped. Returns (statistic, p-value, degrees of freedom)."""
    from scipy.stats import chi2

    table = np.array([reference_counts, current_counts], dtype=float)
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0, 0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    return stat, float(chi2.sf(stat, dof)), dof


# ---- features -------------------------------------------------------------------------------

def image_features(images) -> dict[str, np.ndarray]:
    """Per-image summaries of (N, C, H, W) model inputs (or (N, H, W) grey images)."""
    x = np.asarray(images, dtype=np.float64)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W) or (N, H, W), got shape {x.shape}")
    out = {"brightness": x.mean(axis=(1, 2, 3)), "contrast": x.std(axis=(1, 2, 3))}
    if x.shape[1] > 1:
        for c in range(x.shape[1]):
            out[f"ch{c}_mean"] = x[:, c].mean(axis=(1, 2))
            out[f"ch{c}_std"] = x[:, c].std(axis=(1, 2))
    # direction-aware summaries: a rotation keeps brightness and contrast but moves these
    out["edge_x"] = np.abs(np.diff(x, axis=3)).mean(axis=(1, 2, 3))
    out["edge_y"] = np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3))
    grey = x.mean(axis=1)
    mass = grey - grey.min(axis=(1, 2), keepdims=True)
    total = mass.sum(axis=(1, 2)) + 1e-12
    out["center_y"] = (mass.sum(axis=2) * np.linspace(0, 1, x.shape[2])).sum(1) / total
    out["center_x"] = (mass.sum(axis=1) * np.linspace(0, 1, x.shape[3])).sum(1) / total
    return out


def output_features(probabilities) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(confidence per item, predicted class per item) from softmax outputs."""
    p = np.asarray(probabilities, dtype=np.float64)
    return {"confidence": p.max(axis=1)}, p.argmax(axis=1)


# ---- profile and report -----------------------------------------------------------------------

@dataclasses.dataclass
class Profile:
    """Reference samples of each numeric feature, and the reference predicted-class counts."""

    features: dict[str, list[float]]
    class_counts: list[int] | None = None
    n: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Profile:
        return cls(features={k: list(map(float, v)) for k, v in data["features"].items()},
                   class_counts=data.get("class_counts"), n=int(data.get("n", 0)))


def build_profile(inputs=None, probabilities=None, tabular=None, max_samples: int = 5000,
                  seed: int = 0) -> Profile:
    """A reference profile from image inputs and/or model outputs, or from a tabular array
    (N, F) whose columns are the features."""
    feats, counts = _features(inputs, probabilities, tabular)
    n = len(next(iter(feats.values())))
    keep = np.sort(np.random.default_rng(seed).choice(n, min(n, max_samples), replace=False))
    return Profile({k: v[keep].tolist() for k, v in feats.items()},
                   None if counts is None else counts.tolist(), n)


def _features(inputs, probabilities, tabular):
    feats: dict[str, np.ndarray] = {}
    counts = None
    if inputs is not None:
        feats.update(image_features(inputs))
    if tabular is not None:
        t = np.asarray(tabular, float)
        feats.update({f"col{i}": t[:, i] for i in range(t.shape[1])})
    if probabilities is not None:
        out, predicted = output_features(probabilities)
        feats.update(out)
        counts = np.bincount(predicted, minlength=np.asarray(probabilities).shape[1])
    if not feats:
        raise ValueError("a drift profile needs inputs, probabilities or a tabular array")
    return feats, counts


@dataclasses.dataclass(frozen=True)
class FeatureTest:
    feature: str
    test: str            # "ks" or "chi2"
    statistic: float
    p_value: float
    p_adjusted: float
    psi: float | None    # for numeric features
    drifted: bool


@dataclasses.dataclass(frozen=True)
class DriftReport:
    tests: tuple[FeatureTest, ...]
    n_reference: int
    n_current: int
    alpha: float
    drifted: bool
    verdict: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def table(self) -> str:
        lines = ["| feature | test | statistic | p-value | Holm p | PSI | drift |",
                 "|---|---|---:|---:|---:|---:|---|"]
        for t in self.tests:
            psi_text = "" if t.psi is None else f"{t.psi:.3f}"
            lines.append(f"| {t.feature} | {t.test} | {t.statistic:.4f} | {t.p_value:.2e} | "
                         f"{t.p_adjusted:.2e} | {psi_text} | {'yes' if t.drifted else ''} |")
        return "\n".join(lines)


def compare(profile: Profile, inputs=None, probabilities=None, tabular=None,
            alpha: float = 0.01) -> DriftReport:
    """Test a current window against the profile. A feature drifts when its Holm-adjusted
    p-value is below `alpha`; PSI is reported beside KS (> 0.25 reads as a major shift)."""
    feats, counts = _features(inputs, probabilities, tabular)
    rows = []
    for name, current in feats.items():
        if name not in profile.features:
            continue
        ref = profile.features[name]
        d, p = ks_2samp(ref, current)
        rows.append([name, "ks", d, p, psi(ref, current)])
    if counts is not None and profile.class_counts is not None:
        stat, p, _ = chi_square(profile.class_counts, counts)
        rows.append(["predicted_class", "chi2", stat,  p,
                     psi_from_counts(profile.class_counts, counts)])
    if not rows:
        raise ValueError("the current window shares no feature with the profile; build both "
                         "from the same kind of data (images, outputs or tabular)")
    adjusted = holm([r[3] for r in rows])
    tests = tuple(FeatureTest(r[0], r[1], float(r[2]), float(r[3]), float(q), r[4],
                              bool(q < alpha)) for r, q in zip(rows, adjusted, strict=True))
    n_current = len(next(iter(feats.values())))
    return DriftReport(tests, profile.n, n_current, alpha, any(t.drifted for t in tests),
                       _verdict(tests, alpha))


def _verdict(tests, alpha: float) -> str:
    drifted = [t.feature for t in tests if t.drifted]
    if not drifted:
        return f"no drift: no test rejects at family-wise alpha={alpha}"
    major = [t.feature for t in tests if t.drifted and t.psi is not None and t.psi > PSI_MAJOR]
    kind = "major shift (PSI > 0.25) in " + ", ".join(major) if major else "shift"
    return f"drift detected in {', '.join(drifted)}: {kind}"


# ---- persistence and live use -------------------------------------------------------------------

def save_profile(artifact_dir: str | os.PathLike, profile: Profile) -> Path:
    """Write the profile into an artifact folder and add its checksum to the manifest."""
    from optbench.artifact import MANIFEST
    from optbench.io import atomic_write_json, sha256_file

    folder = Path(artifact_dir)
    path = atomic_write_json(folder / PROFILE_FILE, profile.to_dict())
    manifest_path = folder / MANIFEST
    if manifest_path.is_file():
        data = json.loads(manifest_path.read_text())
        data["files"][PROFILE_FILE] = sha256_file(path)
        atomic_write_json(manifest_path, data)
    return path


def load_profile(artifact_dir: str | os.PathLike) -> Profile | None:
    path = Path(artifact_dir) / PROFILE_FILE
    return Profile.from_dict(json.loads(path.read_text())) if path.is_file() else None


def load_reference(path: str | os.PathLike, tabular: bool = False) -> Profile:
    """A drift reference: a drift_profile.json, an artifact folder holding one, or a .npy /
    .npz array to build the profile from (images N,C,H,W / N,H,W, or with tabular=True rows of
    features N,F)."""
    from optbench.errors import ConfigError
    from optbench.io import load_array

    ref = Path(path)
    if ref.is_dir() or ref.suffix == ".json":
        profile = (load_profile(ref) if ref.is_dir() else
                   Profile.from_dict(json.loads(ref.read_text())))
        if profile is None:
            raise ConfigError(f"{ref} holds no {PROFILE_FILE}; create one with "
                              "optbench.monitor.drift.save_profile")
        return profile
    array = load_array(ref)
    return build_profile(tabular=array) if tabular else build_profile(inputs=array)


class LiveDriftMonitor:
    """Keeps the last `window` live items; every `window` new items it compares them with the
    profile and returns the report (else None)."""

    def __init__(self, profile: Profile, window: int = 500, alpha: float = 0.01):
        self.profile, self.window, self.alpha = profile, window, alpha
        self.inputs: collections.deque = collections.deque(maxlen=window)
        self.probs: collections.deque = collections.deque(maxlen=window)
        self.since_check = 0
        self.last: DriftReport | None = None

    def add(self, inputs: np.ndarray, probabilities: np.ndarray):
        """Append live items (cheap). When a check is due, returns a snapshot of the window to
        pass to `check` (which may run on another thread); else None."""
        self.inputs.extend(np.asarray(inputs))
        self.probs.extend(np.asarray(probabilities))
        self.since_check += len(inputs)
        if self.since_check < self.window or len(self.inputs) < self.window:
            return None
        self.since_check = 0
        return np.stack(self.inputs), np.stack(self.probs)

    def check(self, window) -> DriftReport:
        inputs, probs = window
        uses_images = any(k in self.profile.features for k in ("brightness", "contrast"))
        self.last = compare(self.profile, inputs if uses_images else None, probs,
                            alpha=self.alpha)
        return self.last

    def observe(self, inputs: np.ndarray, probabilities: np.ndarray) -> DriftReport | None:
        """`add`, then `check` when due: the report, or None."""
        window = self.add(inputs, probabilities)
        return None if window is None else self.check(window)
