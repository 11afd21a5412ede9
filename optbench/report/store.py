"""Result store: every bench result is written atomically as JSON (+ CSV + Markdown)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from optbench.io import atomic_write_json, atomic_write_text


def bench_frame(result: dict):
    """One row per (runtime, batch size) of a bench result dict, as a pandas DataFrame."""
    import pandas as pd

    rows = []
    for row in result["rows"]:
        stats = row["measurement"]["stats"]
        quality = result.get("quality", {}).get(row["entry"], {})
        rows.append({
            "label": result["label"], "variant": row["variant"], "runtime": row["runtime"],
            "batch_size": row["batch_size"],
            "median_ms": stats["median_s"] * 1e3, "p90_ms": stats["p90_s"] * 1e3,
            "p99_ms": stats["p99_s"] * 1e3, "iqr_ms": stats["iqr_s"] * 1e3,
            "mean_ms": stats["mean_s"] * 1e3, "throughput_items_s": stats["throughput_items_s"],
            "n_samples": stats["n_samples"], "speedup": row["speedup"]["speedup"]["estimate"],
            "speedup_low": row["speedup"]["speedup"]["low"],
            "speedup_high": row["speedup"]["speedup"]["high"],
            "memory_mb": row["memory_bytes"] / 2**20, "load_s": row["load_s"],
            "top1_accuracy": quality.get("top1_accuracy"),
            "warnings": "; ".join(row["measurement"]["warnings"] + row["speedup"]["warnings"]),
        })
    return pd.DataFrame(rows)


def save_bench(result, out_dir: str | os.PathLike, stem: str = "result",
               html: bool = True) -> dict[str, Path]:
    """Write `stem`.json, .csv, .md and (with plots) .html into out_dir; returns their paths."""
    from optbench.report.markdown import render_bench

    data = result.to_dict() if hasattr(result, "to_dict") else result
    out = Path(out_dir)
    paths = {"json": atomic_write_json(out / f"{stem}.json", data)}
    if getattr(result, "predictions", None):
        paths["predictions"] = save_predictions(result.predictions, out / "predictions.npz")
    paths["csv"] = atomic_write_text(out / f"{stem}.csv", bench_frame(data).to_csv(index=False))
    paths["md"] = atomic_write_text(out / f"{stem}.md", render_bench(data))
    if html:
        from optbench.report.html import render_html

        paths["html"] = atomic_write_text(out / f"{stem}.html", render_html(data))
    return paths


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


def load_result(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())
