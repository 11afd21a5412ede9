"""Rough cost of one training step (batch 128, 32x32 Fashion-MNIST-shaped input, 2 threads) for
the flagship's candidate networks, to choose a teacher stem before spending hours on it:
`LD_PRELOAD=$(bash scripts/tcmalloc.sh) PYTHONPATH=. .venv/bin/python scripts/train_cost.py`.
Four steps each on random data (the first is warm-up); not a benchmark: run it alone."""

import time

import torch
from torch import nn

from optbench.models import build_model

torch.set_num_threads(2)
CASES = {"resnet50, stock stem": ("resnet50", "imagenet"),
         "resnet50, small-pool stem": ("resnet50", "small-pool"),
         "mobilenet_v2, stock stem": ("mobilenet_v2", "imagenet")}
x, y = torch.randn(128, 1, 32, 32), torch.randint(0, 10, (128,))
for label, (arch, stem) in CASES.items():
    model = build_model(arch, 10, 1, stem=stem).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    steps = []
    for _ in range(4):
        t = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps.append(time.perf_counter() - t)
    model.eval()
    with torch.no_grad():
        t = time.perf_counter()
        model(x)
        model(x)
        forward = (time.perf_counter() - t) / 2
    print(f"{label}: {min(steps[1:]):.2f} s/step, {min(steps[1:]) * 421 / 60:.1f} min per "
          f"54k-image epoch; forward {forward:.3f} s", flush=True)
