"""The README's main job: train a small model on real Fashion-MNIST, then benchmark it across
runtimes and batch sizes and write a report. Resumes from its training checkpoint."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from optbench.bench import BenchConfig, bench
from optbench.config import Config, check_positive
from optbench.data import ImageTransform, load_fashion_mnist
from optbench.models import build_model
from optbench.report import save_bench
from optbench.results import Training
from optbench.train import TrainConfig, evaluate, train


@dataclasses.dataclass(frozen=True)
class DemoConfig(Config):
    model: str = "resnet18"
    image_size: int = 32
    train_limit: int = 10000
    test_limit: int = 0            # 0 = the whole test split (10,000 images)
    epochs: int = 1
    runtimes: tuple[str, ...] = ("torch-eager", "torch-compile", "onnxruntime")
    batch_sizes: tuple[int, ...] = (1, 8)
    threads: int = 0
    max_time_s: float = 5.0

    def __post_init__(self):
        check_positive("DemoConfig", image_size=self.image_size, train_limit=self.train_limit,
                       epochs=self.epochs, max_time_s=self.max_time_s)


def run_demo(out_dir: str | os.PathLike, config: DemoConfig | None = None,
             data_dir: str | None = None, progress: bool = True,
             work_dir: str | os.PathLike = "runs/demo") -> dict[str, Path]:
    """Train, measure, report into out_dir; checkpoints go to work_dir (kept out of results)."""
    config = config or DemoConfig()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(out_dir)
    transform = ImageTransform(size=config.image_size, channels=1)
    train_set = load_fashion_mnist("train", data_dir, transform, limit=config.train_limit)
    test_set = load_fashion_mnist("test", data_dir, transform, limit=config.test_limit or None)
    model = build_model(config.model, num_classes=10, in_channels=1)
    history = train(model, train_set, TrainConfig(epochs=config.epochs), progress=progress,
                    checkpoint=Path(work_dir) / f"{config.model}.ckpt").history
    model.eval()
    bench_config = BenchConfig(runtimes=config.runtimes, batch_sizes=config.batch_sizes,
                               input_shape=(1, config.image_size, config.image_size),
                               threads=config.threads, max_time_s=config.max_time_s)
    result = bench(model, bench_config, label=f"{config.model} on Fashion-MNIST",
                   eval_data=test_set)
    result.sections.training = Training(
        history=history, train_examples=len(train_set), test_examples=len(test_set),
        eval_accuracy_eager=evaluate(model, test_set), settings=config.to_dict())
    return save_bench(result, out, stem="report")
