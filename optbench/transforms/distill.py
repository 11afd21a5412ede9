"""Knowledge distillation (Hinton et al.): the student learns from a frozen teacher's softened
logits plus the true labels. Uses the shared training loop, so it checkpoints and resumes.

With augmentation on (train.augment), the teacher scores each augmented batch the student sees
(consistent teaching, Beyer et al. 2022); its logits are cached once over the data only when the
student sees the plain images. The same teacher-guided loss serves the fine-tuning after
structured pruning and QAT (`teacher = "..."` on those steps, `kd = {temperature, alpha}`).

The teacher's forward runs on `teacher_runtime`: "torch-eager", or "torch-compile" (Inductor with
freezing; measured 1.58x [1.35, 1.59] faster than eager for the flagship's ResNet50 teacher at
batch 128 on 2 AVX2 cores, max |logit diff| 2e-6: results/teacher_forward). One compiled
teacher serves every step of a process that distills from the same teacher, so it compiles once.
`teacher_precision = "bf16"` runs that forward under bf16 autocast (float32 logits out): worth it
only on CPUs with native bf16 (AMX, AVX512-BF16; "auto" picks it there and fp32 elsewhere);
results/teacher_forward has what it buys.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from optbench.config import Config, check_choice, check_positive
from optbench.data import make_loader
from optbench.errors import ConfigError
from optbench.isa import PRECISIONS, resolve_precision
from optbench.runtime import get_runtime
from optbench.runtime.torch import run_compiled
from optbench.train import LossFn, TrainConfig, train
from optbench.transforms.base import Context, Variant, register, require_module
from optbench.transforms.precision import Autocast

TEACHER_RUNTIMES = ("torch-eager", "torch-compile")


def _check_kd(owner: str, temperature: float, alpha: float, teacher_runtime: str,
              teacher_precision: str) -> None:
    check_positive(owner, temperature=temperature)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"{owner}.alpha must lie in [0, 1], got {alpha}")
    check_choice(owner, "teacher_runtime", teacher_runtime, TEACHER_RUNTIMES)
    check_choice(owner, "teacher_precision", teacher_precision, PRECISIONS)


@dataclasses.dataclass(frozen=True)
class KDLoss(Config):
    """The distillation loss of a step that trains with a teacher (pruning's fine-tuning, QAT)."""
    temperature: float = 4.0
    alpha: float = 0.9                # weight of the soft (teacher) term; 1 = logits only
    teacher_runtime: str = "torch-eager"   # or "torch-compile": the teacher's forward compiled
    teacher_precision: str = "fp32"        # or "bf16": the teacher's forward under bf16 autocast;
    #                                        "auto": bf16 where the hardware has it

    def __post_init__(self):
        _check_kd("KDLoss", self.temperature, self.alpha, self.teacher_runtime,
                  self.teacher_precision)


@dataclasses.dataclass(frozen=True)
class DistillConfig(Config):
    method: ClassVar[str] = "distill"
    temperature: float = 4.0
    alpha: float = 0.9                # weight of the soft (teacher) term; 1 = logits only
    # run the teacher once over the plain data instead of per step; ignored (the teacher scores
    # every batch) when train.augment is on, since cached logits would be of other views
    cache_teacher_logits: bool = True
    teacher: str = ""                 # in recipes: the step or model that teaches
    teacher_runtime: str = "torch-eager"   # or "torch-compile": the teacher's forward compiled
    teacher_precision: str = "fp32"        # or "bf16", or "auto" (as KDLoss)
    train: TrainConfig = TrainConfig()

    def __post_init__(self):
        _check_kd("DistillConfig", self.temperature, self.alpha, self.teacher_runtime,
                  self.teacher_precision)


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


def teacher_logits(teacher, data, batch_size: int = 256) -> torch.Tensor:
    """The teacher's logits over `data` in order; `teacher` is a module or a frozen_teacher."""
    forward = teacher if isinstance(teacher, _FrozenTeacher) else frozen_teacher(teacher)
    return torch.cat([forward(images) for images, _ in make_loader(data, batch_size)])


class _FrozenTeacher:
    """images -> the teacher's logits (eval mode, no autograd), on a runtime's session made on
    the first batch. The logits are ordinary tensors, usable as targets in a graph with grad."""

    def __init__(self, teacher: nn.Module, runtime: str, device: str, precision: str = "fp32"):
        # weak: the process-wide table below is keyed weakly on the teacher
        self.teacher, self.runtime, self.device = weakref.ref(teacher), runtime, device
        self.precision = precision
        self.session = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device)
        if self.session is None:   # a copy in eval mode; torch-compile compiles it here
            module = self.teacher()
            if self.precision == "bf16":   # float32 logits out, bf16 inside
                module = Autocast(module, "bfloat16")
            self.session = get_runtime(self.runtime).load(module, example=images,
                                                          device=self.device)
        return run_compiled(self.session, images).clone()   # clone: not an inference tensor


