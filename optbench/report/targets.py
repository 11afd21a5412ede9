"""The report's Targets blocks, rendered from the checked targets (pipeline.targets)."""

from __future__ import annotations

from optbench.report.document import Bullets, Para, Strong, Table
from optbench.stats import units_to_decide


def target_blocks(targets: list[dict]) -> list:
    """Each target, what was measured, and by how much it missed; for accuracy, the points
    each step along the lineage gained or lost."""
    if not targets:
        return []
    rows, notes = [], []
    for t in targets:
        if t["measured"] is None:
            rows.append([t["target"], "—", t["why"], "—"])
            continue
        pts = t["metric"] in ("accuracy_delta_points", "top1")
        value = (f"{t['measured']:.2f}%" if t["metric"] == "top1" else
                 f"{t['measured']:+.2f}" if pts else f"{t['measured']:.2f}x")
        if "ci95" in t:
            value += f" [{t['ci95'][0]:.2f}, {t['ci95'][1]:.2f}]"
        if "mcnemar_p" in t:
            value += f", McNemar p = {t['mcnemar_p']:.3g}"
        if "t_p" in t:
            value += f", paired t over seeds p = {t['t_p']:.3g}"
        short = "—" if t["met"] else (f"{t['short_by']:.2f} points" if pts
                                      else f"{t['short_by']:.2f}x")
        rows.append([t["target"], value, _verdict_text(t), short])
    for t in targets:
        if t["met"] is False and t.get("breakdown"):
            path = "; ".join(f"{b['from']} → {b['to']} {b['points']:+.2f}"
                             + (" (another seed)" if b.get("another_seed") else "")
                             for b in t["breakdown"])
            notes.append(f"Where the points went for {t['variant']} vs {t['reference']}: {path}.")
        if t.get("verdict") == "undecided":
            what = {"accuracy_delta_points": "accuracy difference",
                    "top1": "top-1"}.get(t["metric"], "speed-up")
            who = f"{t['variant']} vs {t['reference']}" if t["reference"] else t["variant"]
            notes.append(f"{who}: the 95% CI of the {what} "
                       f"contains the target {t['at_least']:g}; this run cannot tell it apart "
                       f"({_more_text(t)}).")
    return [Para(("Stated in the recipe before the run; checked against this report. A target "
                  "whose 95% CI (in brackets) contains it is ", Strong("undecided"), ": this "
                  "run cannot tell; the factor says roughly how much more evidence would decide "
                  "it.")),
            Table(["target", "measured", "verdict", "short by"], rows, align="lrlr"),
            *([Bullets(notes)] if notes else [])]


def _verdict_text(t: dict):
    v = t.get("verdict") or ("met" if t["met"] else "missed")
    return {"met": "met", "missed": Strong("missed")}.get(v, f"undecided ({_more_text(t)})")


MOST_FACTOR = 1000.0   # beyond this "how much more evidence" is only a way of saying "none"


def _more_text(t: dict) -> str:
    factor = t.get("more_evidence_factor", float("inf"))
    if t.get("seeds"):   # a t-interval over seeds: only more seeds narrow it
        n = len(t.get("per_seed") or t["seeds"])
        if t.get("spread_unknown"):
            return (f"{'both' if n == 2 else f'all {n}'} seeds gave the same difference, so "
                    "their spread is unknown and "
                    "no interval can be drawn: more seeds can decide it")
        needed = t.get("seeds_to_decide")
        if needed is None and "sd" in t:   # a report saved before this was recorded
            needed = units_to_decide(t["sd"], abs(t["measured"] - t["at_least"]), n)
        if not needed:
            return "the estimate sits on the target"
        return f"needs about {needed} seeds at this spread, {needed / n:.1f}x as many"
    what = ("test images" if t["metric"] in ("accuracy_delta_points", "top1")
            else "timing samples or processes")
    if factor == float("inf"):
        return "the estimate sits on the target"
    more = (f"needs about {max(factor, 1.0):.1f}x the {what}" if factor <= MOST_FACTOR
            else f"needs over {MOST_FACTOR:g}x the {what}: the estimate is all but on the target")
    if t.get("test_split_whole"):
        return (f"{more}, and every test image the data has was used: only a variant further "
                "from the target, or more labelled test data, can decide it")
    return more
