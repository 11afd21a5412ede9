"""Training-time augmentation on whole batches (N, C, H, W) of normalized images, seeded.

The shared training loop applies it to each batch before the loss sees it, so every loss (plain
cross-entropy, distillation, QAT) trains on the same augmented view, and a distillation teacher
scores exactly the view its student sees (Beyer et al. 2022, "consistent teaching"). The random
draws come from a generator the loop seeds per epoch, so a resumed run repeats them.

    train = { epochs = 20, augment = { crop_padding = 4, hflip = true, erasing = 0.25 } }
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from optbench.config import Config
from optbench.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class AugmentConfig(Config):
    crop_padding: int = 0   # random crop of the image padded (reflect) by this many pixels
    hflip: bool = False     # horizontal flip with probability 0.5
    erasing: float = 0.0    # probability of erasing one random rectangle (2-33% of the area)

    def __post_init__(self):
        if self.crop_padding < 0:
            raise ConfigError(f"AugmentConfig.crop_padding must be >= 0, got {self.crop_padding}")
        if not 0.0 <= self.erasing <= 1.0:
            raise ConfigError(f"AugmentConfig.erasing is a probability in [0, 1], got "
                              f"{self.erasing}")

    @property
    def active(self) -> bool:
        return bool(self.crop_padding or self.hflip or self.erasing)


def augment_batch(images: torch.Tensor, config: AugmentConfig,
                  generator: torch.Generator) -> torch.Tensor:
    """A new batch: each image cropped, flipped and erased on its own draws. Leaves `images`
    untouched; returns it as is when nothing is switched on."""
    if not config.active:
        return images
    if images.dim() != 4:
        raise ConfigError(f"augmentation works on image batches (N, C, H, W), got shape "
                          f"{tuple(images.shape)}; switch train.augment off for this data")
    n, _, h, w = images.shape
    out = images
    if config.crop_padding:
        p = config.crop_padding
        if p >= min(h, w):
            raise ConfigError(f"augment.crop_padding={p} must be smaller than the image "
                              f"({h}x{w})")
        padded = F.pad(images, (p, p, p, p), mode="reflect")
        dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).tolist()
        dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).tolist()
        out = torch.stack([padded[i, :, y:y + h, x:x + w]
                           for i, (y, x) in enumerate(zip(dy, dx, strict=True))])
    if config.hflip:
        flip = torch.rand(n, generator=generator) < 0.5
        out = torch.where(flip[:, None, None, None], out.flip(-1), out)
    if config.erasing:
        out = _erase(out.clone() if out is images else out, config.erasing, generator)
    return out


def _erase(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020) with value 0, the data's mean after normalization."""
    n, _, h, w = images.shape
    draws = torch.rand(n, 5, generator=generator).tolist()
    for i, (u, area, aspect, y, x) in enumerate(draws):
        if u >= p:
            continue
        target = (0.02 + 0.31 * area) * h * w
        ratio = math.exp(-1.2 + 2.4 * aspect)   # log-uniform in [0.3, 3.3]
        eh = max(1, min(h, round(math.sqrt(target * ratio))))
        ew = max(1, min(w, round(math.sqrt(target / ratio))))
        top, left = int(y * (h - eh + 1)), int(x * (w - ew + 1))
        images[i, :, top:top + eh, left:left + ew] = 0.0
    return images
