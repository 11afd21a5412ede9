"""What the distilling students pay for their teacher: one frozen ResNet50 (small-pool stem)
forward at batch 128 on 32x32 inputs, 2 threads, eager against the cheaper ways to run it.
    LD_PRELOAD=$(bash scripts/tcmalloc.sh) PYTHONPATH=. \
        .venv/bin/python scripts/teacher_forward_cost.py
Interleaved rounds (every way once per round, order rotated), ratios to eager with paired
block-bootstrap CIs, and each way's largest |logit - eager logit|. The bf16 ways (autocast,
optbench.transforms.precision.Autocast) are fast only on CPUs with native bf16 (AMX,
AVX512-BF16). The ONNX Runtime ways run the teacher exported to ONNX, in fp32 and quantized as
ptq-ort-static does by default (uint8 activations, per-channel weights, the CPU's int8 mode,
classifier kept fp32; the method itself makes it), calibrated on 256 random images: with
random weights its |diff| says little about a trained teacher's. Run it alone."""

import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.fx.experimental.optimization
from torch.utils.data import TensorDataset

from optbench.env import device_name
from optbench.models import build_model
from optbench.runtime import get_runtime
from optbench.stats import paired_ratio_ci
from optbench.transforms import Context, Variant, config_from_dict, optimize
from optbench.transforms.export import DEFAULT_OPSET, fp32_onnx
from optbench.transforms.precision import Autocast

torch.set_num_threads(2)
torch.manual_seed(0)
ROUNDS = 12
teacher = build_model("resnet50", 10, 1, stem="small-pool")
with torch.no_grad():   # non-trivial BN statistics, as a trained teacher has
    teacher.train()
    for _ in range(3):
        teacher(torch.randn(128, 1, 32, 32))
teacher.eval().requires_grad_(False)
x = torch.randn(128, 1, 32, 32)


def eager():
    with torch.no_grad():
        return teacher(x)


def inference_mode():
    with torch.inference_mode():
        return teacher(x)


folded = torch.fx.experimental.optimization.fuse(copy.deepcopy(teacher))


def bn_folded():
    with torch.inference_mode():
        return folded(x)


last = copy.deepcopy(teacher).to(memory_format=torch.channels_last)
x_last = x.contiguous(memory_format=torch.channels_last)


def channels_last():
    with torch.inference_mode():
        return last(x_last)


torch._inductor.config.freezing = True
compiled_model = torch.compile(copy.deepcopy(teacher))


def compiled():
    with torch.no_grad():
        return compiled_model(x)


bf16_last = Autocast(copy.deepcopy(teacher), "bfloat16").to(memory_format=torch.channels_last)


def bf16_channels_last():
    with torch.inference_mode():
        return bf16_last(x_last)


compiled_bf16 = torch.compile(Autocast(copy.deepcopy(teacher), "bfloat16"))


def compiled_bf16_forward():
    with torch.no_grad():
        return compiled_bf16(x)


def ort_sessions(folder: Path):
    """ONNX Runtime sessions (2 threads) of the teacher in fp32 and in int8 made by the
    ptq-ort-static method itself (its defaults; the guard only warns: random weights)."""
    images = torch.randn(256, 1, 32, 32)
    calib = TensorDataset(images, torch.zeros(len(images), dtype=torch.long))
    ctx = Context(example_input=x[:2], calib_data=calib, workdir=folder, progress=False)
    int8 = optimize(Variant("teacher", model=teacher), config_from_dict(
        {"method": "ptq-ort-static", "guard": {"action": "warn"}}), ctx, name="teacher-int8")
    fp32 = fp32_onnx(ctx, Variant("teacher", model=teacher), DEFAULT_OPSET)
    ort = get_runtime("onnxruntime")
    return ort.load(fp32, threads=2), ort.load(int8.onnx_path, threads=2)


ort_fp32, ort_int8 = ort_sessions(Path(tempfile.mkdtemp()))


def onnxruntime_fp32():   # what a distilling step would pay: torch in, torch out
    return torch.from_numpy(ort_fp32.to_numpy(ort_fp32.run(ort_fp32.prepare(x))))


def onnxruntime_int8():
    return torch.from_numpy(ort_int8.to_numpy(ort_int8.run(ort_int8.prepare(x))))


WAYS = {"eager (no_grad)": eager, "inference_mode": inference_mode, "bn folded": bn_folded,
        "channels_last": channels_last, "torch.compile (freezing)": compiled,
        "bf16 autocast, channels_last": bf16_channels_last,
        "bf16 autocast, torch.compile (freezing)": compiled_bf16_forward,
        "onnxruntime fp32": onnxruntime_fp32, "onnxruntime int8 (ptq-ort-static)": onnxruntime_int8}
print(device_name(), flush=True)
reference = eager()
t = time.perf_counter()
for name, fn in WAYS.items():
    diff = (fn().float() - reference).abs().max().item()
    print(f"{name}: first call {time.perf_counter() - t:.1f} s, max |diff| {diff:.2e} "
          f"(logits up to {reference.abs().max().item():.1f})", flush=True)
    t = time.perf_counter()
times = {name: [] for name in WAYS}
names = list(WAYS)
for r in range(ROUNDS):
    for name in names[r % len(names):] + names[:r % len(names)]:
        t = time.perf_counter()
        WAYS[name]()
        times[name].append(time.perf_counter() - t)
base = times["eager (no_grad)"]
for name in names:
    ci = paired_ratio_ci(base, times[name])
    print(f"{name}: median {sorted(times[name])[ROUNDS // 2]:.3f} s; eager/this "
          f"{ci.estimate:.2f}x [{ci.low:.2f}, {ci.high:.2f}]", flush=True)
