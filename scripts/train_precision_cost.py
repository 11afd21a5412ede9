"""What `TrainConfig.precision = "bf16"` buys per training step on this CPU: the flagship's
networks (ResNet50 small-pool teacher, MobileNetV2 student), batch 128 of 1x32x32 with crop +
flip, SGD, fp32 against bf16 autocast, each in contiguous and channels-last memory.
    LD_PRELOAD=$(bash scripts/tcmalloc.sh) PYTHONPATH=. \
        .venv/bin/python scripts/train_precision_cost.py [--rounds 8] [--threads 2] [--compile]
With --compile, two more ways per network: fp32 and bf16 channels-last with the model behind
torch.compile as `TrainConfig.compile = true` puts it (train.compiled_for_training; the
first, untimed step compiles), each also against its eager way ("eager/this").
Every way trains its own copy of the same initial model on the same batch (the first-step
losses differ by the number format alone, and MobileNetV2's dropout). Interleaved rounds (each
way takes `--steps` steps per round, order rotated); ratios of per-step medians to fp32 with paired
block-bootstrap CIs. The bf16 + channels-last way is what train() does with precision="bf16".
Run it alone: anything else on the CPU makes the numbers meaningless."""

import argparse
import contextlib
import copy
import time

import torch

from optbench.augment import AugmentConfig, augment_batch
from optbench.env import device_name
from optbench.models import build_model
from optbench.stats import paired_ratio_ci
from optbench.train import compiled_for_training

NETWORKS = {"resnet50 (small-pool)": ("resnet50", "small-pool"),
            "mobilenet_v2": ("mobilenet_v2", "")}
WAYS = {"fp32": (False, False), "fp32 channels-last": (False, True),
        "bf16": (True, False), "bf16 channels-last": (True, True)}


COMPILED = {"fp32 channels-last compiled": (False, True, True),
            "bf16 channels-last compiled": (True, True, True)}


def stepper(base: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool, last: bool,
            compiled: bool = False):
    model = copy.deepcopy(base)
    if last:
        model = model.to(memory_format=torch.channels_last)
    forward = compiled_for_training(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)
    augment, generator = AugmentConfig(crop_padding=4, hflip=True), torch.Generator()
    generator.manual_seed(0)

    def step() -> float:
        images = augment_batch(x, augment, generator)
        if last:
            images = images.contiguous(memory_format=torch.channels_last)
        with (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
              else contextlib.nullcontext()):
            loss = torch.nn.functional.cross_entropy(forward(images), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="steps per way per round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true",
                        help="add the torch.compile ways (TrainConfig.compile)")
    args = parser.parse_args()
    ways = {**WAYS, **(COMPILED if args.compile else {})}
    torch.set_num_threads(args.threads)
    print(f"{device_name()}, {args.threads} threads, torch {torch.__version__}", flush=True)
    for label, (arch, stem) in NETWORKS.items():
        torch.manual_seed(0)
        base = build_model(arch, 10, 1, stem=stem).train()
        x, y = torch.randn(128, 1, 32, 32), torch.randint(0, 10, (128,))
        steps = {name: stepper(base, x, y, *how) for name, how in ways.items()}
        first = {name: step() for name, step in steps.items()}   # warm-up, and the loss
        print(f"{label}: first-step loss " + ", ".join(f"{n} {v:.4f}" for n, v in first.items()),
              flush=True)
        times: dict[str, list[float]] = {name: [] for name in ways}
        names = list(ways)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                t = time.perf_counter()
                for _ in range(args.steps):
                    steps[name]()
                times[name].append((time.perf_counter() - t) / args.steps)
        for name in names:
            ci = paired_ratio_ci(times["fp32"], times[name])
            median = sorted(times[name])[args.rounds // 2]
            line = (f"{label}, {name}: median {median:.3f} s/step; fp32/this "
                    f"{ci.estimate:.2f}x [{ci.low:.2f}, {ci.high:.2f}]")
            if name.endswith(" compiled"):
                eager = paired_ratio_ci(times[name.removesuffix(" compiled")], times[name])
                line += f"; eager/this {eager.estimate:.2f}x [{eager.low:.2f}, {eager.high:.2f}]"
            print(line, flush=True)


if __name__ == "__main__":
    main()
