"""The accuracy guard every int8 method runs before it returns: the new variant, run by the
runtime it is meant for (so the CPU's real int8 kernels), against its parent on a few
calibration batches. A collapse is an error (or a loud warning) naming the likely cause, never a
silent result: on an AVX2-only CPU, full-range U8S8 int8 once cost 30 points without a word.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from optbench.config import Config, check_choice, check_positive
from optbench.errors import ConfigError, OptbenchError
from optbench.isa import Int8Mode, cpu_features


class Int8CollapseError(OptbenchError, RuntimeError):
    """An int8 variant disagrees with its parent far beyond quantization noise."""


@dataclasses.dataclass(frozen=True)
class Int8Guard(Config):
    action: str = "error"             # error | warn | off
    batches: int = 2                  # calibration batches compared
    batch_size: int = 32
    min_agreement: float = 0.75       # top-1 agreement with the parent below this: collapse
    max_relative_error: float = 0.5   # ||int8 - parent|| / ||parent|| above this: collapse

    def __post_init__(self):
        check_choice("Int8Guard", "action", self.action, ("error", "warn", "off"))
        check_positive("Int8Guard", batches=self.batches, batch_size=self.batch_size,
                       max_relative_error=self.max_relative_error)
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ConfigError(f"Int8Guard.min_agreement must lie in [0, 1], got "
                              f"{self.min_agreement!r}")


def guard_batches(data, guard: Int8Guard) -> list[torch.Tensor]:
    """The first `batches` full batches of `data` (a fixed shape: one compile)."""
    from optbench.data import make_loader

    out = []
    for images, _ in make_loader(data, guard.batch_size):
        if len(images) == guard.batch_size or not out:
            out.append(images)
        if len(out) >= guard.batches:
            break
    return out


def agreement_stats(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Top-1 agreement, max |diff| and relative L2 error of two logit arrays; whether the
    reference gave the same logits for every input (to float rounding), and whether it was
    undecided: its median top-1 softmax probability below twice the uniform one (1/classes),
    as a barely trained classifier's is."""
    ref = reference.astype(np.float64)
    diff = candidate.astype(np.float64) - ref
    norm = float(np.linalg.norm(ref))
    spread = float(np.ptp(reference, axis=0).max()) if len(reference) > 1 else np.inf
    classes = ref.shape[1] if ref.ndim == 2 else 0
    top1_prob = 1.0
    if classes > 1 and len(ref):
        shifted = np.exp(ref - ref.max(1, keepdims=True))
        top1_prob = float(np.median(1.0 / shifted.sum(1)))   # the top logit's shifted exp is 1
    return {"examples": int(len(reference)),
            "parent_constant": bool(spread <= 1e-6 * float(np.abs(reference).max(initial=0.0))),
            "parent_top1_prob": top1_prob,
            "parent_undecided": bool(classes > 1 and top1_prob < 2.0 / classes),
            "top1_agreement": float(np.mean(reference.argmax(1) == candidate.argmax(1))),
            "max_abs_diff": float(np.abs(diff).max()) if diff.size else 0.0,
            "relative_error": float(np.linalg.norm(diff) / norm) if norm else 0.0}


