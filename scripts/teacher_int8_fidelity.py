"""How close an int8 teacher's soft targets are to its fp32 module's, before a recipe distils
from the int8 file (`teacher_runtime = "onnxruntime"`, results/teacher_forward).

    PYTHONPATH=. .venv/bin/python scripts/teacher_int8_fidelity.py RECIPE OUT \
        [--teacher teacher] [--temperature 4]

Takes the recipe's trained teacher step from OUT/work (its finished checkpoint; it refuses an
unfinished one rather than train), quantizes it as a `ptq-ort-static` step with default
settings would (calibrated on the recipe's calibration split, into a folder of its own), and
scores both on the validation split:
- top-1 agreement of the int8 file with the fp32 module, and each one's validation top-1;
- KL(fp32_T || int8_T): the KL divergence of their softened outputs at the temperature, what
  the distillation loss would see change;
- for scale, KL(fp32_T(x) || fp32_T(flip x)): how much the fp32 teacher's own soft targets move
  between two views of an image that the training's augmentation shows the student in turn.
Accuracy only: it can run beside a training.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from optbench.data import make_loader
from optbench.env import device_name
from optbench.pipeline import Recipe
from optbench.pipeline.run import finished_steps
from optbench.transforms import config_from_dict, optimize
from optbench.transforms.distill import frozen_teacher


def kl(p_logits: torch.Tensor, q_logits: torch.Tensor, t: float) -> torch.Tensor:
    """Per-example KL(p_T || q_T)."""
    log_p, log_q = F.log_softmax(p_logits / t, 1), F.log_softmax(q_logits / t, 1)
    return (log_p.exp() * (log_p - log_q)).sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--teacher", default="teacher")
    parser.add_argument("--temperature", type=float, default=4.0)
    args = parser.parse_args()
    _, ctx, variants = finished_steps(Recipe.from_toml(args.recipe), args.out, args.teacher)
    teacher = variants[args.teacher]
    with tempfile.TemporaryDirectory() as folder:
        int8 = optimize(teacher, config_from_dict({"method": "ptq-ort-static"}),
                        ctx.for_step("fidelity", workdir=Path(folder)), name="teacher-int8")
        fp32_forward = frozen_teacher(teacher.model, "torch-eager")
        int8_forward = frozen_teacher(int8, "onnxruntime")
        agree, right, to_int8, to_flip, n = 0, [0, 0], [], [], 0
        for images, labels in make_loader(ctx.val_data, 256):
            a, b = fp32_forward(images), int8_forward(images)
            flipped = fp32_forward(torch.flip(images, dims=[-1]))
            agree += int((a.argmax(1) == b.argmax(1)).sum())
            right[0] += int((a.argmax(1) == labels).sum())
            right[1] += int((b.argmax(1) == labels).sum())
            to_int8.append(kl(a, b, args.temperature))
            to_flip.append(kl(a, flipped, args.temperature))
            n += len(images)
    to_int8, to_flip = torch.cat(to_int8), torch.cat(to_flip)
    print(f"{device_name()}; teacher {args.teacher!r} of {args.recipe} in {args.out}; "
          f"{n} validation images, T = {args.temperature:g}")
    print(f"int8 mode: {int8.info['int8_mode']}")
    print(f"top-1 agreement int8 vs fp32: {100 * agree / n:.2f}%")
    print(f"validation top-1: fp32 {100 * right[0] / n:.2f}%, int8 {100 * right[1] / n:.2f}%")
    for label, values in (("KL(fp32 || int8)", to_int8), ("KL(fp32 || fp32 on the flip)",
                                                          to_flip)):
        print(f"{label}: mean {values.mean():.3e}, median {values.median():.3e}, "
              f"99th percentile {values.quantile(0.99):.3e}")


if __name__ == "__main__":
    main()
