"""pytest-benchmark suites: speed lives here, never in tests/.

Run:      make bench            (or: pytest benchmarks --benchmark-autosave)
Compare:  pytest-benchmark compare --group-by=param:model   (saved runs in .benchmarks/)
Choose:   OPTBENCH_BENCH_MODELS=resnet50:224,mobilenet_v2:224 make bench
"""

import os

import torch

torch.set_num_threads(int(os.environ.get("OPTBENCH_BENCH_THREADS", "2")))


def bench_models() -> list[tuple[str, int]]:
    spec = os.environ.get("OPTBENCH_BENCH_MODELS", "resnet18:32,mobilenet_v2:64")
    out = []
    for item in spec.split(","):
        name, _, size = item.partition(":")
        out.append((name.strip(), int(size or 224)))
    return out
