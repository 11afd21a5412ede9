"""A dataset from your own code, for recipes/your_python_dataset.toml (`dataset = "python"`,
`entry = "examples.photo_patches:patches"`).

Colour image patches cut from two real photographs (scikit-learn's bundled sample images: a
temple in China and a flower), labelled by the photograph they come from. The function returns
a plain torch Dataset of (PIL image, label) pairs with raw pixels: optbench splits it with the
recipe's seed, computes the per-channel normalization from the training split and records it
in the artifacts, so `optbench serve` prepares an uploaded JPEG the same way.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset


class PhotoPatches(Dataset):
    def __init__(self, n: int = 2400, size: int = 32, seed: int = 0):
        try:
            from sklearn.datasets import load_sample_images
        except ImportError:
            raise ImportError("this example needs scikit-learn's sample images: "
                              "pip install scikit-learn") from None
        photos = load_sample_images()
        self.classes = [name.rsplit("/", 1)[-1].split(".")[0] for name in photos.filenames]
        self.photos = photos.images
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, len(self.photos), n)
        self.corners = [(rng.integers(0, self.photos[k].shape[0] - size),
                         rng.integers(0, self.photos[k].shape[1] - size)) for k in self.labels]
        self.size = size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        k = int(self.labels[i])
        top, left = self.corners[i]
        return Image.fromarray(self.photos[k][top:top + self.size, left:left + self.size]), k


def patches() -> PhotoPatches:
    return PhotoPatches()
