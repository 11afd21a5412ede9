"""Datasets: Fashion-MNIST from local files (or torchvision's download), and synthetic data.

Lookup order for Fashion-MNIST's idx files: (a) the directory the caller names, (b) the
OPTBENCH_DATA_DIR environment variable, (c) the Debian package's /usr/share/datasets/fashion-mnist,
(d) torchvision's download. If none works, one error lists all four and how to get each.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from optbench.config import Config, check_choice, check_positive
from optbench.errors import ConfigError, MissingInputError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_DIR = Path.home() / ".cache" / "optbench" / "fashion-mnist"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class ImageTransform(Config):
    """uint8 HxW image -> float CxSxS tensor: scale to [0,1], resize, repeat channels, normalize."""

    size: int = 28
    channels: int = 1
    mean: float = FASHION_MEAN
    std: float = FASHION_STD

    def __post_init__(self):
        check_positive("ImageTransform", size=self.size, std=self.std)
        check_choice("ImageTransform", "channels", self.channels, (1, 3))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Works on one image (H, W) or a batch (N, H, W) of uint8."""
        single = images.dim() == 2
        x = (images.unsqueeze(0) if single else images).unsqueeze(1).float().div_(255.0)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                                align_corners=False)
        x = (x - self.mean) / self.std
        x = x.expand(-1, self.channels, -1, -1).contiguous()
        return x[0] if single else x


class ArrayDataset(Dataset):
    """Images (uint8, N x H x W) and labels held in memory; the transform runs per item."""

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                 transform: ImageTransform | None = None, classes: tuple[str, ...] = ()):
        self.images = torch.as_tensor(images, dtype=torch.uint8)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.transform = transform or ImageTransform(size=self.images.shape[-1])
        self.classes = classes or tuple(str(i) for i in range(int(self.labels.max()) + 1))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]

    def batch(self, start: int = 0, size: int = 1) -> torch.Tensor:
        """Transformed images[start:start+size] as one tensor (for examples and calibration)."""
        return self.transform(self.images[start:start + size])

    def subset(self, indices: np.ndarray) -> ArrayDataset:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return ArrayDataset(self.images[idx], self.labels[idx], self.transform, self.classes)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (gzipped or not) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ConfigError(f"{path} is not an unsigned-byte idx file (bad magic {data[:4]!r})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise ConfigError(f"{path} is truncated: header says {dims}, found {array.size} bytes")
    return array.reshape(dims).copy()


def find_fashion_mnist(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The first directory holding all four Fashion-MNIST idx files, in the documented order."""
    tried = []
    candidates = [("the directory you named", root),
                  ("$OPTBENCH_DATA_DIR", os.environ.get("OPTBENCH_DATA_DIR")),
                  ("the Debian package dataset-fashion-mnist", DEBIAN_DIR)]
    for label, folder in candidates:
        if folder is None:
            tried.append(f"{label}: not set")
            continue
        missing = _missing_files(Path(folder))
        if not missing:
            return Path(folder)
        tried.append(f"{label} ({folder}): missing {', '.join(missing)}")
    if download:
        try:
            return _torchvision_download(DOWNLOAD_DIR)
        except Exception as exc:  # any network or torchvision failure
            tried.append(f"torchvision download to {DOWNLOAD_DIR}: {type(exc).__name__}: {exc}")
    else:
        tried.append("torchvision download: not attempted (download=False)")
    raise MissingInputError(
        "Fashion-MNIST not found. Tried, in order:\n  - " + "\n  - ".join(tried) +
        "\nTo fix, do one of: pass data_dir=<folder with the four idx(.gz) files>; "
        "export OPTBENCH_DATA_DIR=<that folder>; "
        "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu); "
        "or allow internet access so torchvision can download it.")


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None,
                       transform: ImageTransform | None = None, val_fraction: float = 0.1,
                       seed: int = 0, limit: int | None = None,
                       download: bool = True) -> ArrayDataset:
    """One split of Fashion-MNIST. 'val' is a seeded hold-out of the training file, disjoint
    from 'train'; 'test' is the official test file. `limit` takes a seeded random subset."""
    check_choice("load_fashion_mnist", "split", split, SPLITS)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    folder = find_fashion_mnist(root, download=download)
    images, labels = _read_pair(folder, "test" if split == "test" else "train")
    if split != "test":
        order = np.random.default_rng(seed).permutation(len(labels))
        n_val = int(round(len(labels) * val_fraction))
        keep = order[:n_val] if split == "val" else order[n_val:]
        images, labels = images[np.sort(keep)], labels[np.sort(keep)]
    dataset = ArrayDataset(images, labels, transform or ImageTransform(), FASHION_CLASSES)
    return take_subset(dataset, limit, seed)


def take_subset(dataset: ArrayDataset, limit: int | None, seed: int = 0) -> ArrayDataset:
    if limit is None or limit >= len(dataset):
        return dataset
    if limit <= 0:
        raise ConfigError(f"limit must be a positive number of examples, got {limit}")
    idx = np.sort(np.random.default_rng(seed + 1).choice(len(dataset), limit, replace=False))
    return dataset.subset(idx)


def synthetic_dataset(n: int = 256, num_classes: int = 10, size: int = 16, seed: int = 0,
                      transform: ImageTransform | None = None) -> ArrayDataset:
    """Learnable synthetic images: class k has a class-specific background level and a bright bar
    at a class-specific row, plus noise (pooled and spatial features both tell them apart)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    levels = np.linspace(0, 200, num_classes).astype(np.int64)
    noise = rng.integers(0, 25, (n, size, size))
    images = (noise + levels[labels][:, None, None]).astype(np.uint8)
    rows = np.linspace(0, size - 2, num_classes).astype(int)
    for i, k in enumerate(labels):
        images[i, rows[k]:rows[k] + 2, :] = 230
    tf = transform or ImageTransform(size=size, channels=1, mean=0.3, std=0.35)
    return ArrayDataset(images, labels, tf, tuple(f"class{k}" for k in range(num_classes)))


def make_loader(dataset: Dataset, batch_size: int = 128, shuffle: bool = False, seed: int = 0,
                drop_last: bool = False) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      drop_last=drop_last, num_workers=0)


def _missing_files(folder: Path) -> list[str]:
    missing = []
    for name in (*_FILES["train"], *_FILES["test"]):
        if not ((folder / name).is_file() or (folder / f"{name}.gz").is_file()):
            missing.append(name)
    return missing


def _read_pair(folder: Path, which: str) -> tuple[np.ndarray, np.ndarray]:
    image_name, label_name = _FILES[which]
    images = read_idx(_existing(folder, image_name))
    labels = read_idx(_existing(folder, label_name)).astype(np.int64)
    if len(images) != len(labels):
        raise ConfigError(f"{folder}: {len(images)} images but {len(labels)} labels in '{which}'")
    return images, labels


def _existing(folder: Path, name: str) -> Path:
    plain = folder / name
    return plain if plain.is_file() else folder / f"{name}.gz"


def _torchvision_download(target: Path) -> Path:
    from torchvision.datasets import FashionMNIST

    FashionMNIST(str(target), train=True, download=True)
    FashionMNIST(str(target), train=False, download=True)
    raw = target / "FashionMNIST" / "raw"
    if _missing_files(raw):
        raise MissingInputError(f"torchvision download finished but {raw} lacks idx files")
    return raw
