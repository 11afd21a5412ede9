"""The README's headline table, generated from a pipeline report (never typed by hand).

    .venv/bin/python scripts/headline.py results/flagship/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from optbench.diagnose import fastest_rows


def best_rows(rows: list[dict], batch: int) -> dict[str, dict]:
    return {v: row for (v, b), row in fastest_rows(rows).items() if b == batch}


def headline(report: dict, reference: str = "teacher") -> str:
    quality, sizes = report["quality"], report["sizes"]
    acc = {}
    for label, q in quality.items():
        v = label.split(" / ")[0]
        acc[v] = max(acc.get(v, 0.0), q["top1_accuracy"])
    b1 = best_rows(report["rows"], 1)
    at = report.get("extra", {}).get("at_sizes", {})
    size_key = next(iter(at), None)
    b1_big = best_rows(at[size_key]["rows"], 1) if size_key else {}
    rob = report.get("extra", {}).get("robustness", {})
    ref_big = b1_big.get(reference)
    head = ["variant", "top-1 %", "size MB", "batch-1 ms (32x32)"]
    if size_key:
        head += [f"batch-1 ms ({size_key}x{size_key})", f"speed-up vs {reference} fp32"]
    head += ["size ratio", "PGD eps=0.03 %"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    ref_bytes = sizes[reference]["file_bytes"]
    for v, row in b1.items():
        cells = [f"{v} ({row['runtime']})", f"{acc.get(v, float('nan')) * 100:.2f}",
                 f"{sizes[v]['file_bytes'] / 1e6:.2f}",
                 f"{row['measurement']['stats']['median_s'] * 1e3:.2f}"]
        if size_key:
            big = b1_big.get(v)
            cells += ([f"{big['measurement']['stats']['median_s'] * 1e3:.2f} ({big['runtime']})",
                       f"{ref_big['measurement']['stats']['median_s'] / big['measurement']['stats']['median_s']:.1f}x"]  # noqa: E501
                      if big and ref_big else ["—", "—"])
        cells.append(f"{ref_bytes / sizes[v]['file_bytes']:.1f}x")
        r = rob.get(v, {}).get("accuracy", {})
        cells.append(f"{r['0.03'] * 100:.1f}" if "0.03" in r else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(headline(json.loads(Path(sys.argv[1]).read_text())))
