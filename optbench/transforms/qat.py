"""Quantization-aware training with PT2E: fake-quant inserted by X86InductorQuantizer(is_qat),
fine-tuned with the shared loop, converted to the same int8 graph as PTQ."""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

from torch import nn

from optbench.config import Config
from optbench.train import TrainConfig, train
from optbench.transforms.base import Context, Variant, register, require_module
from optbench.transforms.quantize import (
    drop_unused_attributes,
    export_for_quantization,
    pt2e_op_counts,
    untie_shared_modules,
    x86_quantizer,
)


@dataclasses.dataclass(frozen=True)
class QATConfig(Config):
    method: ClassVar[str] = "qat-pt2e"
    train: TrainConfig = TrainConfig(epochs=1, lr=0.001, optimizer="sgd", momentum=0.9,
                                     weight_decay=0.0)


class _ExportedTrainable(nn.Module):
    """Lets the shared loop call .train()/.eval() on an exported graph (which forbids them)."""

    def __init__(self, gm):
        super().__init__()
        self.gm = gm

    def train(self, mode: bool = True):
        from torchao.quantization.pt2e import (
            move_exported_model_to_eval,
            move_exported_model_to_train,
        )

        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self.gm)
        self.training = mode
        return self

    def forward(self, x):
        return self.gm(x)


@register(QATConfig)
def qat(parent: Variant, config: QATConfig, ctx: Context) -> Variant:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    data = ctx.require("train_data", config.method)
    model = untie_shared_modules(copy.deepcopy(require_module(parent, config.method)).train())
    prepared = prepare_qat_pt2e(export_for_quantization(model, ctx.example(2)),
                                x86_quantizer(is_qat=True))
    wrapper = _ExportedTrainable(prepared)
    history = train(wrapper, data, config.train, device=ctx.device, progress=ctx.progress,
                    checkpoint=ctx.file(parent, "qat.ckpt")).history
    wrapper.train(False)
    converted = drop_unused_attributes(convert_pt2e(wrapper.gm))
    return parent.derive("qat-pt2e", model=converted, runtimes=("torch-compile",),
                         info={"int8": True, "ops": pt2e_op_counts(converted), "history": history})
