"""Targets a recipe states up front (`[[targets]]`), checked against what was measured: met,
missed or undecided (the 95% CI contains the target: the speed-up's paired bootstrap CI, or the
paired accuracy CI from per-example predictions), by how much, roughly how much more evidence
would decide it, and, for accuracy, where along the variant's lineage the points went.

    [[targets]]
    variant = "student-int8-ort"
    reference = "teacher"
    metric = "speedup"            # speedup | size_ratio | accuracy_delta_points | top1
    at_least = 20.0
    batch_size = 1
    size = 224                    # speedup at a [bench] extra_sizes size (0: the training size)
    reference_runtime = "torch-eager"   # "" = the reference's fastest runtime

A pure function of the saved report, so `optbench report` and the pipeline agree.
"""

from __future__ import annotations

import dataclasses

from optbench.config import Config, check_choice
from optbench.errors import ConfigError
from optbench.measure.compare import ratio_between
from optbench.results import SEED_SEPARATOR, BenchResult, fastest_rows, lineage_seed, split_seed
from optbench.stats import proportion_half_width

METRICS = ("speedup", "size_ratio", "accuracy_delta_points", "top1")


@dataclasses.dataclass(frozen=True)
class TargetSpec(Config):
    variant: str = ""
    reference: str = ""
    metric: str = "speedup"
    at_least: float = 0.0
    batch_size: int = 1
    size: int = 0
    reference_runtime: str = ""
    # set by recipes for a target naming seeded steps: also checked as the mean over these
    # seeds (NAME@SEED), with a paired t-test across seed-matched pairs
    seeds: tuple[int, ...] = ()

    def __post_init__(self):
        check_choice("TargetSpec", "metric", self.metric, METRICS)
        if not self.variant or not (self.reference or self.metric == "top1"):
            raise ConfigError("a target needs variant and reference, e.g. variant = "
                              "\"student-int8-ort\", reference = \"teacher\" (metric top1 "
                              "needs the variant only)")
        if self.seeds and self.metric != "accuracy_delta_points":
            raise ConfigError("TargetSpec.seeds: only accuracy targets are checked over seeds")

    def describe(self) -> str:
        if self.metric == "top1":
            return f"{self.variant} top-1 (%) on the test split: >= {self.at_least:g}"
        what = {"speedup": "faster than", "size_ratio": "smaller on disk than",
                "accuracy_delta_points": "top-1 points vs"}[self.metric]
        runtime = f" ({self.reference_runtime})" if self.reference_runtime else ""
        where = (f", batch {self.batch_size}" + (f", {self.size}x{self.size}" if self.size else "")
                 if self.metric == "speedup" else "")
        bound = (f">= {self.at_least:+.2f}" if self.metric == "accuracy_delta_points"
                 else f">= {self.at_least:g}x")
        seeds = (f", mean over seeds {', '.join(map(str, self.seeds))}" if self.seeds else "")
        return f"{self.variant} {what} {self.reference}{runtime}{where}{seeds}: {bound}"


def evaluate_targets(report: BenchResult, specs: tuple[TargetSpec, ...],
                     predictions: dict | None = None) -> list[dict]:
    """Check each target; `predictions` (entry label -> per-example class, plus "labels", as in
    predictions.npz) makes accuracy targets paired tests with a CI."""
    return [_evaluate(report, spec, predictions or {}) for spec in specs]


def stored_specs(targets: list[dict]) -> tuple[TargetSpec, ...]:
    """The specs of checked targets as a report stores them (each check carries its spec's
    fields), so a saved report's targets can be checked again by newer code."""
    names = {f.name for f in dataclasses.fields(TargetSpec)}
    return tuple(TargetSpec.from_dict({k: v for k, v in t.items() if k in names})
                 for t in targets)


