"""Coverage experiment: do the speed-up CIs hold from run to run?

The same comparison is run as N independent invocations (each a fresh Python process, as a
user running the bench twice would), with two methods:

- one-process: the comparison timed in the invocation's own process; CI = paired moving-block
  bootstrap over its interleaved rounds (what optbench reported before `processes`);
- processes=K: the same comparison timed in K fresh worker processes, pooled; CI = t-interval
  over the per-process ratios (stats.process_ratio_ci).

For each method: how often an invocation's 95% CI contains the pooled estimate (the median of
every invocation's estimate, both methods), and the median CI width relative to the estimate.

    python scripts/ci_coverage.py --invocations 10 --processes 3 --out results/ci_coverage

Comparisons (random-init networks: latency does not depend on the weights' values), 224x224,
batch 1: MobileNetV2 eager vs ONNX Runtime fp32 (two short calls), and ResNet50 eager vs
MobileNetV2 int8 (ORT static) on ONNX Runtime (a long call vs a short one). Run it alone on the
machine: it is a timing experiment.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

PAIRS = {
    "mobilenet_v2 eager vs onnxruntime": (("mobilenet_v2", "torch-eager"),
                                          ("mobilenet_v2", "onnxruntime")),
    "resnet50 eager vs mobilenet_v2 int8 onnxruntime": (("resnet50", "torch-eager"),
                                                        ("mobilenet_v2-int8", "onnxruntime")),
}
SHAPE = (3, 224, 224)


def build(work: Path) -> None:
    """The ONNX files every invocation loads (made once)."""
    import torch

    from optbench.data import ImageTransform, synthetic_dataset
    from optbench.models import build_model
    from optbench.transforms import Context, Variant, config_from_dict, optimize

    work.mkdir(parents=True, exist_ok=True)
    if (work / "mobilenet_v2-int8.onnx").is_file():
        return
    torch.manual_seed(0)
    model = build_model("mobilenet_v2", num_classes=10).eval()
    data = synthetic_dataset(n=64, size=32, seed=0,
                             transform=ImageTransform(size=224, channels=3))
    ctx = Context(example_input=torch.randn(2, *SHAPE), calib_data=data, val_data=data,
                  workdir=work, progress=False)
    base = Variant("mobilenet_v2", model=model, lineage=("mobilenet_v2",))
    fp32 = optimize(base, config_from_dict({"method": "export-onnx"}), ctx.for_step("fp32"))
    int8 = optimize(base, config_from_dict({"method": "ptq-ort-static", "calibration_batches": 2,
                                            "batch_size": 16, "guard": {"action": "off"}}),
                    ctx.for_step("int8"))
    fp32.onnx_path.replace(work / "mobilenet_v2.onnx")
    int8.onnx_path.replace(work / "mobilenet_v2-int8.onnx")


def invocation(pair: str, processes: int, work: Path, min_time: float, max_time: float) -> dict:
    """One invocation (run in its own process): the pair timed, its speed-up and CI."""
    import torch

    from optbench.bench import BenchConfig, Entry, bench_entries
    from optbench.models import build_model

    entries = []
    for name, runtime in PAIRS[pair]:
        if runtime == "onnxruntime":
            artifact = work / f"{name}.onnx"
        else:
            torch.manual_seed(0)
            artifact = build_model(name, num_classes=10).eval()
        entries.append(Entry(name, runtime, artifact))
    config = BenchConfig(runtimes=("torch-eager", "onnxruntime"), batch_sizes=(1,),
                         input_shape=SHAPE, threads=2, min_time_s=min_time,
                         max_time_s=max_time, processes=processes)
    result = bench_entries(entries, config, label=pair)
    row = result.rows[1]
    ci = row.speedup.speedup
    return {"pair": pair, "processes": processes, "estimate": ci.estimate, "low": ci.low,
            "high": ci.high, "medians_s": [r.median_s for r in result.rows],
            "samples": [len(r.measurement.samples_s) for r in result.rows],
            "between_process_spread": [r.measurement.between_process_spread
                                       for r in result.rows]}


def summarize(records: list[dict]) -> dict:
    import numpy as np

    out = {}
    for pair in PAIRS:
        mine = [r for r in records if r["pair"] == pair]
        if not mine:
            continue
        pooled = float(np.median([r["estimate"] for r in mine]))
        methods = {}
        for processes in sorted({r["processes"] for r in mine}):
            rs = [r for r in mine if r["processes"] == processes]
            hits = [r["low"] <= pooled <= r["high"] for r in rs]
            widths = [(r["high"] - r["low"]) / r["estimate"] for r in rs]
            methods[str(processes)] = {
                "invocations": len(rs), "coverage": sum(hits) / len(rs),
                "median_relative_width": float(np.median(widths)),
                "estimates": [r["estimate"] for r in rs]}
        out[pair] = {"pooled_estimate": pooled, "methods": methods}
    return out


def render(summary: dict, meta: dict) -> str:
    lines = ["# Coverage of the speed-up CIs across independent invocations", "",
             f"Command: `{meta['command']}` (commit {meta['git_commit']}, {meta['cpu']}; "
             f"{meta['date']}).", "",
             "Each invocation is a fresh process. Coverage = share of invocations whose 95% CI "
             "contains the pooled estimate (median of all invocations' estimates, both "
             "methods). Width = (high - low) / estimate, median over invocations.", "",
             "| comparison | method | invocations | coverage | median CI width | estimates "
             "(min .. max) |", "|---|---|---:|---:|---:|---|"]
    for pair, s in summary.items():
        for processes, m in s["methods"].items():
            method = ("one process, paired block bootstrap" if processes == "1"
                      else f"{processes} fresh processes, t-interval over processes")
            lines.append(f"| {pair} (pooled {s['pooled_estimate']:.3f}x) | {method} | "
                         f"{m['invocations']} | {m['coverage']:.0%} | "
                         f"{m['median_relative_width']:.1%} | {min(m['estimates']):.3f} .. "
                         f"{max(m['estimates']):.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--invocations", type=int, default=10)
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--min-time", type=float, default=0.5)
    p.add_argument("--max-time", type=float, default=2.0)
    p.add_argument("--pairs", default=",".join(PAIRS), help="comma-separated pair names")
    p.add_argument("--out", default="results/ci_coverage")
    p.add_argument("--work", default="runs/ci_coverage", help="the ONNX files (not results)")
    p.add_argument("--invocation", help=argparse.SUPPRESS)   # internal: PAIR|PROCESSES
    args = p.parse_args()
    out, work = Path(args.out), Path(args.work)
    if args.invocation:
        pair, processes = args.invocation.rsplit("|", 1)
        print(json.dumps(invocation(pair, int(processes), work, args.min_time, args.max_time)))
        return 0
    from optbench import env
    from optbench.io import atomic_write_json, atomic_write_text

    build(work)
    out.mkdir(parents=True, exist_ok=True)
    records_path = out / "invocations.jsonl"
    records = ([json.loads(line) for line in records_path.read_text().splitlines()]
               if records_path.is_file() else [])   # resumes
    pairs = [x for x in args.pairs.split(",") if x]
    for i in range(args.invocations):
        for pair in pairs:
            for processes in (1, args.processes):
                done = [r for r in records if r["pair"] == pair and r["processes"] == processes]
                if len(done) > i:
                    continue
                t0 = time.time()
                res = subprocess.run([sys.executable, __file__, "--out", str(out), "--work",
                                      str(work),
                                      "--min-time", str(args.min_time), "--max-time",
                                      str(args.max_time), "--invocation",
                                      f"{pair}|{processes}"],
                                     capture_output=True, text=True, check=True)
                record = json.loads(res.stdout.strip().splitlines()[-1])
                records.append(record)
                with records_path.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")
                print(f"[{i + 1}/{args.invocations}] {pair}, processes={processes}: "
                      f"{record['estimate']:.3f}x [{record['low']:.3f}, {record['high']:.3f}] "
                      f"({time.time() - t0:.0f} s)", flush=True)
    e = env.capture()
    meta = {"command": e["command"], "git_commit": e["git_commit"],
            "cpu": f"{e['cpu_model']}, ISA {', '.join(k for k, v in e['isa'].items() if v)}",
            "date": e["date"], "allocator": e["allocator"]}
    summary = summarize(records)
    atomic_write_json(out / "ci_coverage.json", {"meta": meta, "summary": summary,
                                                 "env": e})
    text = render(summary, meta)
    atomic_write_text(out / "README.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
