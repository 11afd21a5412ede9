"""The README's headline table, generated from a pipeline report (never typed by hand).

    .venv/bin/python scripts/headline.py results/flagship/report.json
"""

from __future__ import annotations

import sys

from optbench.results import BenchResult, Row, fastest_rows, load_report


def best_rows(rows: list[Row], batch: int) -> dict[str, Row]:
    return {v: row for (v, b), row in fastest_rows(rows).items() if b == batch}


def headline(report: BenchResult, reference: str = "teacher") -> str:
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
    for v, row in b1.items():
        acc = report.accuracy(v)
        cells = [f"{v} ({row.runtime})", f"{(acc if acc is not None else float('nan')) * 100:.2f}",
                 f"{report.size_bytes(v) / 1e6:.2f}", f"{row.median_s * 1e3:.2f}"]
        if size_key:
            big = b1_big.get(v)
            cells += ([f"{big.median_s * 1e3:.2f} ({big.runtime})",
                       f"{ref_big.median_s / big.median_s:.1f}x"] if big and ref_big
                      else ["—", "—"])
        cells.append(f"{ref_bytes / report.size_bytes(v):.1f}x")
        r = sec.robustness.get(v, {}).get("accuracy", {})
        cells.append(f"{r['0.03'] * 100:.1f}" if "0.03" in r else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(headline(load_report(sys.argv[1])))
