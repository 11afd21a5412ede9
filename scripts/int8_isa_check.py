"""int8 correctness on the CPU this runs on: the contract test's tiny model (trained on the
synthetic data the tests use) quantized by ptq-ort-static in every int8_mode, and by PT2E,
each scored on the 512 examples against the fp32 model, with the guard's figures.

    python scripts/int8_isa_check.py --out results/int8_isa/NAME.json
    python scripts/int8_isa_check.py --render results/int8_isa   # README.md from every run
    # an AVX2-only CPU, emulated (qemu-user 7.2 TCG exposes AVX2 but no AVX512/VNNI):
    qemu-x86_64 -cpu Haswell-noTSX .venv/bin/python scripts/int8_isa_check.py --no-pt2e ...

PT2E runs Inductor-compiled C++ kernels, which an emulated run cannot build for the emulated
CPU, hence --no-pt2e there.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import TinyNet  # noqa: E402  (the contract test's model)

from optbench import env  # noqa: E402
from optbench.data import make_loader, synthetic_dataset  # noqa: E402
from optbench.io import atomic_write_json, atomic_write_text  # noqa: E402
from optbench.isa import cpu_features  # noqa: E402
from optbench.measure import collect_logits, top1_accuracy  # noqa: E402
from optbench.runtime import get_runtime  # noqa: E402
from optbench.runtime.base import predict  # noqa: E402
from optbench.train import TrainConfig, evaluate, train  # noqa: E402
from optbench.transforms import Context, config_from_dict, optimize  # noqa: E402

ORT_MODES = ("auto", "u8s8", "u8s8-reduce-range", "u8u8")
CASES = [(method, {"int8_mode": m}) for method in ("ptq-ort-static", "ptq-ort-dynamic")
         for m in ORT_MODES]
PT2E = [("ptq-pt2e", {"int8_mode": m}) for m in ("auto", "full-range", "reduce-range")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--render", type=Path, help="write FOLDER/README.md from its runs")
    parser.add_argument("--no-pt2e", action="store_true")
    parser.add_argument("--label", default="", help="e.g. 'emulated: qemu -cpu Haswell-noTSX'")
    args = parser.parse_args(argv)
    if args.render:
        atomic_write_text(args.render / "README.md", render(sorted(args.render.glob("*.json"))))
        return 0
    if args.out is None:
        parser.error("--out is required (or --render FOLDER)")
    torch.set_num_threads(2)
    data = synthetic_dataset(n=512, num_classes=10, size=16, seed=0)
    torch.manual_seed(0)
    model = TinyNet()
    train(model, data, TrainConfig(epochs=5, batch_size=32, lr=0.05, seed=3), progress=False)
    model.eval()
    fp32 = evaluate(model, data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Context(example_input=data.batch(0, 4), calib_data=data, workdir=Path(tmp),
                      progress=False)
        for method, fields in CASES + ([] if args.no_pt2e else PT2E):
            ctx.step = f"{method}-{fields['int8_mode']}"
            calib = {} if method == "ptq-ort-dynamic" else {"calibration_batches": 4}
            config = config_from_dict({"method": method, "guard": {"action": "warn"}, **calib,
                                       **fields})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                variant = optimize(model, config, ctx)
                rows.append(_row(method, variant, data, fp32))
            print(rows[-1], flush=True)
    cpu = cpu_features()
    result = {"label": args.label, "cpu": cpu.to_dict(), "fp32_top1": fp32, "rows": rows,
              "env": env.capture()}
    atomic_write_json(args.out, result)
    return 0


def _row(method: str, variant, data, fp32: float) -> dict:
    runtime = get_runtime(variant.runtimes[0])
    session = runtime.load(variant.artifact(runtime.accepts), example=data.batch(0, 2))
    logits, labels = collect_logits(lambda x: predict(session, x), make_loader(data, 128))
    top1 = top1_accuracy(logits, labels)
    mode = variant.info["int8_mode"]
    return {"method": method, "requested": variant.info["config"]["int8_mode"],
            "mode": mode["mode"], "reason": mode["reason"], "top1": top1,
            "drop_points": 100 * (fp32 - top1), "guard": variant.info["int8_guard"],
            "guard_flagged": any("collapsed" in w for w in variant.info.get("warnings", []))}


def render(paths: list[Path]) -> str:
    import json

    lines = ["# int8 correctness per CPU kind", "",
             "The contract test's model (tests/conftest.py TinyNet, trained 5 epochs on the "
             "512-image synthetic set the tests use) quantized by each int8 method and mode, "
             "top-1 on those 512 images against fp32; `guard` is the accuracy guard's top-1 "
             "agreement with the fp32 parent on its 64 calibration examples (below 75% it "
             "stops the method; here it only warned) and `output error` the guard's relative "
             "error of the logits (|int8 - fp32| / |fp32|): on 512 images a top-1 difference "
             "of 1 point is 5 images, so the output error is the steadier sign of saturation. "
             "Made by `scripts/int8_isa_check.py`.", ""]
    for path in paths:
        run = json.loads(path.read_text())
        e, cpu = run["env"], run["cpu"]
        lines += [f"## {path.stem}: {cpu['kind']} ({'VNNI' if cpu['vnni'] else 'no VNNI'})", "",
                  f"- Command: `{e['command']}`" + (f" ({run['label']})" if run["label"] else ""),
                  f"- Machine: {e['cpu_model']}; CPUID as seen by the process: "
                  + ", ".join(k for k in ("avx2", "avx512", "avx512_vnni", "avx_vnni",
                                          "amx_int8") if cpu.get(k)),
                  f"- Commit {e['git_commit']}, {e['date']}; fp32 top-1 {run['fp32_top1']:.2%}",
                  "", "| method | int8_mode asked | used | top-1 | drop (points) | guard "
                  "| output error |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for r in run["rows"]:
            flag = " (flagged)" if r["guard_flagged"] else ""
            lines.append(f"| {r['method']} | {r['requested']} | {r['mode']} | {r['top1']:.2%} | "
                         f"{r['drop_points']:.1f} | {r['guard']['top1_agreement']:.0%}{flag} | "
                         f"{r['guard']['relative_error']:.2%} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
