"""Coverage matrix: every registered method applied to torchvision image classifiers (random
init, small input), each cell ok / clear error / crash / timeout, with output agreement, size
ratio and one latency ratio for the ok cells.

    python scripts/coverage.py --out results/coverage            # one model per family
    python scripts/coverage.py --models all --out runs/coverage  # every classifier
    python scripts/coverage.py --models resnet18,shufflenet_v2_x0_5 --methods export-onnx ...

Each model runs in a fresh worker process (a crash or a hang there cannot take the matrix
down, and Dynamo's per-process state starts clean); a cell that shows no progress for
--cell-timeout seconds is a timeout and the worker restarts at the next method. Results are
written after every model, so an interrupted run resumes (finished models are skipped).
Random-init networks get their BatchNorm statistics from a few batches first, so their logits
are not near-ties and agreement with fp32 means something. Latency: batch 1, fp32 torch eager
against the variant's own runtime, interleaved in the same worker (a rough ratio: short runs).
A model's cells share one Context, as a pipeline's steps do: the methods that start from ONNX
reuse the fp32 file the first of them exported, so only that cell's seconds include the export.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

FAMILIES = ("alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "efficientnet_v2_s",
            "googlenet", "inception_v3", "maxvit_t", "mnasnet0_5", "mobilenet_v2",
            "mobilenet_v3_small", "regnet_x_400mf", "regnet_y_400mf", "resnet18",
            "resnext50_32x4d", "shufflenet_v2_x0_5", "squeezenet1_0", "swin_t", "swin_v2_t",
            "vgg11", "vit_b_16", "wide_resnet50_2")
CI_MODELS = ("mobilenet_v3_small", "shufflenet_v2_x0_5")
CI_METHODS = ("prune-structured", "ptq-ort-static", "export-onnx")
SHORT_TRAIN = {"epochs": 1, "batch_size": 8, "lr": 0.001, "max_steps_per_epoch": 2}
CONFIGS = {  # method -> small settings; training methods take two steps
    "prune-unstructured": {"ratio": 0.5},
    "prune-structured": {"ratio": 0.3, "round_to": 8},
    "ptq-pt2e": {"calibration_batches": 2, "batch_size": 8, "guard": {"action": "warn"}},
    "ptq-ort-static": {"calibration_batches": 2, "batch_size": 8, "guard": {"action": "warn"}},
    "ptq-ort-dynamic": {"guard": {"action": "warn"}},
    "qat-pt2e": {"train": SHORT_TRAIN, "guard": {"action": "warn"}},
    "distill": {"train": SHORT_TRAIN},
    "reduced-precision": {"dtype": "bfloat16"},
    "export-onnx": {"parity_examples": 16},
    "train": {"train": SHORT_TRAIN},
}
TRAINS = ("qat-pt2e", "distill", "train")
SIZES = (64, 96, 128, 224)   # the first a model builds and runs at


# -- the worker: one model, its methods, one JSON line per cell ------------------------------
def build(name: str, size: int):
    import torchvision

    kwargs = {"num_classes": 10}
    if name.startswith("vit_"):
        kwargs["image_size"] = size
    if name.startswith("maxvit"):
        kwargs["input_size"] = (size, size)
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)
    return torchvision.models.get_model(name, **kwargs)


def prepared_model(name: str):
    """The model at the first size it runs at, BatchNorm statistics set from data."""
    import torch

    from optbench.data import ImageTransform, make_loader, synthetic_dataset

    errors = []
    for size in SIZES:
        try:
            torch.manual_seed(0)
            model = build(name, size)
            data = synthetic_dataset(n=128, size=size, seed=0, transform=ImageTransform(
                size=size, channels=3, mean=0.3, std=0.35))
            model.train()
            with torch.no_grad():
                for images, _ in make_loader(data, 16):
                    model(images)
            return model.eval(), data, size
        except Exception as exc:  # too small for this architecture: try the next size
            errors.append(f"{size}px: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    raise RuntimeError("; ".join(errors))


def worker(model_name: str, methods: list[str], out: Path, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    try:
        model, data, size = prepared_model(model_name)
    except Exception as exc:
        _emit(out, {"method": "*", "outcome": "n/a", "detail": f"does not build: {exc}"})
        return
    from optbench.transforms import Context

    with tempfile.TemporaryDirectory() as tmp:
        # one context for the model's cells, as a pipeline shares one across its steps: the
        # methods that start from ONNX reuse the fp32 file the first of them exported
        base = Context(example_input=data.batch(0, 4), calib_data=data, train_data=data,
                       val_data=data, workdir=Path(tmp), progress=False)
        for method in methods:
            _emit(out, {"method": method, "size": size,
                        **cell(model, data, method, threads, base)})


def cell(model, data, method: str, threads: int, base) -> dict:
    import copy

    from optbench.errors import OptbenchError
    from optbench.transforms import config_from_dict, optimize

    t0 = time.perf_counter()
    ctx = base.for_step(method, teacher=copy.deepcopy(model))
    try:
        variant = optimize(model, config_from_dict({"method": method, **CONFIGS[method]}),
                           ctx)
        figures = measure(model, variant, data, threads)
    except OptbenchError as exc:
        return {"outcome": "error", "error": type(exc).__name__, "detail": str(exc),
                "seconds": time.perf_counter() - t0}
    except Exception as exc:
        return {"outcome": "crash", "error": type(exc).__name__,
                "detail": str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "",
                "where": traceback.format_exc().strip().splitlines()[-3][:200],
                "seconds": time.perf_counter() - t0}
    return {"outcome": "ok", "seconds": time.perf_counter() - t0, **figures}


def measure(model, variant, data, threads: int) -> dict:
    """Agreement with fp32 on 64 examples, size ratio, batch-1 latency ratio."""
    import numpy as np
    import torch

    from optbench.measure import TimerConfig, compare, model_size, onnx_size
    from optbench.runtime import get_runtime
    from optbench.runtime.base import predict
    from optbench.transforms.guard import agreement_stats

    batch = data.batch(0, 64)
    runtime = get_runtime(variant.runtimes[0])
    session = runtime.load(variant.artifact(runtime.accepts), example=batch[:1], threads=threads)
    base = get_runtime("torch-eager").load(model, example=batch[:1], threads=threads)
    with torch.inference_mode():
        stats = agreement_stats(predict(base, batch), np.concatenate(
            [predict(session, batch[i:i + 16]) for i in range(0, 64, 16)]))
    size = (onnx_size(variant.onnx_path) if variant.onnx_path is not None
            else model_size(variant.model))
    one = batch[:1]
    fns = {"fp32": _call(base, one), "variant": _call(session, one)}
    timing = compare(fns, config=TimerConfig(warmup_s=0.1, min_time_s=0.3, max_time_s=1.5))
    guard = variant.info.get("int8_guard", {})
    return {"runtime": variant.runtimes[0], "agreement": stats["top1_agreement"],
            "relative_error": stats["relative_error"],
            "size_ratio": model_size(model).file_bytes / max(size.file_bytes, 1),
            "speedup_b1": timing.ratios["variant"].speedup.estimate,
            "guard_flagged": any("collapsed" in w for w in variant.info.get("warnings", [])),
            "guard_agreement": guard.get("top1_agreement")}


def _call(session, batch):
    prepared = session.prepare(batch)
    return lambda: session.run(prepared)


def _emit(out: Path, record: dict) -> None:
    with out.open("a") as f:
        f.write(json.dumps(record) + "\n")


# -- the driver ------------------------------------------------------------------------------
def run_model(name: str, methods: list[str], cell_timeout: float, threads: int) -> list[dict]:
    """Run a worker per model; restart after a crash or a timeout at the next method."""
    cells: list[dict] = []
    todo = list(methods)
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "cells.jsonl"
        while todo:
            lines.write_text("")
            proc = subprocess.Popen([sys.executable, __file__, "--worker", name, "--methods",
                                     ",".join(todo), "--lines", str(lines),
                                     "--threads", str(threads)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            status = _watch(proc, lines, cell_timeout)
            done = [json.loads(x) for x in lines.read_text().splitlines()]
            cells += done
            if done and done[0]["method"] == "*":
                return [{**done[0], "method": m} for m in methods]
            todo = todo[len(done):]
            if todo and status != "finished":
                cells.append({"method": todo[0], "outcome": status[0], "detail": status[1]})
                todo = todo[1:]
    return cells


def _watch(proc, lines: Path, cell_timeout: float):
    seen, last = 0, time.monotonic()
    while proc.poll() is None:
        time.sleep(0.5)
        count = len(lines.read_text().splitlines())
        if count != seen:
            seen, last = count, time.monotonic()
        elif time.monotonic() - last > cell_timeout:
            proc.kill()
            proc.wait()
            return ("timeout", f"no result within {cell_timeout:.0f} s")
    if proc.returncode == 0:
        return "finished"
    tail = (proc.stderr.read() or "").strip().splitlines()[-1:] or [""]
    return ("crash", f"worker process died (exit {proc.returncode}): {tail[0][:200]}")


def model_names(spec: str) -> list[str]:
    if spec == "families":
        return list(FAMILIES)
    if spec == "ci":
        return list(CI_MODELS)
    if spec == "all":
        import torchvision

        return sorted(torchvision.models.list_models(module=torchvision.models))
    return [m.strip() for m in spec.split(",") if m.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="families", help="families | all | ci | a,b,c")
    parser.add_argument("--methods", default="all", help="all | ci | a,b,c")
    parser.add_argument("--cell-timeout", type=float, default=300.0)
    parser.add_argument("--jobs", type=int, default=1,
                        help="models run at once (each worker gets 2 // jobs threads)")
    parser.add_argument("--out", type=Path, default=Path("results/coverage"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--lines", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    methods = _methods(args.methods)
    threads = args.threads or max(1, 2 // max(args.jobs, 1))
    if args.worker:
        worker(args.worker, methods, args.lines, threads)
        return 0
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from optbench import env
    from optbench.io import atomic_write_json, atomic_write_text

    path = args.out / "coverage.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    results = old.get("models", {}) if old.get("methods") == methods else {}
    todo = [n for n in model_names(args.models) if n not in results]
    with ThreadPoolExecutor(max(args.jobs, 1)) as pool:   # each model in its own process
        futures = {pool.submit(_timed, run_model, n, methods, args.cell_timeout, threads): n
                   for n in todo}
        for future in as_completed(futures):
            name, (cells, seconds) = futures[future], future.result()
            results[name] = cells
            print(f"{name}: {_summary_line(cells)} ({seconds:.0f} s)", flush=True)
            report = {"command": env.capture()["command"], "methods": methods,
                      "models": results, "jobs": args.jobs, "threads": threads,
                      "env": env.capture()}
            atomic_write_json(path, report)
            atomic_write_text(args.out / "coverage.md", render(report))
    return 1 if any(c["outcome"] == "crash" for cells in results.values() for c in cells) else 0


def _timed(fn, *args):
    t0 = time.perf_counter()
    return fn(*args), time.perf_counter() - t0


def _methods(spec: str) -> list[str]:
    from optbench.transforms import method_names

    if spec == "all":
        return method_names()
    if spec == "ci":
        return list(CI_METHODS)
    names = [m.strip() for m in spec.split(",") if m.strip()]
    unknown = sorted(set(names) - set(method_names()))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; registered: {method_names()}")
    return names


def _summary_line(cells: list[dict]) -> str:
    counts: dict[str, int] = {}
    for c in cells:
        counts[c["outcome"]] = counts.get(c["outcome"], 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


SYMBOL = {"ok": "ok", "error": "clear error", "crash": "**CRASH**", "timeout": "timeout",
          "n/a": "n/a"}


def render(report: dict) -> str:
    methods, models, e = report["methods"], report["models"], report["env"]
    cpu = e.get("cpu_features", {})
    lines = ["# Coverage matrix: every method on torchvision classifiers", "",
             f"Command: `{report['command']}`; commit {e.get('git_commit')}; {e.get('date')}.",
             f"Machine: {e.get('cpu_model')}, {e.get('logical_cpus')} logical CPUs, int8 class "
             f"{cpu.get('kind')} (VNNI: {cpu.get('vnni')}); {report.get('jobs', 1)} model(s) at "
             f"a time, {report.get('threads', 2)} thread(s) each.", "",
             "Random-init models (BatchNorm statistics from 128 synthetic images), 10 classes, "
             "3 channels, at the first of 64/96/128/224 px each model runs at. A cell reads "
             "`agreement / size ratio / speed-up`: top-1 agreement with the fp32 model on 64 "
             "examples, fp32 bytes over variant bytes, and the batch-1 latency ratio of the "
             "variant's runtime against fp32 torch eager in the same worker (short runs: a "
             "rough ratio). Training methods take two steps, so their agreement is not expected "
             "to be high. `guard!` marks an int8 cell whose accuracy guard flagged a collapse.",
             "", "## Summary by method", "", "| method | ok | clear error | crash | timeout |",
             "|---|---:|---:|---:|---:|"]
    for m in methods:
        outcomes = [c["outcome"] for cells in models.values() for c in cells if c["method"] == m]
        lines.append(f"| {m} | " + " | ".join(str(outcomes.count(k)) for k in
                                               ("ok", "error", "crash", "timeout")) + " |")
    lines += ["", "## Cells", "", "| model | px | " + " | ".join(methods) + " |",
              "|---|---:|" + "---|" * len(methods)]
    for name, cells in sorted(models.items()):
        by = {c["method"]: c for c in cells}
        size = next((c.get("size") for c in cells if c.get("size")), "")
        lines.append(f"| {name} | {size} | " + " | ".join(_cell_text(by.get(m)) for m in methods)
                     + " |")
    lines += ["", "## Errors and crashes", ""]
    for name, cells in models.items():
        for c in cells:
            if c["outcome"] in ("error", "crash", "timeout", "n/a"):
                lines.append(f"- **{name} / {c['method']}** ({SYMBOL[c['outcome']]}): "
                             f"{c.get('error', '')} {c.get('detail', '')[:600]}")
    return "\n".join(lines) + "\n"


def _cell_text(c: dict | None) -> str:
    if c is None:
        return ""
    if c["outcome"] != "ok":
        return SYMBOL[c["outcome"]]
    flag = " guard!" if c.get("guard_flagged") else ""
    return (f"{c['agreement']:.0%} / {c['size_ratio']:.1f}x / {c['speedup_b1']:.2f}x"
            f"{flag}")


if __name__ == "__main__":
    raise SystemExit(main())