def check_int8(parent, child, data, guard: Int8Guard, hints: tuple[str, ...] = ()) -> dict | None:
    """Run parent and child on a few batches; record the figures in child.info["int8_guard"];
    raise Int8CollapseError (or warn) when they disagree beyond the guard's bounds."""
    if guard.action == "off":
        return None
    from optbench.runtime import get_runtime
    from optbench.runtime.base import predict

    batches = guard_batches(data, guard)
    outputs = []
    for variant in (parent, child):
        runtime = get_runtime(variant.runtimes[0])
        session = runtime.load(variant.artifact(runtime.accepts), example=batches[0])
        with torch.inference_mode():
            outputs.append(np.concatenate([predict(session, b) for b in batches]))
    stats = {**agreement_stats(*outputs), "runtime": child.runtimes[0]}
    child.info["int8_guard"] = stats
    if stats["parent_constant"] or stats["parent_undecided"]:
        # a parent with one output for every input: 64 examples are one sample, its top-1 a
        # tie, and its logits (a bias vector) small, so relative errors are large for nothing
        # (the --quick flagship's 4-step pruned student: top logits 0.0617 and 0.0610; ONNX
        # Runtime's int8 of it on an AVX2 EPYC picked the other one, 0% agreement, and its QAT
        # moved the bias by a relative 0.56: a CI that failed on some runs)
        # a parent that barely prefers any class (the --quick flagship's 8-step pruned student
        # once its BatchNorm statistics were re-estimated: median top-1 probability 0.14, top
        # logits 0.10 apart, |logits| 0.19 on average): PT2E's int8 of it moved its logits by
        # 0.45 at most, a relative 0.52, and flipped 42% of its near-ties
        why = (f"gave the same logits for all {stats['examples']} calibration inputs (untrained "
               "or dead, e.g. too few training steps), so neither top-1 agreement (one tie that "
               "int8 rounding may break either way) nor the relative error means anything"
               if stats["parent_constant"] else
               f"barely prefers any class on the {stats['examples']} calibration inputs (median "
               f"top-1 probability {stats['parent_top1_prob']:.2f}, under twice the uniform "
               "one: untrained, e.g. too few training steps), so top-1 agreement counts broken "
               "near-ties and the relative error of near-zero logits is inflated")
        message = (f"the int8 guard cannot judge {child.name!r}: its parent {parent.name!r} "
                   f"{why}. Train the parent longer before quantizing it.")
        warnings.warn(message, stacklevel=3)
        child.info.setdefault("warnings", []).append(message)
        return stats
    problems = _problems(stats, guard)
    if problems:
        # the child's name is still the method's here (a pipeline renames it after the
        # handler returns): the parent says which step this is
        message = collapse_message(f"{child.name}, made from {parent.name}", stats, problems,
                                   hints)
        if guard.action == "error":
            raise Int8CollapseError(message)
        warnings.warn(message, stacklevel=3)
        child.info.setdefault("warnings", []).append(message)
    return stats


def _problems(stats: dict, guard: Int8Guard) -> list[str]:
    out = []
    if stats["top1_agreement"] < guard.min_agreement:
        out.append(f"top-1 agreement {stats['top1_agreement']:.1%} < {guard.min_agreement:.0%}")
    if stats["relative_error"] > guard.max_relative_error:
        out.append(f"relative error {stats['relative_error']:.2f} > "
                   f"{guard.max_relative_error:.2f}")
    return out


def collapse_message(name: str, stats: dict, problems: list[str], hints: tuple[str, ...]) -> str:
    cpu = cpu_features()
    return (f"int8 variant {name!r} collapsed against its parent on {stats['examples']} "
            f"calibration examples run by {stats['runtime']} on this {cpu.kind} CPU: "
            f"{'; '.join(problems)} (max |diff| {stats['max_abs_diff']:.3g}). Likely causes: "
            + " ".join(hints or ("calibration data too small or unlike the inputs (more "
                                 "calibration_batches, calibrate_method = 'percentile');",))
            + " An untrained model's near-tied logits also disagree; loosen the guard with "
              "guard = { min_agreement = ..., max_relative_error = ... }, or "
              "guard = { action = 'warn' } to keep the variant and see it in the report.")


def mode_hints(mode: Int8Mode, *extra: str) -> tuple[str, ...]:
    """Likely causes of an int8 collapse, for the guard's message."""
    hints = list(extra)
    if mode.needs_vnni and cpu_features().u8s8_saturates:
        hints.append(f"int8_mode {mode.mode!r} uses full-range u8s8, which saturates on this "
                     f"{cpu_features().kind} CPU without VNNI: use int8_mode = 'auto';")
    hints.append("calibration data too small or unlike the inputs (more calibration_batches, "
                 "calibrate_method = 'percentile' where the method has it);")
    return tuple(hints)