# one frozen teacher per (teacher module, runtime, device, precision run) in a process: every
# step that distills from it shares its compile. Stored with the teacher's weights' version
# counters, so a teacher changed in place since (trained on, loaded into) gets a new frozen copy,
# not a stale one
_TEACHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_version(module: nn.Module) -> tuple[int, ...]:
    return tuple(t._version for t in (*module.parameters(), *module.buffers()))


def frozen_teacher(teacher: nn.Module, runtime: str = "torch-eager", device: str = "cpu",
                   precision: str = "fp32") -> _FrozenTeacher:
    per_module = _TEACHERS.setdefault(teacher, {})
    version = _weights_version(teacher)
    precision = resolve_precision(precision, device, "teacher_precision")   # "auto": fp32/bf16
    key = (runtime, device, precision)
    cached = per_module.get(key)
    if cached is None or cached[0] != version:
        per_module[key] = (version, _FrozenTeacher(teacher, runtime, device, precision))
    return per_module[key][1]


def teacher_guided_loss(teacher: nn.Module, kd: KDLoss, device: str = "cpu") -> LossFn:
    """A loss for the shared loop: KD against a frozen copy of `teacher` run on each batch (the
    augmented view when augmentation is on)."""
    forward = frozen_teacher(teacher, kd.teacher_runtime, device, kd.teacher_precision)

    def loss_fn(model, images, labels):
        return kd_loss(model(images), forward(images), labels, kd.temperature, kd.alpha)

    return loss_fn


def uses_cached_logits(config: DistillConfig) -> bool:
    return config.cache_teacher_logits and not config.train.augment.active


def distill(student: nn.Module, teacher: nn.Module, data, config: DistillConfig,
            checkpoint=None, device: str = "cpu", progress: bool = True, val_data=None):
    """Train `student` in place from `teacher` (frozen, left untouched)."""
    kd = KDLoss(config.temperature, config.alpha, config.teacher_runtime,
                config.teacher_precision)
    if not uses_cached_logits(config):
        return train(student, data, config.train, loss_fn=teacher_guided_loss(teacher, kd, device),
                     checkpoint=checkpoint, device=device, progress=progress, val_data=val_data)
    teacher = frozen_teacher(teacher, config.teacher_runtime, device, config.teacher_precision)
    cache: list[torch.Tensor] = []  # filled on the first step: a finished, resumed run skips it

    def loss_fn(model, images, target):
        labels, index = target[:, 0], target[:, 1]
        if not cache:
            cache.append(teacher_logits(teacher, data).to(device))
        return kd_loss(model(images), cache[0][index], labels, kd.temperature, kd.alpha)

    return train(student, _Indexed(data), config.train, loss_fn=loss_fn, checkpoint=checkpoint,
                 device=device, progress=progress, val_data=val_data)


@register(DistillConfig)
def distill_method(parent: Variant, config: DistillConfig, ctx: Context) -> Variant:
    teacher = ctx.require("teacher", config.method)
    student = copy.deepcopy(require_module(parent, config.method))
    result = distill(student, teacher, ctx.require("train_data", config.method), config,
                     checkpoint=ctx.file(parent, "kd.ckpt"), device=ctx.device,
                     progress=ctx.progress, val_data=ctx.val_data)
    logits = "cached once" if uses_cached_logits(config) else "per batch (the student's view)"
    return parent.derive("distill", model=student.eval(),
                         info={"history": result.history, "teacher_logits": logits})
