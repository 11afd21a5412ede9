"""Training as a pipeline step: train (or fine-tune) a copy of the input with the shared loop."""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

from optbench.config import Config
from optbench.train import TrainConfig, train
from optbench.transforms.base import Context, Variant, register, require_module


@dataclasses.dataclass(frozen=True)
class TrainStepConfig(Config):
    method: ClassVar[str] = "train"
    checkpoint_suffix: ClassVar[str] = "train.ckpt"   # OUT/work/STEP-train.ckpt
    training_field: ClassVar[str] = "train"
    train: TrainConfig = TrainConfig()


@register(TrainStepConfig)
def train_step(parent: Variant, config: TrainStepConfig, ctx: Context) -> Variant:
    model = copy.deepcopy(require_module(parent, config.method))
    result = train(model, ctx.require("train_data", config.method), config.train,
                   val_data=ctx.val_data, checkpoint=ctx.file(parent, config.checkpoint_suffix),
                   device=ctx.device, progress=ctx.progress)
    return parent.derive("train", model=model.eval(), info={"history": result.history})
