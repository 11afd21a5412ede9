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

"onnxruntime" runs a teacher step's ONNX file instead: an export-onnx step's fp32 file, or a
ptq-ort-static step's int8 one (4.85x [4.27, 5.22] eager's speed at batch 128 on 2 AVX512-VNNI
cores without bf16, where the compiled fp32 teacher is 1.08x: results/teacher_forward). An int8
teacher's logits are the quantized model's, not the fp32 teacher's: its soft targets differ by
the quantization error, which the report's training table names ("on onnxruntime") and
which the teacher's own int8 variant, measured beside it, shows. The file runs as it is stored
(`teacher_precision` "fp32" or "auto"), with the training's thread count.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from optbench.config import Config, check_choice, check_positive
from optbench.data import make_loader
from optbench.errors import ConfigError, MissingInputError
from optbench.isa import PRECISIONS, resolve_precision
from optbench.runtime import get_runtime
from optbench.runtime.torch import run_compiled
from optbench.train import LossFn, TrainConfig, train
from optbench.transforms.base import Context, Variant, register, require_module
from optbench.transforms.precision import Autocast

TEACHER_RUNTIMES = ("torch-eager", "torch-compile", "onnxruntime")


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
    teacher_runtime: str = "torch-eager"   # or "torch-compile": the teacher's forward compiled;
    #                                        "onnxruntime": the teacher step's ONNX file (int8 too)
    teacher_precision: str = "fp32"        # or "bf16": the teacher's forward under bf16 autocast;
    #                                        "auto": bf16 where the hardware has it (torch only)

    def __post_init__(self):
        _check_kd("KDLoss", self.temperature, self.alpha, self.teacher_runtime,
                  self.teacher_precision)


@dataclasses.dataclass(frozen=True)
class DistillConfig(Config):
    method: ClassVar[str] = "distill"
    checkpoint_suffix: ClassVar[str] = "kd.ckpt"   # OUT/work/STEP-kd.ckpt
    training_field: ClassVar[str] = "train"
    temperature: float = 4.0
    alpha: float = 0.9                # weight of the soft (teacher) term; 1 = logits only
    # run the teacher once over the plain data instead of per step; ignored (the teacher scores
    # every batch) when train.augment is on, since cached logits would be of other views
    cache_teacher_logits: bool = True
    teacher: str = ""                 # in recipes: the step or model that teaches
    teacher_runtime: str = "torch-eager"   # or "torch-compile", or "onnxruntime" (as KDLoss)
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
    """The teacher's logits over `data` in order; `teacher` is a module, a variant or a
    frozen_teacher."""
    forward = teacher if isinstance(teacher, _FrozenTeacher) else frozen_teacher(teacher)
    return torch.cat([forward(images) for images, _ in make_loader(data, batch_size)])


class _FrozenTeacher:
    """images -> the teacher's logits (eval mode, no autograd), on a runtime's session made on
    the first batch. The logits are ordinary tensors, usable as targets in a graph with grad.
    `source` gives what the runtime loads: the module (held weakly: the process-wide table
    below is keyed weakly on it) or an ONNX file's path."""

    def __init__(self, source, runtime: str, device: str, precision: str = "fp32"):
        self.source, self.runtime, self.device = source, runtime, device
        self.precision = precision
        self.session = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device)
        if self.session is None:   # a copy in eval mode; torch-compile compiles it here
            loaded = self.source()
            if self.precision == "bf16":   # float32 logits out, bf16 inside
                loaded = Autocast(loaded, "bfloat16")
            self.session = get_runtime(self.runtime).load(
                loaded, example=images, device=self.device, threads=torch.get_num_threads())
        if self.runtime not in _TORCH_RUNTIMES:   # numpy in and out
            session = self.session
            logits = session.to_numpy(session.run(session.prepare(images)))
            return torch.from_numpy(logits).to(self.device)
        return run_compiled(self.session, images).clone()   # clone: not an inference tensor


_TORCH_RUNTIMES = ("torch-eager", "torch-compile")


# one frozen teacher per (teacher module, runtime, device, precision run) in a process: every
# step that distills from it shares its compile. Stored with the teacher's weights' version
# counters, so a teacher changed in place since (trained on, loaded into) gets a new frozen copy,
# not a stale one
_TEACHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_version(module: nn.Module) -> tuple[int, ...]:
    return tuple(t._version for t in (*module.parameters(), *module.buffers()))


