"""A small, seeded training/evaluation loop shared by training, fine-tuning, distillation and QAT.

Checkpoints after every epoch, and inside an epoch every `save_every_s` seconds (atomically);
calling train() again with the same checkpoint path resumes where the last save left off (the
data order, augmentation draws and random state included) and gives the same result as an
uninterrupted run. A long epoch killed half-way loses minutes, not the epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from optbench.augment import AugmentConfig, augment_batch
from optbench.config import Config, check_choice, check_positive
from optbench.data import make_loader
from optbench.env import device_name
from optbench.errors import ConfigError
from optbench.io import atomic_torch_save, safe_torch_load
from optbench.isa import PRECISIONS, resolve_precision

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    max_steps_per_epoch: int = 0  # 0 = the whole epoch
    warmup_epochs: float = 0.0    # linear lr warm-up first (deep nets from scratch need it)
    grad_clip_norm: float = 0.0   # clip the global gradient norm to this (0 = off): a spiking
    #                               batch then moves the weights a bounded step, not to chance
    seed: int = 0
    augment: AugmentConfig = AugmentConfig()   # off by default (optbench.augment)
    precision: str = "fp32"       # "bf16": forward and loss under bf16 autocast, in channels-last
    #                               memory; weights, optimizer and gradients stay fp32. Fast
    #                               where the CPU has native bf16 (AMX, AVX512-BF16), emulated
    #                               and slower elsewhere (train() warns). "auto": bf16 where it
    #                               is native, fp32 elsewhere (each epoch records which ran;
    #                               a checkpoint resumes under "auto" whatever it ran in)
    channels_last: bool = False   # the model and batches in channels-last memory (NHWC; always
    #                               so with bf16): depthwise-conv nets train much faster so on
    #                               x86 (results/train_precision); the model is handed back
    #                               contiguous
    compile: bool = False         # each training step's forward (and so its backward) through
    #                               torch.compile (Inductor): the same math to float rounding,
    #                               fused elementwise work, a compile of a few minutes first.
    #                               Validation stays eager. A checkpoint resumes with compile on
    #                               or off; each epoch records which ran

    def __post_init__(self):
        check_positive("TrainConfig", epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)
        check_choice("TrainConfig", "optimizer", self.optimizer, ("sgd", "adamw"))
        check_choice("TrainConfig", "schedule", self.schedule, ("cosine", "constant"))
        check_choice("TrainConfig", "precision", self.precision, PRECISIONS)
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(f"TrainConfig.warmup_epochs must lie in [0, epochs={self.epochs}],"
                              f" got {self.warmup_epochs}")
        if self.grad_clip_norm < 0:
            raise ConfigError("TrainConfig.grad_clip_norm must be >= 0 (0 = no clipping), got "
                              f"{self.grad_clip_norm}")
        if self.max_steps_per_epoch < 0:
            raise ConfigError("TrainConfig.max_steps_per_epoch must be >= 0 (0 = whole epoch), "
                              f"got {self.max_steps_per_epoch}")


@dataclasses.dataclass
class TrainResult:
    # one dict per finished epoch: epoch, train_loss, val_accuracy, seconds (wall, pauses
    # included), cpu_seconds (the process's CPU time, all threads; pauses and waits excluded),
    # threads (the intra-op threads of the process that finished the epoch), device (where it
    # ran: env.device_name) and precision (the one it ran in: "auto" resolved) and, with
    # grad_clip_norm on, clipped_steps and max_grad_norm (before clipping)
    history: list[dict]
    resumed_from_epoch: int = 0


def train(model: nn.Module, train_data: Dataset, config: TrainConfig | None = None, *,
          val_data: Dataset | None = None, checkpoint: str | os.PathLike | None = None,
          loss_fn: LossFn | None = None, device: str = "cpu", progress: bool = True,
          stop_after_epoch: int | None = None, save_every_s: float = 600.0) -> TrainResult:
    """Train `model` in place. `loss_fn(model, images, labels)` overrides cross-entropy (used by
    distillation and QAT). `stop_after_epoch` stops early, as a crash would (for tests).
    With a checkpoint, an unfinished epoch is saved every `save_every_s` seconds as well."""
    config = config or TrainConfig()
    model.to(device)
    precision = _Precision(config, device, model)
    run = resume(model, train_data, config, checkpoint)
    optimizer, scheduler, history, partial = run.optimizer, run.scheduler, run.history, run.partial
    loss_fn = loss_fn or _cross_entropy(config.label_smoothing)
    step_model = compiled_for_training(model) if config.compile else model
    for epoch in range(run.epoch, config.epochs):
        draws = epoch_draws(train_data, config, epoch, partial)
        partial = None
        generator, progress_so_far = draws.generator, draws.done

        def save_partial(done: _Progress, epoch=epoch, generator=generator):
            _save(checkpoint, config, model, optimizer, scheduler, history,
                  partial=_partial_state(epoch, done, generator))

        clock = _Clock(progress_so_far)
        done = _train_epoch(step_model, draws.loader, optimizer, scheduler, loss_fn, device,
                            run.steps, f"epoch {epoch + 1}/{config.epochs}", progress,
                            draws.views, progress_so_far, clock,
                            save_partial if checkpoint is not None else None, save_every_s,
                            config.grad_clip_norm, precision)
        record = {"epoch": epoch + 1, "train_loss": done.loss_total / max(done.step, 1)}
        if config.grad_clip_norm and done.clipped is not None:   # None: a save predates them
            record["clipped_steps"], record["max_grad_norm"] = done.clipped, done.max_grad_norm
        if val_data is not None:
            record["val_accuracy"] = evaluate(model, val_data, device=device)
            record["val_examples"] = len(val_data)
        record["seconds"], cpu_seconds = clock.elapsed()   # training and validation
        record["threads"] = torch.get_num_threads()
        record["device"], record["precision"] = device_name(device), precision.name
        record["compiled"] = config.compile
        if cpu_seconds is not None:   # None: resumed from a save without it
            record["cpu_seconds"] = cpu_seconds
        history.append(record)
        if checkpoint is not None:
            _save(checkpoint, config, model, optimizer, scheduler, history)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    precision.restore(model)
    return TrainResult(history=history, resumed_from_epoch=run.epoch)


def compiled_for_training(model: nn.Module) -> nn.Module:
    """`model` behind torch.compile for the training steps (parameters shared). Dynamo's
    recompile limit is raised and hitting it is an error, as for the torch-compile runtime:
    past it Dynamo would train eager without saying so."""
    from optbench.runtime.torch import allow_recompiles

    allow_recompiles()
    return torch.compile(model)


class _Precision:
    """The forward's number format and memory layout during training. bf16: autocast, always in
    channels-last memory (oneDNN's bf16 convolutions want it: results/train_precision);
    channels_last: the model and each batch in NHWC. The model is put back in contiguous memory
    when training ends."""

    def __init__(self, config: TrainConfig, device: str, model: nn.Module):
        self.name = resolve_precision(config.precision, device)
        self.bf16 = self.name == "bf16"
        self.channels_last = config.channels_last or self.bf16
        self.device_type = torch.device(device).type
        if self.channels_last:
            model.to(memory_format=torch.channels_last)

    def views(self, images: torch.Tensor) -> torch.Tensor:
        return (images.contiguous(memory_format=torch.channels_last)
                if self.channels_last and images.dim() == 4 else images)

    def autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16)

    def restore(self, model: nn.Module) -> None:
        if self.channels_last:
            model.to(memory_format=torch.contiguous_format)


@dataclasses.dataclass
class Resumed:
    """Where a training run stands: its optimizer and lr schedule (their states restored from
    the checkpoint when there is one), the steps per epoch, the finished epochs' history, the
    epoch to run next, and the unfinished epoch's save (or None)."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    steps: int
    history: list[dict]
    epoch: int
    partial: dict | None


def resume(model: nn.Module, train_data: Dataset, config: TrainConfig,
           checkpoint: str | os.PathLike | None = None) -> Resumed:
    """The state train() starts from: fresh, or `checkpoint`'s (the model's weights loaded in
    place). A checkpoint written with another config is refused."""
    optimizer = _optimizer(model, config)
    steps = _steps_per_epoch(train_data, config)
    scheduler = _scheduler(optimizer, config, steps)
    history, epoch, partial = _resume(checkpoint, config, model, optimizer, scheduler)
    return Resumed(optimizer, scheduler, steps, history, epoch, partial)


@dataclasses.dataclass
class EpochDraws:
    """What one epoch draws from: the data order, the augmentation (`views`: images -> the
    augmented batch) and its generator, and the progress a resumed save had made in it."""
    loader: torch.utils.data.DataLoader
    generator: torch.Generator | None
    views: Callable[[torch.Tensor], torch.Tensor]
    done: _Progress


def epoch_draws(train_data: Dataset, config: TrainConfig, epoch: int,
                partial: dict | None = None) -> EpochDraws:
    """Epoch `epoch` seeded as every run seeds it; with `partial` (a save inside this epoch),
    every random state as it was saved. Seeds the process's RNGs: call it right before the
    epoch's steps."""
    _seed_everything(config.seed + epoch)
    loader = make_loader(train_data, config.batch_size, shuffle=True, seed=config.seed + epoch,
                         drop_last=len(train_data) > config.batch_size)
    generator = _augment_generator(config.augment, config.seed + epoch)
    done = _Progress()
    if partial is not None:   # resume inside this epoch: its random state as it was saved
        if partial["epoch"] != epoch:
            raise ConfigError(f"the saved unfinished epoch is epoch {partial['epoch'] + 1}, "
                              f"not {epoch + 1}")
        done = _restore_partial(partial, generator)
    return EpochDraws(loader, generator, _augmenter(config.augment, generator), done)


@torch.inference_mode()
def evaluate(model: nn.Module, data: Dataset, batch_size: int = 256, device: str = "cpu") -> float:
    """Top-1 accuracy of `model` on `data`. Leaves the model's train/eval mode as it was."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for images, labels in make_loader(data, batch_size):
        logits = model(images.to(device))
        correct += int((logits.argmax(1).cpu() == labels).sum())
        total += len(labels)
    model.train(was_training)
    return correct / total


@dataclasses.dataclass
class _Progress:
    """How far an epoch got: steps taken, their summed loss, wall and CPU seconds spent, and
    with grad_clip_norm on, how many steps' gradient norm exceeded it and the largest norm
    (None: part of the epoch ran before that was recorded)."""
    step: int = 0
    loss_total: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float | None = 0.0
    clipped: int | None = 0
    max_grad_norm: float | None = 0.0

    def after(self, loss: float, clock: _Clock, norm: float | None, bound: float) -> _Progress:
        """The progress once one more step (its loss, its gradient norm before clipping or
        None when not clipping) is done."""
        clipped, largest = self.clipped, self.max_grad_norm
        if norm is not None and clipped is not None:
            clipped, largest = clipped + (norm > bound), max(largest, norm)
        return _Progress(self.step + 1, self.loss_total + loss, *clock.elapsed(), clipped,
                         largest)


class _Clock:
    """Wall and CPU seconds of an epoch, counting what a resumed save had already spent."""

    def __init__(self, done: _Progress):
        self.wall_start = time.perf_counter() - done.seconds
        self.cpu_start = (None if done.cpu_seconds is None
                          else time.process_time() - done.cpu_seconds)

    def elapsed(self) -> tuple[float, float | None]:
        return (time.perf_counter() - self.wall_start,
                None if self.cpu_start is None else time.process_time() - self.cpu_start)


def _augment_generator(config: AugmentConfig, seed: int) -> torch.Generator | None:
    """The augmentation draws' generator, seeded per epoch (a resumed run repeats them)."""
    return torch.Generator().manual_seed(seed + 7_777_777) if config.active else None


def _augmenter(config: AugmentConfig, generator: torch.Generator | None):
    """images -> the augmented view."""
    if generator is None:
        return lambda images: images
    return lambda images: augment_batch(images, config, generator)


def _train_epoch(model, loader, optimizer, scheduler, loss_fn, device, steps, desc, progress,
                 views, done: _Progress, clock: _Clock, save_partial, save_every_s: float,
                 grad_clip_norm: float, precision: _Precision):
    """Steps done.step..steps-1 of an epoch (the loader's earlier batches are drawn and skipped,
    so the order stays the uninterrupted run's); calls save_partial every save_every_s. Returns
    the epoch's final _Progress."""
    model.train()
    bar = tqdm(total=steps, initial=done.step, desc=desc, disable=not progress, leave=False)
    last_save = time.perf_counter()
    for step, (images, labels) in enumerate(loader):
        if step >= steps:
            break
        if step < done.step:
            continue
        with precision.autocast():
            loss = loss_fn(model, precision.views(views(images).to(device)), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = (float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm))
                if grad_clip_norm else None)
        optimizer.step()
        scheduler.step()
        done = done.after(float(loss.detach()), clock, norm, grad_clip_norm)
        bar.set_postfix(loss=f"{done.loss_total / done.step:.3f}")
        bar.update()
        if (save_partial is not None and done.step < steps
                and time.perf_counter() - last_save >= save_every_s):
            save_partial(done)
            last_save = time.perf_counter()
    bar.close()
    return done


