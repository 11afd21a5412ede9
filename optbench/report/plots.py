"""Plots of a bench result (matplotlib, Agg backend; imported only when a report is drawn).

Each function takes a BenchResult and returns PNG bytes (None when it has nothing to draw).
"""

from __future__ import annotations

import io

import numpy as np

from optbench.results import BenchResult, split_seed


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points (latency, accuracy) that no other point beats on both: lower latency
    and higher-or-equal accuracy."""
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc)
                        for j, (l2, a2) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def accuracy_vs_latency(result: BenchResult, batch_size: int = 1) -> bytes | None:
    quality = result.quality
    rows = [r for r in result.rows if r.batch_size == batch_size and r.entry in quality]
    if not rows:
        return None
    pts = [(r.median_s * 1e3, quality[r.entry].top1_accuracy) for r in rows]
    front = set(pareto_front(pts))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (r, (lat, acc)) in enumerate(zip(rows, pts, strict=True)):
        ax.scatter(lat, acc, s=60 if i in front else 25, color="C3" if i in front else "0.6",
                   zorder=3)
        if i in front:   # the others are in the tables; their labels would pile up
            ax.annotate(r.entry, (lat, acc), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
    ordered = sorted(pts[i] for i in front)
    ax.plot(*zip(*ordered, strict=True), color="C3", lw=1, ls="--", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel(f"median latency at batch {batch_size} (ms, log scale)")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title("Accuracy vs latency (labelled: the Pareto front; grey: dominated)")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    return _png(fig)


def size_per_variant(result: BenchResult) -> bytes | None:
    sizes = result.sizes
    if not sizes:
        return None
    names = list(sizes)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1.2))
    y = np.arange(len(names))
    ax.barh(y - 0.2, [sizes[n].file_bytes / 1e6 for n in names], 0.4, label="file")
    ax.barh(y + 0.2, [sizes[n].gzip_bytes / 1e6 for n in names], 0.4, label="gzip")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("MB")
    ax.set_title("Size on disk per variant")
    ax.legend()
    return _png(fig)


def latency_distributions(result: BenchResult, batch_size: int = 1) -> bytes | None:
    rows = [r for r in result.rows if r.batch_size == batch_size]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    data = [np.asarray(r.measurement.samples_s) * 1e3 for r in rows]
    ax.boxplot(data, orientation="horizontal", showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(rows) + 1), [r.entry for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel(f"latency per call at batch {batch_size} (ms, log scale)")
    ax.set_title("Latency distributions (raw samples)")
    return _png(fig)


def throughput_vs_batch(result: BenchResult) -> bytes | None:
    entries = list(dict.fromkeys(r.entry for r in result.rows))
    if len(result.batch_sizes) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for entry in entries:
        pts = sorted((r.batch_size, r.measurement.throughput_items_s)
                     for r in result.rows if r.entry == entry)
        ax.plot(*zip(*pts, strict=True), marker="o", label=entry)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("items / s (log scale)")
    ax.set_title("Throughput vs batch size")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    return _png(fig)


def training_curves(result: BenchResult) -> bytes | None:
    """Validation top-1 per epoch of every step that trained with a validation split; a step
    trained with several seeds draws each seed thin and their mean thick."""
    series = curve_series(result)
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in series:
        ax.plot(s["epochs"], s["values"], color=s["colour"], label=s["label"],
                **({"linewidth": 2.2, "marker": "o", "markersize": 3} if s["kind"] == "mean"
                   else {"linewidth": 0.8, "alpha": 0.35} if s["kind"] == "seed"
                   else {"linewidth": 1, "marker": "."}))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1")
    ax.set_title("Validation accuracy per epoch")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    return _png(fig)


def curve_series(result: BenchResult) -> list[dict]:
    """The lines of training_curves: per step a colour; a step with several seeds gives one
    unlabelled line per seed and the mean over its seeds at each epoch all of them reached
    (labelled with the seed count); a single run gives one line under its name."""
    curves = {name: [h for h in hist if "val_accuracy" in h]
              for name, hist in training_histories(result).items()}
    groups: dict[str, list[tuple[str, list[dict]]]] = {}
    for name, hist in curves.items():
        if hist:
            groups.setdefault(split_seed(name)[0], []).append((name, hist))
    series = []
    for i, (base, members) in enumerate(groups.items()):
        colour = f"C{i % 10}"
        if len(members) == 1:
            name, hist = members[0]
            series.append({"label": name, "kind": "single", "colour": colour,
                           "epochs": [h["epoch"] for h in hist],
                           "values": [h["val_accuracy"] for h in hist]})
            continue
        by_epoch = [{h["epoch"]: h["val_accuracy"] for h in hist} for _, hist in members]
        for (name, hist) in members:
            series.append({"label": None, "kind": "seed", "colour": colour, "name": name,
                           "epochs": [h["epoch"] for h in hist],
                           "values": [h["val_accuracy"] for h in hist]})
        common = sorted(set.intersection(*(set(e) for e in by_epoch)))
        if common:
            series.append({"label": f"{base}: mean of {len(members)} seeds", "kind": "mean",
                           "colour": colour, "epochs": common,
                           "values": [float(np.mean([e[k] for e in by_epoch]))
                                      for k in common]})
    return series


def training_histories(result: BenchResult) -> dict[str, list[dict]]:
    """Each variant's per-epoch training record (its training, distillation, QAT or the
    fine-tuning after pruning), from the variants section."""
    out = {}
    for name, record in result.sections.variants.items():
        info = record.facts.other
        hist = info.get("history") or info.get("finetune")
        if isinstance(hist, list) and hist and isinstance(hist[0], dict):
            out[name] = hist
    return out


ALL = {"accuracy_vs_latency": accuracy_vs_latency, "size_per_variant": size_per_variant,
       "latency_distributions": latency_distributions, "throughput_vs_batch": throughput_vs_batch,
       "training_curves": training_curves}
