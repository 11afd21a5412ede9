"""Tiny artifacts for the server tests: a small conv net exported to ONNX and as a state dict."""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn

from optbench.artifact import save_artifact
from optbench.data import FASHION_CLASSES, ImageTransform

SHAPE = (1, 8, 8)


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 10)).eval()


def onnx_artifact(folder, name: str = "tiny", seed: int = 0):
    from optbench.transforms.export import export_onnx

    onnx = export_onnx(tiny_net(seed), torch.randn(2, *SHAPE), folder / f"{name}-src.onnx")
    return save_artifact(folder / name, name=name, onnx_path=onnx, input_shape=SHAPE,
                         transform=ImageTransform(size=8, channels=1),
                         class_names=FASHION_CLASSES, metrics={"top1_accuracy": 0.5})


def png_bytes(size: int = 28, fmt: str = "PNG", seed: int = 0) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format=fmt)
    return buf.getvalue()