def _cross_entropy(label_smoothing: float) -> LossFn:
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    return lambda model, images, labels: criterion(model(images), labels)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, nesterov=config.momentum > 0)


def _scheduler(optimizer, config: TrainConfig, steps: int):
    """Per-step lr factor: linear warm-up from 1% over warmup_epochs, then cosine to 0 (or
    constant) over the remaining steps."""
    total, warm = config.epochs * steps, round(config.warmup_epochs * steps)
    cosine = config.schedule == "cosine"

    def factor(step: int) -> float:
        if step < warm:
            return 0.01 + 0.99 * step / warm
        if not cosine:
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _steps_per_epoch(data: Dataset, config: TrainConfig) -> int:
    n = len(data)
    full = n // config.batch_size if n > config.batch_size else 1
    return min(full, config.max_steps_per_epoch) if config.max_steps_per_epoch else full


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _save(path, config, model, optimizer, scheduler, history, partial=None) -> None:
    state = {"config": config.to_dict(), "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "history": history}
    if partial is not None:
        state["partial"] = partial
    atomic_torch_save(path, state)


SLIM_DTYPES = ("float32", "float16", "bfloat16")


def slim_checkpoint(src: str | os.PathLike, dst: str | os.PathLike,
                    dtype: str = "float32") -> dict:
    """A finished run's checkpoint with what resuming it reads and nothing else: the config,
    the history and the weights, without the optimizer's and scheduler's state (for SGD with
    momentum, as large as the weights again). `dtype` float16 or bfloat16 stores floating-point
    weights in that format, half the bytes: a ResNet50's weights then cross a 16 MiB-per-file
    transfer from a lent GPU in three parts (float16 rounds each weight by at most 2^-11 of
    it). The last epoch's record says so (`weights_stored_as`), and the report's Training runs
    table shows it. `train` resumes from it as from the full checkpoint (a finished run does
    not train again); an unfinished run is refused here, since nothing could continue it.
    Returns the slim checkpoint's summary: epochs, dtype, bytes before and after."""
    check_choice("slim_checkpoint", "dtype", dtype, SLIM_DTYPES)
    state = safe_torch_load(src)
    if not isinstance(state, dict) or not {"config", "model", "history"} <= set(state):
        raise ConfigError(f"{src} is not an optbench training checkpoint (it needs config, "
                          "model and history entries)")
    epochs = int(_as_current(state["config"], TrainConfig())["epochs"])
    if len(state["history"]) < epochs or state.get("partial") is not None:
        raise ConfigError(f"{src} is unfinished ({len(state['history'])} of {epochs} epochs): "
                          "only a finished run can be slimmed; finish it, or copy the full "
                          "checkpoint to continue it elsewhere")
    target = getattr(torch, dtype)
    weights = {k: v.to(target) if v.is_floating_point() and dtype != "float32" else v
               for k, v in state["model"].items()}
    history = [dict(h) for h in state["history"]]
    if dtype != "float32":
        history[-1]["weights_stored_as"] = dtype
    atomic_torch_save(dst, {"config": state["config"], "model": weights, "history": history})
    return {"epochs": len(history), "dtype": dtype, "bytes_before": Path(src).stat().st_size,
            "bytes_after": Path(dst).stat().st_size}


def _partial_state(epoch: int, done: _Progress, generator: torch.Generator | None) -> dict:
    """An unfinished epoch, with every random state the rest of it draws from (tensors and
    plain lists only, so it loads with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"epoch": epoch, **dataclasses.asdict(done),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python_rng": _nested_lists(random.getstate()),
            "augment_rng": None if generator is None else generator.get_state()}


def _restore_partial(partial: dict, generator: torch.Generator | None) -> _Progress:
    torch.set_rng_state(partial["torch_rng"])
    kind, keys, pos, has_gauss, gauss = partial["numpy_rng"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_nested_tuples(partial["python_rng"]))
    if generator is not None:
        generator.set_state(partial["augment_rng"])
    return _Progress(partial["step"], partial["loss_total"], partial["seconds"],
                     partial.get("cpu_seconds"), partial.get("clipped"),
                     partial.get("max_grad_norm"))


def _nested_lists(value):
    return [_nested_lists(v) for v in value] if isinstance(value, tuple) else value


def _nested_tuples(value):
    return tuple(_nested_tuples(v) for v in value) if isinstance(value, list) else value


def _as_current(saved, config: TrainConfig):
    """A checkpoint's config read with today's fields: a field added since it was written takes
    its default (what the run then used), so new options do not orphan old checkpoints."""
    if not isinstance(saved, dict):
        return saved
    return {**type(config)().to_dict(), **saved}


def _same_run(saved, config: TrainConfig) -> bool:
    """Whether a checkpoint's config (read with today's fields) continues under `config`: every
    field equal, except that precision "auto" on either side matches any precision, and
    compile matches on or off (the same steps to float rounding). "auto" is whatever the
    machine does natively, and a run resumed over several sittings may land on another kind
    of CPU; each epoch's record says which precision it ran in, and whether it was compiled."""
    current = config.to_dict()
    if isinstance(saved, dict) and "auto" in (saved.get("precision"), config.precision):
        saved = {**saved, "precision": config.precision}
    if isinstance(saved, dict):   # compiled or eager: the same steps, to float rounding
        saved = {**saved, "compile": config.compile}
    return saved == current


