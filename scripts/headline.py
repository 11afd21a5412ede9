"""The README's headline table, generated from a pipeline report (never typed by hand).

    .venv/bin/python scripts/headline.py results/flagship/report.json
"""

from __future__ import annotations

import statistics
import sys

from optbench.results import BenchResult, Row, fastest_rows, load_report, seed_groups, split_seed


def best_rows(rows: list[Row], batch: int) -> dict[str, Row]:
    return {v: row for (v, b), row in fastest_rows(rows).items() if b == batch}


def headline(report: BenchResult, reference: str = "teacher") -> str:
    """One row per variant at batch 1, its fastest runtime. A step trained with several seeds
    (`NAME@SEED`) is one row: top-1 and robust accuracy as the mean ± sample sd over its seeds;
    timing, size and runtime of its first timed seed (the seeds share one architecture)."""
    sec = report.sections
    b1 = best_rows(report.rows, 1)
    size_key = next(iter(sec.at_sizes), None)
    b1_big = best_rows(sec.at_sizes[size_key].rows, 1) if size_key else {}
    ref_big = b1_big.get(reference)
    head = ["variant", "top-1 %", "size MB", "batch-1 ms (32x32)"]
    if size_key:
        head += [f"batch-1 ms ({size_key}x{size_key})", f"speed-up vs {reference} fp32"]
    head += ["size ratio", "PGD eps=0.03 %"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    ref_bytes = report.size_bytes(reference)
    seeds = seed_groups([*b1, *report.first_quality()])   # seeds timed or accuracy-only
    for v, row in b1.items():
        base, _ = split_seed(v)
        members = [name for _, name in seeds.get(base, [])]
        if len(members) > 1 and v != next(m for m in members if m in b1):
            continue   # the step's row is that of its first timed seed
        group = members if len(members) > 1 else [v]
        robust = [sec.robustness.get(m, {}).get("accuracy", {}).get("0.03") for m in group]
        label = (f"{base}, {len(group)} seeds ({row.runtime}; timing of {v})"
                 if len(group) > 1 else f"{v} ({row.runtime})")
        cells = [label, _mean_sd([report.accuracy(m) for m in group]),
                 f"{report.size_bytes(v) / 1e6:.2f}", f"{row.median_s * 1e3:.2f}"]
        if size_key:
            big = b1_big.get(v)
            cells += ([f"{big.median_s * 1e3:.2f} ({big.runtime})",
                       f"{ref_big.median_s / big.median_s:.1f}x"] if big and ref_big
                      else ["—", "—"])
        cells.append(f"{ref_bytes / report.size_bytes(v):.1f}x")
        cells.append(_mean_sd(robust, digits=1) if any(r is not None for r in robust) else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_sd(values: list[float | None], digits: int = 2) -> str:
    """A fraction in percent; several as mean ± sample sd (any missing: nan, not hidden)."""
    pct = [v * 100 if v is not None else float("nan") for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.{digits}f}"
    return f"{statistics.fmean(pct):.{digits}f} ± {statistics.stdev(pct):.{digits}f}"


if __name__ == "__main__":
    print(headline(load_report(sys.argv[1])))
