"""Reduced precision without calibration: bf16 (CPU with AVX512-BF16/AMX) or fp16 (CUDA) via
autocast; run it through `torch-compile` for speed. Output agreement is reported by bench."""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

import torch
from torch import nn

from optbench.config import Config, check_choice
from optbench.transforms.base import Context, Variant, register, require_module


@dataclasses.dataclass(frozen=True)
class ReducedPrecisionConfig(Config):
    method: ClassVar[str] = "reduced-precision"
    dtype: str = "bfloat16"     # bfloat16 (CPU or CUDA) | float16 (CUDA)

    def __post_init__(self):
        check_choice("ReducedPrecisionConfig", "dtype", self.dtype, ("bfloat16", "float16"))


class Autocast(nn.Module):
    """Runs `inner` under autocast at `dtype` and returns float32 logits."""

    def __init__(self, inner: nn.Module, dtype: str):
        super().__init__()
        self.inner, self.dtype = inner, dtype

    def forward(self, x):
        with torch.autocast(device_type=x.device.type, dtype=getattr(torch, self.dtype)):
            return self.inner(x).float()


@register(ReducedPrecisionConfig)
def reduce_precision(parent: Variant, config: ReducedPrecisionConfig, ctx: Context) -> Variant:
    model = Autocast(copy.deepcopy(require_module(parent, config.method)).eval(), config.dtype)
    info = {"dtype": config.dtype}
    if config.dtype == "float16" and ctx.device == "cpu":
        info["warnings"] = ["float16 on CPU has few fast kernels; use bfloat16 on CPU"]
    return parent.derive(config.dtype, model=model, runtimes=("torch-compile", "torch-eager"),
                         info=info)
