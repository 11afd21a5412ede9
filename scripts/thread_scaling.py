"""Training throughput on this machine: one process with 2 threads against two processes with
1 thread each side by side, for the flagship's training steps. Tells whether a 2-core machine
trains independent steps (the seeds of one step) faster one after the other or two at a time
(`optbench run --jobs 2`).

    LD_PRELOAD=$(bash scripts/tcmalloc.sh) PYTHONPATH=. .venv/bin/python \
        scripts/thread_scaling.py [--steps mobilenet_v2 kd resnet50] [--rounds 3] [--seconds 40]

Steps: `mobilenet_v2` (a scratch student's step), `kd` (a distilled student's step: the same
plus the ResNet50 teacher's forward, compiled as the recipe runs it), `resnet50` (the
small-pool teacher's step). Each process trains on random 1x32x32 batches of 128 (SGD, crop +
flip as in the recipe) and counts steps per second after 3 untimed ones (the teacher's compile
among them). Each round runs both settings, in alternating order; the ratio of one round is
(steps/s of the two 1-thread processes together) / (steps/s of the 2-thread one), and the CI is
a t-interval over rounds on the log ratios. Run it alone: anything else on the CPU makes the
numbers meaningless."""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time


def work(kind: str, threads: int, seconds: float) -> float:
    import torch

    from optbench.augment import AugmentConfig, augment_batch
    from optbench.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if kind == "resnet50":
        model = build_model("resnet50", 10, 1, stem="small-pool")
    else:
        model = build_model("mobilenet_v2", 10, 1)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = torch.nn.CrossEntropyLoss()
    if kind == "kd":
        from optbench.transforms.distill import frozen_teacher, kd_loss

        teacher = build_model("resnet50", 10, 1, stem="small-pool").eval()
        forward = frozen_teacher(teacher, "torch-compile")

        def loss_of(images, labels):
            return kd_loss(model(images), forward(images), labels, 4.0, 0.9)
    else:
        def loss_of(images, labels):
            return criterion(model(images), labels)
    augment = AugmentConfig(crop_padding=4, hflip=True)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 1, 32, 32), torch.randint(0, 10, (128,))

    def step():
        loss = loss_of(augment_batch(x, augment, generator), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - start)


def run(kind: str, threads: int, copies: int, seconds: float) -> float:
    """Steps per second of `copies` processes started together, summed."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", kind, "--threads",
                               str(threads), "--seconds", str(seconds)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    return sum(float(p.communicate()[0].split()[-1]) for p in procs)


def main() -> None:
    from optbench.stats import paired_t

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", nargs="+", default=["mobilenet_v2", "kd", "resnet50"],
                        choices=["mobilenet_v2", "kd", "resnet50"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(work(args.worker, args.threads, args.seconds))
        return
    for kind in args.steps:
        logs = []
        for r in range(args.rounds):
            settings = [(2, 1), (1, 2)] if r % 2 == 0 else [(1, 2), (2, 1)]
            rate = {s: run(kind, *s, args.seconds) for s in settings}
            logs.append(math.log(rate[(1, 2)] / rate[(2, 1)]))
            print(f"{kind} round {r + 1}: 1 process x 2 threads {rate[(2, 1)]:.3f} steps/s; "
                  f"2 processes x 1 thread {rate[(1, 2)]:.3f} steps/s together", flush=True)
        mean, ci = sum(logs) / len(logs), ""
        if len(logs) > 1:
            interval = paired_t(logs).ci
            ci = f" [{math.exp(interval.low):.2f}, {math.exp(interval.high):.2f}]"
        print(f"{kind}: two 1-thread processes do {math.exp(mean):.2f}x{ci} the work of one "
              f"2-thread process ({len(logs)} rounds, 95% t-interval)", flush=True)


if __name__ == "__main__":
    main()