# ONNX teachers: one frozen teacher per (file, its modification time, runtime, device)
_FILE_TEACHERS: dict[tuple, _FrozenTeacher] = {}


def frozen_teacher(teacher: nn.Module | Variant, runtime: str = "torch-eager",
                   device: str = "cpu", precision: str = "fp32") -> _FrozenTeacher:
    """The teacher's forward on `runtime`, shared within the process. `teacher` is a module or
    a variant (a recipe step's), whose artifact for `runtime` is run: its module on the torch
    runtimes, its ONNX file on onnxruntime."""
    check_choice("frozen_teacher", "runtime", runtime, TEACHER_RUNTIMES)
    source = _teacher_artifact(teacher, runtime) if isinstance(teacher, Variant) else teacher
    if not isinstance(source, nn.Module):
        return _file_teacher(Path(source), runtime, device, precision)
    if runtime not in _TORCH_RUNTIMES:
        raise ConfigError(f"teacher_runtime {runtime!r} runs an ONNX file, but the teacher is a "
                          "torch module; name a step that makes one (export-onnx, "
                          "ptq-ort-static) as the teacher, or use torch-eager/torch-compile")
    per_module = _TEACHERS.setdefault(source, {})
    version = _weights_version(source)
    precision = resolve_precision(precision, device, "teacher_precision")   # "auto": fp32/bf16
    key = (runtime, device, precision)
    cached = per_module.get(key)
    if cached is None or cached[0] != version:
        per_module[key] = (version, _FrozenTeacher(weakref.ref(source), runtime, device,
                                                   precision))
    return per_module[key][1]


def _teacher_artifact(teacher: Variant, runtime: str):
    artifact = teacher.artifact_for(runtime)
    if artifact is None:
        raise ConfigError(f"teacher {teacher.name!r} cannot run on teacher_runtime {runtime!r}: "
                          f"it runs on {', '.join(teacher.runtimes)}; pick one of those"
                          + (", or name its export-onnx or ptq-ort-static step as the teacher"
                             if runtime not in _TORCH_RUNTIMES else ""))
    return artifact


def _file_teacher(path: Path, runtime: str, device: str, precision: str) -> _FrozenTeacher:
    if precision == "bf16":
        raise ConfigError(f"teacher_precision 'bf16' needs a torch teacher; the ONNX file {path} "
                          "runs as it is stored: set teacher_precision = 'fp32' (or 'auto')")
    if not path.is_file():
        raise MissingInputError(f"the teacher's ONNX file {path} is missing; re-run the step "
                                "that makes it")
    key = (str(path.resolve()), path.stat().st_mtime_ns, runtime, device)
    if key not in _FILE_TEACHERS:
        _FILE_TEACHERS[key] = _FrozenTeacher(lambda: path, runtime, device)
    return _FILE_TEACHERS[key]


def teacher_guided_loss(teacher: nn.Module | Variant, kd: KDLoss,
                        device: str = "cpu") -> LossFn:
    """A loss for the shared loop: KD against a frozen copy of `teacher` run on each batch (the
    augmented view when augmentation is on)."""
    forward = frozen_teacher(teacher, kd.teacher_runtime, device, kd.teacher_precision)

    def loss_fn(model, images, labels):
        return kd_loss(model(images), forward(images), labels, kd.temperature, kd.alpha)

    return loss_fn


def teacher_runtime(config) -> str | None:
    """The runtime a step's teacher runs on (distill's own setting, or its kd loss's on the
    steps that fine-tune with a teacher); None for a step without one."""
    if not getattr(config, "teacher", ""):
        return None
    kd = getattr(config, "kd", None)
    return kd.teacher_runtime if kd is not None else config.teacher_runtime


def uses_cached_logits(config: DistillConfig) -> bool:
    return config.cache_teacher_logits and not config.train.augment.active


def distill(student: nn.Module, teacher: nn.Module | Variant, data, config: DistillConfig,
            checkpoint=None, device: str = "cpu", progress: bool = True, val_data=None):
    """Train `student` in place from `teacher` (frozen, left untouched): a module, or a
    variant run on config.teacher_runtime."""
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
                     checkpoint=ctx.file(parent, config.checkpoint_suffix), device=ctx.device,
                     progress=ctx.progress, val_data=ctx.val_data)
    logits = "cached once" if uses_cached_logits(config) else "per batch (the student's view)"
    return parent.derive("distill", model=student.eval(),
                         info={"history": result.history, "teacher_logits": logits})
