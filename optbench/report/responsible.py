"""Report sections on what compression costs beyond the average: per-class accuracy (who pays)
and accuracy under adversarial attack."""

from __future__ import annotations


def responsible_lines(result: dict) -> list[str]:
    return _who_pays_lines(result) + _robustness_lines(result.get("extra", {}))


def _first_entries(quality: dict) -> dict[str, str]:
    """variant -> its first measured entry label (the one its accuracy is read from)."""
    first: dict[str, str] = {}
    for label in quality:
        first.setdefault(label.split(" / ")[0], label)
    return first


def _who_pays_lines(result: dict) -> list[str]:
    quality = result.get("quality", {})
    names = result.get("extra", {}).get("class_names")
    first = _first_entries(quality)
    if not names or not all("per_class_accuracy" in quality[e] for e in first.values()):
        return []
    variants = list(first)
    lines = ["## Who pays for compression: per-class accuracy", "",
             "Top-1 accuracy (%) on each class of the test split. A compressed model can keep "
             "its average while losing the hard classes; the lines below the table name the "
             "classes each variant lost most against its parent (the variant its outputs are "
             "compared with above).", "",
             "| class | " + " | ".join(variants) + " |",
             "|---|" + "---:|" * len(variants)]
    for k, cls in enumerate(names):
        cells = [f"{quality[first[v]]['per_class_accuracy'][k] * 100:.1f}" for v in variants]
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    lines.append("")
    for v in variants:
        q = quality[first[v]]
        parent = q.get("agreement_with")
        if not parent or parent == first[v] or parent not in quality:
            continue
        deltas = sorted((100 * (a - b), names[k]) for k, (a, b) in enumerate(
            zip(q["per_class_accuracy"], quality[parent]["per_class_accuracy"], strict=True)))
        worst = ", ".join(f"{n} {d:+.1f}" for d, n in deltas[:3])
        lines.append(f"- {first[v]} vs {parent}: largest changes {worst} points"
                     + paired_text(q.get("paired"), names))
    return lines + [""]


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


def _robustness_lines(extra: dict) -> list[str]:
    rob = extra.get("robustness")
    if not rob:
        return []
    done = {k: v for k, v in rob.items() if "accuracy" in v}
    eps = sorted({e for v in done.values() for e in v["accuracy"]}, key=float)
    any_row = next(iter(done.values()), {})
    lines = ["## Robustness: accuracy under attack", "",
             f"L-inf {any_row.get('attack', '?').upper()} ({any_row.get('steps', '?')} steps) on "
             f"the first {any_row.get('n', '?')} test images; eps in pixel units of [0, 1] "
             "images. Int8 and ONNX variants are not differentiable: they are scored on "
             "examples crafted on their nearest fp32 ancestor (transfer attack).", "",
             "| variant / runtime | attack | " + " | ".join(
                 "clean" if float(e) == 0 else f"eps={float(e):g}" for e in eps) + " |",
             "|---|---|" + "---:|" * len(eps)]
    for name, v in done.items():
        cells = [f"{v['accuracy'][e] * 100:.1f}" for e in eps]
        lines.append(f"| {name} / {v['runtime']} | {v['mode']} | " + " | ".join(cells) + " |")
    for name, v in rob.items():
        if "skipped" in v:
            lines.append(f"\n{name}: not attacked ({v['skipped']})")
    return lines + [""]
