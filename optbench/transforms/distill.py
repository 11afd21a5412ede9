"""Knowledge distillation (Hinton et al.): the student learns from a frozen teacher's softened
logits plus the true labels. Uses the shared training loop, so it checkpoints and resumes."""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from optbench.config import Config, check_positive
from optbench.data import make_loader
from optbench.errors import ConfigError
from optbench.train import TrainConfig, train
from optbench.transforms.base import Context, Variant, register, require_module


@dataclasses.dataclass(frozen=True)
class DistillConfig(Config):
    method: ClassVar[str] = "distill"
    temperature: float = 4.0
    alpha: float = 0.9                # weight of the soft (teacher) term; 1 = logits only
    cache_teacher_logits: bool = True  # run the teacher once over the data instead of per step
    teacher: str = ""                 # in recipes: the step or model that teaches
    train: TrainConfig = TrainConfig()

    def __post_init__(self):
        check_positive("DistillConfig", temperature=self.temperature)
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"DistillConfig.alpha must lie in [0, 1], got {self.alpha}")


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float, alpha: float) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, 1),
                    reduction="batchmean", log_target=True) * t * t
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1.0 - alpha) * hard


class _Indexed(Dataset):
    """Yields (image, [label, index]) so cached teacher logits can be looked up per example."""

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        image, label = self.data[i]
        return image, torch.tensor([int(label), i])


@torch.no_grad()
def teacher_logits(teacher: nn.Module, data, batch_size: int = 256) -> torch.Tensor:
    teacher.eval()
    return torch.cat([teacher(images) for images, _ in make_loader(data, batch_size)])


def distill(student: nn.Module, teacher: nn.Module, data, config: DistillConfig,
            checkpoint=None, device: str = "cpu", progress: bool = True):
    """Train `student` in place from `teacher` (frozen, left untouched)."""
    teacher = copy.deepcopy(teacher).eval().to(device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    cache: list[torch.Tensor] = []  # filled on the first step: a finished, resumed run skips it

    def loss_fn(model, images, target):
        labels, index = target[:, 0], target[:, 1]
        if config.cache_teacher_logits:
            if not cache:
                cache.append(teacher_logits(teacher, data).to(device))
            soft_targets = cache[0][index]
        else:
            with torch.no_grad():
                soft_targets = teacher(images)
        return kd_loss(model(images), soft_targets, labels, config.temperature, config.alpha)

    return train(student, _Indexed(data), config.train, loss_fn=loss_fn, checkpoint=checkpoint,
                 device=device, progress=progress)


@register(DistillConfig)
def distill_method(parent: Variant, config: DistillConfig, ctx: Context) -> Variant:
    teacher = ctx.require("teacher", config.method)
    student = copy.deepcopy(require_module(parent, config.method))
    result = distill(student, teacher, ctx.require("train_data", config.method), config,
                     checkpoint=ctx.file(parent, "kd.ckpt"),
                     device=ctx.device, progress=ctx.progress)
    return parent.derive("distill", model=student.eval(), info={"history": result.history})
