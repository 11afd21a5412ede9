"""A small, seeded training/evaluation loop shared by training, fine-tuning, distillation and QAT.

Checkpoints after every epoch (atomically); calling train() again with the same checkpoint path
resumes after the last finished epoch and gives the same result as an uninterrupted run.
"""

from __future__ import annotations

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
from optbench.errors import ConfigError
from optbench.io import atomic_torch_save, safe_torch_load

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
    seed: int = 0
    augment: AugmentConfig = AugmentConfig()   # off by default (optbench.augment)

    def __post_init__(self):
        check_positive("TrainConfig", epochs=self.epochs, batch_size=self.batch_size, lr=self.lr)
        check_choice("TrainConfig", "optimizer", self.optimizer, ("sgd", "adamw"))
        check_choice("TrainConfig", "schedule", self.schedule, ("cosine", "constant"))
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(f"TrainConfig.warmup_epochs must lie in [0, epochs={self.epochs}],"
                              f" got {self.warmup_epochs}")
        if self.max_steps_per_epoch < 0:
            raise ConfigError("TrainConfig.max_steps_per_epoch must be >= 0 (0 = whole epoch), "
                              f"got {self.max_steps_per_epoch}")


@dataclasses.dataclass
class TrainResult:
    history: list[dict]  # one dict per finished epoch: epoch, train_loss, val_accuracy, seconds
    resumed_from_epoch: int = 0


def train(model: nn.Module, train_data: Dataset, config: TrainConfig | None = None, *,
          val_data: Dataset | None = None, checkpoint: str | os.PathLike | None = None,
          loss_fn: LossFn | None = None, device: str = "cpu", progress: bool = True,
          stop_after_epoch: int | None = None) -> TrainResult:
    """Train `model` in place. `loss_fn(model, images, labels)` overrides cross-entropy (used by
    distillation and QAT). `stop_after_epoch` stops early, as a crash would (for tests)."""
    config = config or TrainConfig()
    model.to(device)
    optimizer = _optimizer(model, config)
    steps = _steps_per_epoch(train_data, config)
    scheduler = _scheduler(optimizer, config, steps)
    loss_fn = loss_fn or _cross_entropy(config.label_smoothing)
    history, start = _resume(checkpoint, config, model, optimizer, scheduler)
    for epoch in range(start, config.epochs):
        _seed_everything(config.seed + epoch)
        loader = make_loader(train_data, config.batch_size, shuffle=True, seed=config.seed + epoch,
                             drop_last=len(train_data) > config.batch_size)
        views = _augmenter(config.augment, config.seed + epoch)
        started = time.perf_counter()
        loss = _train_epoch(model, loader, optimizer, scheduler, loss_fn, device, steps,
                            f"epoch {epoch + 1}/{config.epochs}", progress, views)
        record = {"epoch": epoch + 1, "train_loss": loss}
        if val_data is not None:
            record["val_accuracy"] = evaluate(model, val_data, device=device)
        record["seconds"] = time.perf_counter() - started   # training and validation, wall
        history.append(record)
        if checkpoint is not None:
            _save(checkpoint, config, model, optimizer, scheduler, history)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    return TrainResult(history=history, resumed_from_epoch=start)


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


def _augmenter(config: AugmentConfig, seed: int):
    """images -> the augmented view, its draws seeded per epoch (a resumed run repeats them)."""
    if not config.active:
        return lambda images: images
    generator = torch.Generator().manual_seed(seed + 7_777_777)
    return lambda images: augment_batch(images, config, generator)


def _train_epoch(model, loader, optimizer, scheduler, loss_fn, device, steps, desc, progress,
                 views=lambda images: images):
    model.train()
    total, count = 0.0, 0
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False)
    for step, (images, labels) in enumerate(loader):
        if step >= steps:
            break
        loss = loss_fn(model, views(images).to(device), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total, count = total + float(loss.detach()), count + 1
        bar.set_postfix(loss=f"{total / count:.3f}")
        bar.update()
    bar.close()
    return total / max(count, 1)


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


def _save(path, config, model, optimizer, scheduler, history) -> None:
    atomic_torch_save(path, {"config": config.to_dict(), "model": model.state_dict(),
                             "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "history": history})


def _as_current(saved, config: TrainConfig):
    """A checkpoint's config read with today's fields: a field added since it was written takes
    its default (what the run then used), so new options do not orphan old checkpoints."""
    if not isinstance(saved, dict):
        return saved
    return {**type(config)().to_dict(), **saved}


def _resume(path, config, model, optimizer, scheduler) -> tuple[list[dict], int]:
    if path is None or not Path(path).is_file():
        return [], 0
    state = safe_torch_load(path)
    if _as_current(state.get("config"), config) != config.to_dict():
        raise ConfigError(
            f"checkpoint {path} was written with a different training config "
            f"({state.get('config')}); delete it or use another checkpoint path to start afresh")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return list(state["history"]), len(state["history"])
