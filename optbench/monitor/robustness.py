"""Adversarial robustness: FGSM and PGD (L-inf) on differentiable variants, and transfer
attacks for variants that are not differentiable (int8 programs, ONNX files).

`eps` is in pixel units ([0, 1] images), the usual convention; models take normalized inputs,
so attacks run in pixel space through the normalization (x - mean) / std and clamp to [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

Predict = Callable[[torch.Tensor], np.ndarray]   # normalized batch -> logits (any runtime)


class _PixelModel(nn.Module):
    def __init__(self, model: nn.Module, mean: float, std: float):
        super().__init__()
        self.model, self.mean, self.std = model, mean, std

    def forward(self, pixels):
        return self.model((pixels - self.mean) / self.std)


def to_pixels(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return (x * std + mean).clamp(0.0, 1.0)


def fgsm(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, eps: float,
         mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """One signed-gradient step of size eps; returns adversarial pixels in [0, 1]."""
    net = _PixelModel(model, mean, std).eval()
    x = pixels.clone().detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(net(x), labels)
    (grad,) = torch.autograd.grad(loss, x)
    return (pixels + eps * grad.sign()).clamp(0.0, 1.0).detach()


def pgd(model: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, eps: float,
        alpha: float | None = None, steps: int = 10, random_start: bool = True,
        mean: float = 0.0, std: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Projected gradient descent in the L-inf ball of radius eps (Madry et al.): `steps`
    signed steps of size alpha (default 2.5 * eps / steps), projected and clamped each time."""
    alpha = 2.5 * eps / steps if alpha is None else alpha
    net = _PixelModel(model, mean, std).eval()
    x = pixels.clone().detach()
    if random_start:
        gen = torch.Generator().manual_seed(seed)
        x = (x + torch.empty_like(x).uniform_(-eps, eps, generator=gen)).clamp(0.0, 1.0)
    for _ in range(steps):
        x.requires_grad_(True)
        loss = nn.functional.cross_entropy(net(x), labels)
        (grad,) = torch.autograd.grad(loss, x)
        x = x.detach() + alpha * grad.sign()
        x = torch.min(torch.max(x, pixels - eps), pixels + eps).clamp(0.0, 1.0)
    return x.detach()


def attack_batches(source: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, eps: float,
                   attack: str = "pgd", steps: int = 10, mean: float = 0.0, std: float = 1.0,
                   batch_size: int = 200) -> torch.Tensor:
    """Adversarial pixels for every example, crafted on `source` in batches (eps = 0: clean)."""
    if attack not in ("pgd", "fgsm"):
        raise ValueError(f"attack must be 'pgd' or 'fgsm', got {attack!r}")
    if eps == 0:
        return pixels
    out = []
    for i in range(0, len(labels), batch_size):
        p, y = pixels[i:i + batch_size], labels[i:i + batch_size]
        out.append(fgsm(source, p, y, eps, mean, std) if attack == "fgsm"
                   else pgd(source, p, y, eps, steps=steps, mean=mean, std=std, seed=i))
    return torch.cat(out)


def accuracy_on(predict: Predict, pixels: torch.Tensor, labels: torch.Tensor, mean: float = 0.0,
                std: float = 1.0, batch_size: int = 200) -> float:
    correct = 0
    for i in range(0, len(labels), batch_size):
        logits = predict((pixels[i:i + batch_size] - mean) / std)
        correct += int((np.asarray(logits).argmax(1) == labels[i:i + batch_size].numpy()).sum())
    return correct / len(labels)


def robust_accuracy(source: nn.Module, data: tuple[torch.Tensor, torch.Tensor],
                    eps_values: list[float], attack: str = "pgd", target: Predict | None = None,
                    mean: float = 0.0, std: float = 1.0, batch_size: int = 200,
                    steps: int = 10) -> dict[float, float]:
    """Accuracy under attack for each eps (eps = 0: clean accuracy). Adversarial examples are
    crafted on `source`; they are scored on `target` (a transfer attack) when given, else on
    `source` itself (white-box)."""
    images, labels = data
    pixels = to_pixels(images, mean, std)
    source = source.eval()
    if target is None:
        def target(x):
            with torch.no_grad():
                return source(x).numpy()
    return {float(eps): accuracy_on(target, attack_batches(source, pixels, labels, eps, attack,
                                                            steps, mean, std, batch_size),
                                    labels, mean, std, batch_size)
            for eps in eps_values}
