"""Result store: every bench result is written atomically as JSON (+ CSV + Markdown)."""

from __future__ import annotations

import os
from pathlib import Path

from optbench.io import atomic_write_json, atomic_write_text
from optbench.results import BenchResult, load_report


def bench_frame(result):
    """One row per (variant, runtime, batch size) of a bench result (or its dict), as a pandas
    DataFrame."""
    import pandas as pd

    result = BenchResult.coerce(result)
    rows = []
    for row in result.rows:
        m, sp = row.measurement, row.speedup.speedup
        quality = result.quality.get(row.entry)
        rows.append({
            "label": result.label, "variant": row.variant, "runtime": row.runtime,
            "batch_size": row.batch_size,
            "median_ms": m.median_s * 1e3, "p90_ms": m.p90_s * 1e3, "p99_ms": m.p99_s * 1e3,
            "iqr_ms": m.iqr_s * 1e3, "mean_ms": m.mean_s * 1e3,
            "throughput_items_s": m.throughput_items_s, "n_samples": len(m.samples_s),
            "speedup": sp.estimate, "speedup_low": sp.low, "speedup_high": sp.high,
            "memory_mb": row.memory_bytes / 2**20, "load_s": row.load_s,
            "top1_accuracy": quality.top1_accuracy if quality else None,
            "warnings": "; ".join(row.warnings),
        })
    return pd.DataFrame(rows)


def save_bench(result, out_dir: str | os.PathLike, stem: str = "result",
               html: bool = True) -> dict[str, Path]:
    """Write `stem`.json, .csv, .md and (with plots) .html into out_dir; returns their paths."""
    from optbench.report.render import render_bench, render_html

    predictions = getattr(result, "predictions", None)
    result = BenchResult.coerce(result)
    out = Path(out_dir)
    paths = {"json": atomic_write_json(out / f"{stem}.json", result.to_dict())}
    if predictions:
        paths["predictions"] = save_predictions(predictions, out / "predictions.npz")
    paths["csv"] = atomic_write_text(out / f"{stem}.csv", bench_frame(result).to_csv(index=False))
    paths["md"] = atomic_write_text(out / f"{stem}.md", render_bench(result))
    if html:
        paths["html"] = atomic_write_text(out / f"{stem}.html", render_html(result))
    return paths


def rerender(folder: str | os.PathLike, stem: str = "report") -> dict[str, Path]:
    """Re-render the Markdown, HTML and CSV of a results folder from its `stem`.json (any
    stored version), and search.md from search.json where there is one, e.g. after an optbench
    upgrade. The recipe's targets are checked again from the stored measurements and
    predictions.npz (recheck_targets); where that changes them, `stem`.json is rewritten with
    the new check and where it ran. Nothing measured is changed."""
    from optbench.report.render import render_bench, render_html

    folder = Path(folder)
    result = load_result(folder / f"{stem}.json")
    paths = {}
    if recheck_targets(result, folder / "predictions.npz"):
        paths["json"] = atomic_write_json(folder / f"{stem}.json", result.to_dict())
    paths |= {"md": atomic_write_text(folder / f"{stem}.md", render_bench(result)),
             "html": atomic_write_text(folder / f"{stem}.html", render_html(result)),
             "csv": atomic_write_text(folder / f"{stem}.csv",
                                      bench_frame(result).to_csv(index=False))}
    if (folder / "search.json").is_file():   # a recipe's [search] section
        import json

        from optbench.report.render import render_search

        summary = json.loads((folder / "search.json").read_text())
        paths["search"] = atomic_write_text(folder / "search.md", render_search(summary))
    return paths


def recheck_targets(result: BenchResult, predictions: Path) -> bool:
    """Check a saved report's targets again with this optbench (e.g. a newer breakdown of where
    the points went); True when that changed them, recorded in sections.targets_checked. A
    report whose accuracy targets were paired tests is left as it is without its
    predictions.npz, rather than re-checked without the pairing."""
    from optbench import env
    from optbench.pipeline.targets import evaluate_targets, stored_specs

    sec = result.sections
    if not sec.targets:
        return False
    paired = any("paired_n" in t or "t_p" in t for t in sec.targets)
    if paired and not predictions.is_file():
        return False
    found = load_predictions(predictions) if predictions.is_file() else {}
    checked = evaluate_targets(result, stored_specs(sec.targets), found)
    if _canonical(checked) == _canonical(sec.targets):
        return False
    sec.targets, sec.targets_checked = checked, env.provenance()
    return True


def _canonical(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def save_predictions(predictions: dict, path: str | os.PathLike) -> Path:
    """Per-example top-1 predictions of every entry (and the labels) as a compressed .npz,
    written atomically; load with numpy.load(path) (no pickle: allow_pickle stays False)."""
    import io

    import numpy as np

    from optbench.io import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{_npz_key(k): v for k, v in predictions.items()})
    return atomic_write_bytes(path, buffer.getvalue())


def load_predictions(path: str | os.PathLike) -> dict:
    """predictions.npz -> {entry label: int array, "labels": int array}."""
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return {k.replace(" | ", " / "): data[k] for k in data.files}


def _npz_key(label: str) -> str:
    return label.replace(" / ", " | ")  # "/" would make a folder inside the zip


def load_result(path: str | os.PathLike) -> BenchResult:
    """A stored result.json / report.json (any version) as a BenchResult."""
    return load_report(path)