def _evaluate(report: BenchResult, spec: TargetSpec, predictions: dict) -> dict:
    out = {"target": spec.describe(), **spec.to_dict(), "measured": None, "met": None,
           "short_by": None, "verdict": "not measured"}
    try:
        if spec.seeds:
            value, detail = _accuracy_over_seeds(report, spec, predictions)
        else:
            value, detail = _MEASURE[spec.metric](report, spec)
    except LookupError as exc:
        out["why"] = f"not measured: {exc.args[0]}"
        return out
    if spec.metric == "accuracy_delta_points" and not spec.seeds:
        detail.update(_paired_accuracy(report, spec, predictions))
    out.update(detail, measured=value, met=value >= spec.at_least,
               short_by=max(0.0, spec.at_least - value))
    out.update(verdict(value, spec.at_least, out.get("ci95")))
    if out.get("spread_unknown"):
        out.update(verdict="undecided", more_evidence_factor=float("inf"))
    if (out["verdict"] == "undecided" and not spec.seeds
            and spec.metric in ("accuracy_delta_points", "top1")):
        # every test image the data has was used: more of them is not a way to decide it
        out["test_split_whole"] = bool(report.sections.test_split.get("whole"))
    if out["verdict"] == "undecided" and "ci95" in out and "sd" in out:   # a t-interval over seeds
        from optbench.stats import units_to_decide

        n = len(out["per_seed"])
        needed = units_to_decide(out["sd"], abs(value - spec.at_least), n)
        out["more_evidence_factor"] = needed / n if needed else float("inf")
        out["seeds_to_decide"] = needed
    return out


def verdict(value: float, target: float, ci: list[float] | None) -> dict:
    """met / missed / undecided. Undecided when the 95% CI contains the target; then a rough
    factor of more evidence (samples, processes, test images) that would shrink the CI past it,
    from the 1/sqrt(n) law: (half-width / distance to the target)^2 (infinite for an estimate on
    the target)."""
    if ci is None or not ci[0] <= target <= ci[1]:
        return {"verdict": "met" if value >= target else "missed"}
    half = (ci[1] - ci[0]) / 2
    gap = abs(value - target)
    # an estimate on the target up to rounding (2.5 measured as 2.4999999999999996): no amount
    # of evidence decides it, where the law would ask for 1e28 times as much
    on_target = gap <= 1e-9 * max(1.0, abs(target))
    factor = float("inf") if on_target else (half / gap) ** 2
    return {"verdict": "undecided", "more_evidence_factor": factor}


def _paired_accuracy(report: BenchResult, spec: TargetSpec, predictions: dict) -> dict:
    """The paired CI (points) of variant minus reference on the same test images."""
    from optbench.stats import paired_accuracy

    labels = predictions.get("labels")
    if labels is None:
        return {}
    entries, deployed = {}, report.deployed_quality()
    for name in (spec.variant, spec.reference):
        if name not in deployed or deployed[name].entry not in predictions:
            return {}
        entries[name] = predictions[deployed[name].entry]
    res = paired_accuracy(entries[spec.reference] == labels, entries[spec.variant] == labels)
    return {"ci95": [100 * res.delta.low, 100 * res.delta.high], "mcnemar_p": res.p_value,
            "paired_n": res.n}


def _accuracy_over_seeds(report: BenchResult, spec: TargetSpec, predictions: dict):
    """The mean over seeds of variant minus reference (seed-matched where both were trained
    with seeds), its Student-t CI across the seeds and the paired t-test's p-value: the
    evidence that the difference survives retraining, not only resampling the test images
    (each seed's McNemar p is kept beside it)."""
    from optbench.stats import paired_t

    acc = {name: q.top1_accuracy for name, q in report.deployed_quality().items()}
    per_seed = []
    for seed in spec.seeds:
        names = [n if n in acc else f"{n}@{seed}" for n in (spec.variant, spec.reference)]
        missing = [n for n in names if n not in acc]
        if missing:
            raise LookupError(f"no accuracy for {missing[0]}")
        one = dataclasses.replace(spec, variant=names[0], reference=names[1], seeds=())
        entry = {"seed": seed, "variant": names[0], "reference": names[1],
                 "points": (acc[names[0]] - acc[names[1]]) * 100}
        entry.update({k: v for k, v in _paired_accuracy(report, one, predictions).items()
                      if k == "mcnemar_p"})
        per_seed.append(entry)
    detail = {"per_seed": per_seed, "test": "paired t over seeds"}
    if len(per_seed) < 2:
        return per_seed[0]["points"], detail
    res = paired_t([e["points"] for e in per_seed])
    if res.sd == 0:
        # every seed gave the same difference (ties are common on small test splits): the
        # t-interval collapses to a point and p to 0 or 1, yet the spread over seeds is
        # unknown, not zero; no interval, and the verdict stays undecided
        detail.update(sd=0.0, spread_unknown=True)
        return res.mean, detail
    detail.update(ci95=[res.ci.low, res.ci.high], t_p=res.p_value, sd=res.sd)
    return res.mean, detail


