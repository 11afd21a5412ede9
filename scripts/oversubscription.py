"""How much work two processes with 2 OpenMP threads each get done on a 2-core machine, with
libgomp's default spin-waiting and with OMP_WAIT_POLICY=PASSIVE, against one process alone (the
reason `make test` sets PASSIVE for its 2 workers, and the reason nothing is timed while
training runs).

    .venv/bin/python scripts/oversubscription.py [--seconds 20]

Each process runs MobileNetV2 at batch 32, 64x64, and prints forwards per second."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def work(seconds: float) -> float:
    import torch
    import torchvision

    torch.set_num_threads(2)
    model = torchvision.models.mobilenet_v2(num_classes=10).eval()
    x = torch.randn(32, 3, 64, 64)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            model(x)
            n += 1
    return n / (time.perf_counter() - start)


def run(copies: int, policy: str | None, seconds: float) -> list[float]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(seconds)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    return [float(p.communicate()[0]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--worker", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(work(args.worker))
        return
    for policy in (None, "PASSIVE"):
        for copies in (1, 2):
            rates = run(copies, policy, args.seconds)
            print(f"OMP_WAIT_POLICY={policy or '(default)'} processes={copies}: forwards/s "
                  f"{' + '.join(f'{r:.2f}' for r in rates)} = {sum(rates):.2f}", flush=True)


if __name__ == "__main__":
    main()
