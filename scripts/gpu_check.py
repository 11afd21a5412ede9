"""The CUDA paths, checked in one run on a machine with an NVIDIA GPU.

    python scripts/gpu_check.py --out OUT [--student CKPT] [--data-dir DIR]

1. With --student (an optbench checkpoint of the flagship's MobileNetV2 student, 1x32x32
   inputs) and Fashion-MNIST, measures the top-1 accuracy of the variants of 2. and their
   agreement with fp32 on the whole test split, on the GPU (first: it holds the real data).
2. Measures ResNet50 and MobileNetV2 (10 classes, 3x224x224, batch 1 and 8) on CUDA with the
   same harness as on CPU (CUDA events, torch.cuda.max_memory_allocated): fp32 eager (the
   baseline), fp32 torch.compile, fp16 and bf16 autocast through torch.compile, and ONNX Runtime's
   CUDA provider where the installed onnxruntime has it (else the row is skipped with the reason).
Writes OUT/gpu.json and OUT/gpu.md (atomically). The cuda-marked tests run separately
(`pytest -m cuda`); scripts/gpu_check.sh runs both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from optbench.bench import BenchConfig, Entry, bench_entries
from optbench.data import ImageTransform, load_fashion_mnist
from optbench.io import atomic_write_json, atomic_write_text, load_weights
from optbench.models import build_model
from optbench.transforms import Context, optimize
from optbench.transforms.export import export_onnx
from optbench.transforms.precision import ReducedPrecisionConfig


def entries_for(name: str, model: torch.nn.Module, example: torch.Tensor, folder: Path,
                device: str):
    ctx = Context(example_input=example, workdir=folder, device=device, progress=False)
    fp16 = optimize(model, ReducedPrecisionConfig(dtype="float16"), ctx).model
    bf16 = optimize(model, ReducedPrecisionConfig(dtype="bfloat16"), ctx).model
    onnx = export_onnx(model, example, folder / f"{name}.onnx")
    return [Entry(f"{name} fp32", "torch-eager", model),
            Entry(f"{name} fp32", "torch-compile", model),
            Entry(f"{name} fp16", "torch-compile", fp16),
            Entry(f"{name} bf16", "torch-compile", bf16),
            Entry(f"{name} fp32", "onnxruntime", onnx)]


def rows_md(result) -> list[str]:
    lines = ["| variant / runtime | batch | median ms | p90 ms | vs fp32 eager | CUDA peak MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in result.rows:
        m, s = r.measurement, r.speedup
        peak = r.run_memory.cuda_peak_allocated_bytes or 0
        lines.append(f"| {r.entry} | {r.batch_size} | {m.median_s * 1e3:.3f} | "
                     f"{m.p90_s * 1e3:.3f} | {s.speedup.estimate:.2f}x "
                     f"[{s.speedup.low:.2f}, {s.speedup.high:.2f}] | {peak / 2**20:.1f} |")
    lines += [f"- skipped {k}: {v}" for k, v in result.skipped.items()]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--student", help="optbench checkpoint of the flagship MobileNetV2 student")
    ap.add_argument("--data-dir", help="folder with the Fashion-MNIST idx files")
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--max-time", type=float, default=4.0)
    ap.add_argument("--models", default="resnet50,mobilenet_v2")
    ap.add_argument("--device", default="cuda", help="cpu only for a dry run of this script")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; this script checks the CUDA paths", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "none (dry run on CPU)"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import onnxruntime as ort

    md = ["# CUDA check", "",
          f"Command: `python scripts/gpu_check.py {' '.join(sys.argv[1:])}`", "",
          f"- GPU: {gpu}; torch {torch.__version__}, CUDA "
          f"{torch.version.cuda}; onnxruntime {ort.__version__} with providers "
          f"{ort.get_available_providers()}", ""]
    report: dict = {"gpu": gpu, "torch": torch.__version__,
                    "ort_providers": ort.get_available_providers(), "latency": {}}
    if args.student:
        tf = ImageTransform(size=32, channels=1)
        test = load_fashion_mnist("test", args.data_dir, transform=tf, download=False)
        model = build_model("mobilenet_v2", num_classes=10, in_channels=1)
        model.load_state_dict(load_weights(args.student))
        model.eval()
        example = torch.stack([test[i][0] for i in range(2)])
        qconfig = BenchConfig(batch_sizes=(1, 256), input_shape=(1, 32, 32), device=args.device,
                              min_time_s=args.min_time, max_time_s=args.max_time)
        result = bench_entries(entries_for("student", model, example, out, args.device), qconfig,
                               eval_data=test, label="student cuda 32")
        report["student"] = result.to_dict()
        md += ["## Flagship distilled MobileNetV2 student, Fashion-MNIST test split (1x32x32)", "",
               "| variant / runtime | top-1 % | top-1 agreement with fp32 eager | max abs diff |",
               "|---|---:|---:|---:|"]
        for label, q in result.quality.items():
            a = q.agreement
            md.append(f"| {label} | {100 * q.top1_accuracy:.2f} | "
                      f"{100 * a['top1_agreement']:.2f} | {a['max_abs_diff']:.2e} |")
        md += ["", *rows_md(result), ""]
        save(out, report, md)
    config = BenchConfig(batch_sizes=(1, 8), input_shape=(3, 224, 224), device=args.device,
                         min_time_s=args.min_time, max_time_s=args.max_time)
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = build_model(name, num_classes=10).eval()
        entries = entries_for(name, model, torch.randn(2, 3, 224, 224), out, args.device)
        result = bench_entries(entries, config, label=f"{name} cuda 224")
        report["latency"][name] = result.to_dict()
        md += [f"## {name}, 3x224x224, random weights (latency only)", "", *rows_md(result), ""]
        save(out, report, md)  # after each part, so a run cut short keeps what it measured
    print("\n".join(md))
    return 0


def save(out: Path, report: dict, md: list[str]) -> None:
    atomic_write_json(out / "gpu.json", report)
    atomic_write_text(out / "gpu.md", "\n".join(md) + "\n")
    print(f"saved {out / 'gpu.md'}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