def _speedup(report: BenchResult, spec: TargetSpec):
    rows = report.rows
    if spec.size:
        at = report.sections.at_sizes.get(spec.size)
        if at is None:
            raise LookupError(f"no {spec.size}x{spec.size} pass; add {spec.size} to [bench] "
                              "extra_sizes")
        rows = at.rows
    fastest = fastest_rows(rows)
    var = fastest.get((spec.variant, spec.batch_size))
    if spec.reference_runtime:
        ref = next((r for r in rows if r.variant == spec.reference and r.batch_size ==
                    spec.batch_size and r.runtime == spec.reference_runtime), None)
    else:
        ref = fastest.get((spec.reference, spec.batch_size))
    if var is None or ref is None:
        missing = spec.variant if var is None else spec.reference
        raise LookupError(f"{missing} was not timed at batch {spec.batch_size}"
                          + (f" ({spec.reference_runtime})" if ref is None and
                             spec.reference_runtime else ""))
    detail = {"runtime": var.runtime, "reference_runtime_used": ref.runtime}
    if var.speedup.baseline == ref.entry:  # timed against it: its bootstrap CI holds
        ci = var.speedup.speedup
    else:  # both timed in the same interleaved rounds (and processes) of this batch size
        ci = ratio_between(var.entry, ref.entry, {var.entry: var.measurement,
                                                  ref.entry: ref.measurement}).speedup
    detail["ci95"] = [ci.low, ci.high]
    return ref.median_s / var.median_s, detail


def _size_ratio(report: BenchResult, spec: TargetSpec):
    for name in (spec.variant, spec.reference):
        if name not in report.sizes:
            raise LookupError(f"no size for {name}")
    return report.size_bytes(spec.reference) / report.size_bytes(spec.variant), {}


def _accuracy_delta(report: BenchResult, spec: TargetSpec):
    acc = {name: q.top1_accuracy for name, q in report.deployed_quality().items()}
    for name in (spec.variant, spec.reference):
        if name not in acc:
            raise LookupError(f"no accuracy for {name}")
    records = report.sections.variants

    def lineage_of(name: str) -> tuple[str, ...]:
        return tuple(records[name].lineage) if name in records else (name,)

    steps = _steps(spec.reference, lineage_of(spec.variant), acc, lineage_of)
    breakdown = [{"from": a, "to": b, "points": (acc[b] - acc[a]) * 100}
                 for a, b in zip(steps, steps[1:], strict=False)]
    for b in breakdown:
        if split_seed(b["from"])[0] == split_seed(b["to"])[0]:
            b["another_seed"] = True
    return (acc[spec.variant] - acc[spec.reference]) * 100, {"breakdown": breakdown}


def _steps(reference: str, lineage: tuple[str, ...], acc: dict, lineage_of) -> list[str]:
    """The variants the points are split along: the reference, then the variant's lineage
    after it (after the steps it shares with the reference, where the variant does not
    descend from it). A reference that is one seed of a step (NAME@3), against a variant of
    another seed (its lineage holds NAME2@0), is met by NAME@0 first: the seed-to-seed spread,
    which can be larger than a method's effect, gets a step of its own instead of hiding in a
    jump between two lineages. `lineage_of(name)`: a variant's lineage, oldest first."""
    steps, start = [reference], reference
    base, seed = split_seed(reference)
    mine = lineage_seed(lineage)
    sibling = f"{base}{SEED_SEPARATOR}{mine}"
    if seed is not None and mine not in (None, seed) and sibling in acc:
        steps.append(sibling)
        start = sibling
    if start in lineage:
        rest = lineage[lineage.index(start) + 1:]
    else:
        shared = set(lineage_of(start))
        rest = tuple(name for name in lineage if name not in shared)
    return steps + [name for name in rest if name in acc]


def _top1(report: BenchResult, spec: TargetSpec):
    """Top-1 in %, with the normal-approximation 95% CI of a proportion over the test images."""
    deployed = report.deployed_quality()
    if spec.variant not in deployed:
        raise LookupError(f"no accuracy for {spec.variant}")
    q = deployed[spec.variant]
    p, n = q.top1_accuracy, q.n
    half = proportion_half_width(p, n) * 100 if n else None
    detail = {"ci95": [p * 100 - half, p * 100 + half], "n": n} if half is not None else {}
    return p * 100, detail


_MEASURE = {"speedup": _speedup, "size_ratio": _size_ratio,
            "accuracy_delta_points": _accuracy_delta, "top1": _top1}
