"""Responsible-compression stage of a pipeline: robust accuracy of every measured variant.

Differentiable fp32 variants are attacked white-box; int8 programs and ONNX files are not
differentiable, so they are scored on adversarial examples crafted on their nearest fp32
ancestor (a transfer attack, labelled as such). Per-class accuracy ("who pays for compression")
comes from the harness itself (BenchResult.quality) and is rendered by the report.
"""

from __future__ import annotations

import dataclasses

import torch

from optbench.config import Config, check_choice
from optbench.errors import ConfigError
from optbench.transforms.base import Variant


@dataclasses.dataclass(frozen=True)
class RobustnessSpec(Config):
    """[robustness] in a recipe."""

    eps: tuple[float, ...] = (0.01, 0.03)   # L-inf radius in pixel units ([0, 1] images)
    attack: str = "pgd"
    steps: int = 10
    limit: int = 1000                       # test images attacked
    batch_size: int = 200

    def __post_init__(self):
        check_choice("RobustnessSpec", "attack", self.attack, ("pgd", "fgsm"))
        if not self.eps or any(e <= 0 or e > 1 for e in self.eps):
            raise ConfigError(f"RobustnessSpec.eps must be radii in (0, 1], got {self.eps}")
        if self.limit <= 0 or self.steps <= 0 or self.batch_size <= 0:
            raise ConfigError("RobustnessSpec.limit, steps and batch_size must be > 0")


def attack_source(variant: Variant, variants: dict[str, Variant]) -> Variant | None:
    """The variant itself when it is a differentiable fp32 module, else its nearest such
    ancestor."""
    for name in reversed(variant.lineage):
        v = variants.get(name)
        if v is not None and v.model is not None and not v.facts.int8:
            return v
    return None


def robustness_stage(variants: dict[str, Variant], measured: list[str],
                     runtime_of: dict[str, str], test_data, spec: RobustnessSpec,
                     threads: int = 0) -> dict:
    from optbench.measure import padded
    from optbench.monitor.robustness import accuracy_on, attack_batches, to_pixels
    from optbench.runtime import get_runtime

    n = min(spec.limit, len(test_data))
    images, labels = test_data.batch(0, n), test_data.labels[:n]
    mean, std = test_data.transform.normalization()   # floats, or per-channel tensors
    pixels = to_pixels(images, mean, std)
    crafted: dict[tuple[str, float], torch.Tensor] = {}
    out = {}
    for name in measured:
        v = variants[name]
        source = attack_source(v, variants)
        if source is None:
            out[name] = {"skipped": "no differentiable fp32 ancestor to craft attacks on"}
            continue
        rt = runtime_of[name]
        # loaded at, and always called with, the attack's batch shape (one torch-compile)
        rows = min(n, spec.batch_size)
        session = get_runtime(rt).load(v.artifact_for(rt), example=images[:max(2, rows)],
                                       threads=threads)

        def run(x, s=session):
            return s.to_numpy(s.run(s.prepare(x)))

        predict = padded(run, rows)

        accuracy = {}
        for eps in (0.0, *spec.eps):
            key = (source.name, eps)
            if key not in crafted:
                crafted[key] = attack_batches(source.model.eval(), pixels, labels, eps,
                                              spec.attack, spec.steps, mean, std,
                                              spec.batch_size)
            accuracy[str(eps)] = accuracy_on(predict, crafted[key], labels, mean, std,
                                             spec.batch_size)
        out[name] = {"mode": "white-box" if source is v else f"transfer from {source.name}",
                     "runtime": rt, "attack": spec.attack, "steps": spec.steps, "n": n,
                     "accuracy": accuracy}
    return out