def _resume(path, config, model, optimizer, scheduler) -> tuple[list[dict], int, dict | None]:
    """(finished epochs' history, the epoch to start, the unfinished epoch's state or None)."""
    if path is None or not Path(path).is_file():
        return [], 0, None
    state = safe_torch_load(path)
    if not _same_run(_as_current(state.get("config"), config), config):
        raise ConfigError(
            f"checkpoint {path} was written with a different training config "
            f"({state.get('config')}); delete it or use another checkpoint path to start afresh")
    slim = "optimizer" not in state   # slim_checkpoint's: a finished run's weights alone
    if slim and len(state["history"]) < config.epochs:
        raise ConfigError(
            f"checkpoint {path} holds weights without the optimizer's state, after "
            f"{len(state['history'])} of {config.epochs} epochs: training cannot continue "
            "from it. Copy the unfinished run's full checkpoint instead, or delete it to "
            "start afresh")
    try:
        model.load_state_dict(state["model"])   # stored float16/bfloat16: cast back
    except RuntimeError as exc:   # same config, other shapes: e.g. a pruning that changed
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in
                       line or "Missing key" in line or "Unexpected key" in line), str(exc))
        raise ConfigError(
            f"checkpoint {path} holds a model of another shape than the one to train "
            f"({detail[:300]}); it was written for another architecture, e.g. by a "
            "prune-structured step that kept other channel counts (rounding = \"down\" "
            "reproduces the counts kept before optbench rounded to the nearest multiple). "
            "Delete it or use another checkpoint path to start afresh") from exc
    if slim:
        return list(state["history"]), len(state["history"]), None
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    partial = state.get("partial")
    if partial is not None and partial["epoch"] != len(state["history"]):
        raise ConfigError(f"checkpoint {path} is inconsistent: its unfinished epoch "
                          f"{partial['epoch'] + 1} does not follow its {len(state['history'])} "
                          "finished ones; delete it to start afresh")
    return list(state["history"]), len(state["history"]), partial
