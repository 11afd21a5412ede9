"""Interleaved vs sequential medians of the same sessions, for short calls (issue #13, item 1).

For each model it loads the sessions once (torch eager fp32, ONNX Runtime fp32, ONNX Runtime
static int8), then times them four ways, in this order: sequentially (one plain Timer.run per
session, as a user's loop would call one model), interleaved the old way (one call per turn, no
warm-up), interleaved with steady-state turns (the default now), and sequentially again. The
medians of each interleaved way are divided by the mean of the two sequential medians of the
same session.

    python scripts/steady_state_check.py --out results/steady_state
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import torch

from optbench import env
from optbench.data import ImageTransform, synthetic_dataset
from optbench.io import atomic_write_json, atomic_write_text
from optbench.measure import TimerConfig, compare, time_callable
from optbench.models import build_model
from optbench.runtime import get_runtime
from optbench.transforms import Context, Variant, config_from_dict, optimize
from optbench.transforms.export import fp32_onnx

CASES = (("mobilenet_v2", 224), ("mobilenet_v2", 32))
BUDGET = TimerConfig(min_time_s=2.0, max_time_s=8.0, target_rel_spread=0.02)
OLD = dataclasses.replace(BUDGET, round_warmup_calls=0, round_min_s=1e-6)


def sessions(arch: str, size: int, workdir: Path) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10, in_channels=3).eval()
    data = synthetic_dataset(n=64, size=size, seed=0,
                             transform=ImageTransform(size=size, channels=3, mean=0.3, std=0.35))
    ctx = Context(example_input=data.batch(0, 2), calib_data=data, workdir=workdir,
                  progress=False, step=f"{arch}-{size}")
    int8 = optimize(model, config_from_dict({"method": "ptq-ort-static",
                                             "calibration_batches": 2, "batch_size": 8,
                                             "guard": {"action": "warn"}}), ctx)
    x = data.batch(0, 1)
    out = {"torch-eager fp32": get_runtime("torch-eager").load(model, example=x),
           "onnxruntime fp32": get_runtime("onnxruntime").load(
               fp32_onnx(ctx, Variant("fp32", model=model), 18), example=x, threads=2),
           "onnxruntime int8": get_runtime("onnxruntime").load(int8.onnx_path, example=x,
                                                                threads=2)}
    return {name: _bound(s, x) for name, s in out.items()}


def _bound(session, x):
    prepared = session.prepare(x)
    return lambda: session.run(prepared)


def sequential(fns: dict) -> dict[str, float]:
    return {name: time_callable(fn, BUDGET, label=name).median_s for name, fn in fns.items()}


def interleaved(fns: dict, config: TimerConfig) -> dict[str, float]:
    result = compare(fns, config=config)
    return {name: m.median_s for name, m in result.measurements.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, size in CASES:
            fns = sessions(arch, size, Path(tmp))
            seq1 = sequential(fns)
            old = interleaved(fns, OLD)
            new = interleaved(fns, BUDGET)
            seq2 = sequential(fns)
            for name in fns:
                seq = (seq1[name] + seq2[name]) / 2
                rows.append({"model": f"{arch} {size}x{size}", "session": name,
                             "sequential_ms": [1e3 * seq1[name], 1e3 * seq2[name]],
                             "old_interleaved_ms": 1e3 * old[name],
                             "steady_interleaved_ms": 1e3 * new[name],
                             "old_vs_sequential": old[name] / seq,
                             "steady_vs_sequential": new[name] / seq})
                print(rows[-1], flush=True)
    report = {"rows": rows, "env": env.capture(), "budget": BUDGET.to_dict()}
    atomic_write_json(args.out / "steady_state.json", report)
    atomic_write_text(args.out / "README.md", render(report))
    return 0


def render(report: dict) -> str:
    e = report["env"]
    lines = ["# Interleaved vs sequential medians, short calls", "",
             f"Command: `{e['command']}`; commit {e['git_commit']}"
             + (" (uncommitted changes)" if e.get("git_dirty") else "") + f"; {e['date']}.",
             f"Machine: {e['cpu_model']}, int8 class {e['cpu_features']['kind']}, "
             f"{e['torch_threads']} torch threads, allocator {e['allocator']}.", "",
             "Batch 1, random weights (latency does not depend on them), the same loaded "
             "sessions timed sequentially (a plain loop per session, before and after), "
             "interleaved the old way (one call per turn) and interleaved with steady-state "
             "turns (warm-up calls, then a block of at least 10 ms). Ratios are interleaved "
             "median / mean sequential median; target: steady-state within 5%.", "",
             "| model | session | sequential ms (before, after) | old interleaved ms | ratio | "
             "steady-state ms | ratio |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        s = r["sequential_ms"]
        lines.append(f"| {r['model']} | {r['session']} | {s[0]:.3f}, {s[1]:.3f} | "
                     f"{r['old_interleaved_ms']:.3f} | {r['old_vs_sequential']:.3f} | "
                     f"{r['steady_interleaved_ms']:.3f} | {r['steady_vs_sequential']:.3f} |")
    worst = max(abs(r["steady_vs_sequential"] - 1) for r in report["rows"])
    old = max(abs(r["old_vs_sequential"] - 1) for r in report["rows"])
    lines += ["", f"Largest deviation from sequential: {100 * old:.1f}% the old way, "
              f"{100 * worst:.1f}% with steady-state turns.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
