"""Report sections on what compression costs beyond the average: per-class accuracy (who pays)
and accuracy under adversarial attack."""

from __future__ import annotations

from optbench.report.document import Bullets, Para, Section, Table
from optbench.results import BenchResult


def responsible_sections(result: BenchResult) -> list:
    return [*_who_pays(result), *_robustness(result.sections.robustness)]


def _who_pays(result: BenchResult) -> list:
    names = result.sections.class_names
    first = result.first_quality()
    if not names or not all(q.per_class_accuracy for q in first.values()):
        return []
    variants = list(first)
    rows = [[cls, *(f"{first[v].per_class_accuracy[k] * 100:.1f}" for v in variants)]
            for k, cls in enumerate(names)]
    notes = []
    for v in variants:
        q = first[v]
        parent = result.quality.get(q.agreement_with)
        if parent is None or parent is q:
            continue
        deltas = sorted((100 * (a - b), names[k]) for k, (a, b) in enumerate(
            zip(q.per_class_accuracy, parent.per_class_accuracy, strict=True)))
        worst = ", ".join(f"{n} {d:+.1f}" for d, n in deltas[:3])
        notes.append(f"{q.entry} vs {parent.entry}: largest changes {worst} points"
                     + paired_text(q.paired, names))
    return [Section("Who pays for compression: per-class accuracy", [
        Para("Top-1 accuracy (%) on each class of the test split. A compressed model can keep "
             "its average while losing the hard classes; the lines below the table name the "
             "classes each variant lost most against its parent (the variant its outputs are "
             "compared with above)."),
        Table(["class", *variants], rows), *([Bullets(notes)] if notes else [])])]


def paired_text(paired: dict | None, names) -> str:
    """The paired test of a variant against its parent on the same test images: overall
    accuracy difference with its CI and McNemar p, and the class changes that survive Holm."""
    if not paired:
        return ""
    d = paired["delta"]
    text = (f"; overall {100 * d['estimate']:+.2f} points (95% CI {100 * d['low']:+.2f} to "
            f"{100 * d['high']:+.2f}; McNemar p = {paired['p_value']:.3g}, "
            f"{paired['a_only']} images only the parent gets right, {paired['b_only']} only "
            "this variant)")
    significant = [f"{names[k]} {100 * c['delta']:+.1f} (Holm p = {c['p_holm']:.2g})"
                   for k, c in enumerate(paired.get("per_class", [])) if c and c["p_holm"] < 0.05]
    return text + ("; significant class changes: " + ", ".join(significant) if significant
                   else "; no class change is significant at 5% after Holm's correction")


def _robustness(rob: dict) -> list:
    if not rob:
        return []
    done = {k: v for k, v in rob.items() if "accuracy" in v}
    eps = sorted({e for v in done.values() for e in v["accuracy"]}, key=float)
    any_row = next(iter(done.values()), {})
    rows = [[f"{name} / {v['runtime']}", v["mode"],
             *(f"{v['accuracy'][e] * 100:.1f}" for e in eps)] for name, v in done.items()]
    skipped = [f"{name}: not attacked ({v['skipped']})" for name, v in rob.items()
               if "skipped" in v]
    return [Section("Robustness: accuracy under attack", [
        Para(f"L-inf {any_row.get('attack', '?').upper()} ({any_row.get('steps', '?')} steps) "
             f"on the first {any_row.get('n', '?')} test images; eps in pixel units of [0, 1] "
             "images. Int8 and ONNX variants are not differentiable: they are scored on "
             "examples crafted on their nearest fp32 ancestor (transfer attack)."),
        Table(["variant / runtime", "attack",
               *("clean" if float(e) == 0 else f"eps={float(e):g}" for e in eps)], rows,
              align="ll" + "r" * len(eps)),
        *([Bullets(skipped)] if skipped else [])])]
