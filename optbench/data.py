"""Datasets: Fashion-MNIST from local files (or torchvision's download), your own images (an
.npz file, an image folder, or any Dataset your code returns), and synthetic data. Grey and
colour (RGB) images are held as uint8 and prepared by an ImageTransform that artifacts record.

Lookup order for Fashion-MNIST's idx files: (a) the directory the caller names, (b) the
OPTBENCH_DATA_DIR environment variable, (c) the Debian package's /usr/share/datasets/fashion-mnist,
(d) torchvision's download. If none works, one error lists all four and how to get each.
"""

from __future__ import annotations

import dataclasses
import functools
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
    """uint8 images -> float CxSxS tensors: scale to [0,1], resize, normalize, match channels.

    Grey images (rgb=False) are (H, W) or a batch (N, H, W); colour images (rgb=True) are
    (H, W, 3) or (N, H, W, 3). `mean`/`std` are one value, or one per colour channel. Grey
    images given to a 3-channel model are repeated across the channels; colour images need a
    3-channel model."""

    size: int = 28
    channels: int = 1
    mean: float | tuple[float, ...] = FASHION_MEAN
    std: float | tuple[float, ...] = FASHION_STD
    rgb: bool = False

    def __post_init__(self):
        check_positive("ImageTransform", size=self.size)
        check_choice("ImageTransform", "channels", self.channels, (1, 3))
        if self.rgb and self.channels != 3:
            raise ConfigError("colour images need a 3-channel model: set channels = 3 (or "
                              "convert the images to grayscale)")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                value = tuple(float(v) for v in value)
                if len(value) not in (1, 3 if self.rgb else 1):
                    raise ConfigError(f"ImageTransform.{name} has {len(value)} values; give one, "
                                      f"or one per colour channel ({3 if self.rgb else 1})")
                object.__setattr__(self, name, value[0] if len(value) == 1 else value)
        check_positive("ImageTransform", **{f"std[{i}]": v for i, v in
                                            enumerate(_as_tuple(self.std))})

    def normalization(self) -> tuple[float | torch.Tensor, float | torch.Tensor]:
        """(mean, std) to apply to a (N, C, H, W) pixel batch in [0, 1]: floats, or (1, 3, 1, 1)
        tensors for per-channel values (made once: this runs per item and per request)."""
        return self._normalization

    @functools.cached_property
    def _normalization(self):
        def shaped(value):
            return value if isinstance(value, float) else torch.tensor(value).view(1, -1, 1, 1)

        return shaped(self.mean), shaped(self.std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """One uint8 image or a batch (shapes in the class doc) -> (C, S, S) or (N, C, S, S)."""
        single = images.dim() == (3 if self.rgb else 2)
        x = images.unsqueeze(0) if single else images
        if self.rgb:
            if x.dim() != 4 or x.shape[-1] != 3:
                raise ConfigError(f"colour images must be (H, W, 3) or (N, H, W, 3) uint8, got "
                                  f"shape {tuple(images.shape)}")
            x = x.permute(0, 3, 1, 2)
        else:
            x = x.unsqueeze(1)
        x = x.float().div_(255.0)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                                align_corners=False)
        mean, std = self.normalization()
        x = (x - mean) / std
        x = x.expand(-1, self.channels, -1, -1).contiguous()
        return x[0] if single else x


def _as_tuple(value) -> tuple[float, ...]:
    return value if isinstance(value, tuple) else (value,)


class ArrayDataset(Dataset):
    """Images held in memory as uint8, grey (N, H, W) or colour (N, H, W, 3), with their labels;
    the transform runs per item."""

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                 transform: ImageTransform | None = None, classes: tuple[str, ...] = ()):
        self.images = torch.as_tensor(images, dtype=torch.uint8)
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        rgb = self.images.dim() == 4
        self.transform = transform or ImageTransform(
            size=self.images.shape[2], channels=3 if rgb else 1, rgb=rgb)
        self.classes = classes or tuple(str(i) for i in range(int(self.labels.max()) + 1))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.labels[index]

    def batch(self, start: int = 0, size: int = 1) -> torch.Tensor:
        """Transformed images[start:start+size] as one tensor (for examples and calibration)."""
        return self.transform(self.images[start:start + size])

    def with_transform(self, transform: ImageTransform) -> ArrayDataset:
        """The same images and labels, prepared by another transform (size, normalization)."""
        return ArrayDataset(self.images, self.labels, transform, self.classes)

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


def load_npz(path: str | os.PathLike, *, size: int | None = None, channels: int = 0,
             val_fraction: float = 0.1, test_fraction: float = 0.2,
             seed: int = 0) -> dict[str, ArrayDataset]:
    """Your own images from an .npz file: arrays `x` (grey N,H,W or N,H,W,1; colour N,H,W,3 or
    N,3,H,W; uint8, or float in [0, 1]) and `y` (integer class ids), split into seeded
    train/val/test; or `x_train`,
    `y_train`, `x_test`, `y_test` (val is then a seeded hold-out of train). Optional `classes`
    (strings) names the classes. Normalization (mean/std) is computed from the training split
    and kept in every split's transform, so artifacts record it. Loaded with
    allow_pickle=False: an array of Python objects is refused, never unpickled."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"npz dataset not found: {path}; set [data] data_dir to the "
                                ".npz file")
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{path} is not a readable .npz file (not a zip archive); write it "
                          "with np.savez(path, x=images, y=labels)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        raise ConfigError(f"{path} holds Python objects ({exc}); save plain numeric arrays, "
                          "e.g. np.savez(path, x=images, y=labels)") from None
    except (OSError, EOFError) as exc:
        raise ConfigError(f"{path} is not a readable .npz file: {exc}") from None
    found = sorted(arrays)
    if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        pairs = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
    elif {"x", "y"} <= set(arrays):
        pairs = {"all": ("x", "y")}
    else:
        raise ConfigError(f"{path} has arrays {found}; an npz dataset needs x and y (images and "
                          "labels), or x_train, y_train, x_test and y_test")
    data = {part: (_npz_images(arrays[xk], f"{path}:{xk}"), _npz_labels(arrays[yk], f"{path}:{yk}"))
            for part, (xk, yk) in pairs.items()}
    for part, (x, y) in data.items():
        if len(x) != len(y):
            raise ConfigError(f"{path}: {pairs[part][0]} has {len(x)} images but {pairs[part][1]} "
                              f"has {len(y)} labels; they must pair one to one")
    labels = np.concatenate([y for _, y in data.values()])
    num_classes = int(labels.max()) + 1 if labels.size else 0
    classes = tuple(str(c) for c in arrays["classes"]) if "classes" in arrays else tuple(
        str(k) for k in range(num_classes))
    if len(classes) < num_classes:
        raise ConfigError(f"{path}: classes names {len(classes)} classes but labels go up to "
                          f"{num_classes - 1}")
    return _splits(data, classes, str(path), size, channels, val_fraction, test_fraction, seed)


def _splits(data: dict, classes: tuple[str, ...], where: str, size: int | None, channels: int,
            val_fraction: float, test_fraction: float, seed: int) -> dict[str, ArrayDataset]:
    """{"all" | "train" [, "val"], "test"}: (uint8 images, labels) -> seeded train/val/test
    ArrayDatasets sharing one transform normalized with the training split's mean/std (per
    channel for colour images). `size`/`channels` None/0: from the data."""
    rng = np.random.default_rng(seed)
    if "all" in data:
        x, y = data.pop("all")
        order = rng.permutation(len(y))
        n_test = int(round(len(y) * test_fraction))
        data["test"] = (x[np.sort(order[:n_test])], y[np.sort(order[:n_test])])
        data["train"] = (x[np.sort(order[n_test:])], y[np.sort(order[n_test:])])
    if "val" not in data:
        x, y = data["train"]
        order = rng.permutation(len(y))
        n_val = int(round(len(y) * val_fraction))
        data["val"] = (x[np.sort(order[:n_val])], y[np.sort(order[:n_val])])
        data["train"] = (x[np.sort(order[n_val:])], y[np.sort(order[n_val:])])
    labels = np.concatenate([y for _, y in data.values()])
    present = np.unique(labels)
    if len(present) < 2:
        raise ConfigError(f"{where}: every label is {classes[int(present[0])]!r}; a classifier "
                          "needs at least two classes")
    for part in ("train", "val", "test"):
        if len(data[part][1]) == 0:
            raise ConfigError(f"{where}: the {part} split is empty ({len(labels)} images in "
                              "all); add images or change val_fraction/test_fraction")
    shapes = {part: data[part][0].shape[1:] for part in ("train", "val", "test")}
    if len({s[2:] for s in shapes.values()}) > 1:
        raise ConfigError(f"{where}: the splits mix grey and colour images {shapes}; give one "
                          "kind (convert the grey ones to RGB, or all to grayscale)")
    rgb = data["train"][0].ndim == 4
    if rgb and channels == 1:
        raise ConfigError(f"{where} holds colour images but channels = 1; set [data] channels "
                          "= 3 (or leave it out: it follows the data), or convert the images "
                          "to grayscale")
    height, width = shapes["train"][:2]
    if not size and (height != width or len({s[:2] for s in shapes.values()}) > 1):
        raise ConfigError(f"{where}: images are {sorted({s[:2] for s in shapes.values()})} "
                          "(height, width); set [data] image_size to resize them to one square "
                          "size")
    train_x = data["train"][0].astype(np.float32) / 255.0
    axes = (0, 1, 2) if rgb else None
    mean, std = train_x.mean(axis=axes), train_x.std(axis=axes)
    if np.any(std <= 0):
        raise ConfigError(f"{where}: every training pixel (of a channel) is the same value; the "
                          "images carry no signal")

    def rounded(v):
        return tuple(round(float(c), 4) for c in v) if rgb else round(float(v), 4)

    transform = ImageTransform(size=size or int(width), channels=channels or (3 if rgb else 1),
                               mean=rounded(mean), std=rounded(std), rgb=rgb)
    return {part: ArrayDataset(data[part][0], data[part][1], transform, classes)
            for part in ("train", "val", "test")}


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_image_folder(root: str | os.PathLike, *, size: int | None = None, channels: int = 0,
                      val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                      skip_corrupt: bool = False) -> dict[str, ArrayDataset]:
    """Your own images in torchvision's ImageFolder layout: ROOT/<class>/<image> (split with a
    seed), or ROOT/train/<class>/..., ROOT/test/<class>/... and optionally ROOT/val/<class>/....
    PNG/JPEG/BMP, grey or colour: if any image has colour the dataset is RGB (grey images are
    repeated across the channels), otherwise grey (RGB files whose channels are equal count as
    grey). Every image is resized to `size` (without it all must share one square size).
    Class names are the folder names; normalization comes from the training split. A file that
    cannot be read is an error naming it, or skipped with a warning listing it
    (skip_corrupt=True; in a recipe [data] skip_corrupt = true)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingInputError(f"image folder not found: {root}; set [data] data_dir to a "
                                "folder with one sub-folder per class")
    parts = {p: root / p for p in ("train", "val", "test") if (root / p).is_dir()}
    if parts and not {"train", "test"} <= set(parts):
        raise ConfigError(f"{root} has {sorted(parts)} but not both train/ and test/; give "
                          "train/ and test/ (val/ optional), or one folder per class")
    layout = parts or {"all": root}
    class_dirs = sorted(d.name for d in (layout.get("train") or root).iterdir() if d.is_dir())
    if not class_dirs:
        files = sum(1 for f in root.rglob("*") if f.is_file())
        raise ConfigError(f"{layout.get('train') or root} has no class sub-folders ({files} "
                          "files found); put each class's images in a folder named after it")
    index = {name: k for k, name in enumerate(class_dirs)}
    skipped: list[str] = []
    data = {}
    for part, folder in layout.items():
        images, labels = [], []
        for name in sorted(d.name for d in folder.iterdir() if d.is_dir()):
            if name not in index:
                raise ConfigError(f"{folder / name} is a class the training folder does not "
                                  f"have; classes are {class_dirs}")
            files = sorted(f for f in (folder / name).iterdir()
                           if f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ConfigError(f"class folder {folder / name} holds no images "
                                  f"({', '.join(IMAGE_SUFFIXES)})")
            for file in files:
                image = _read_image(file, size, skip_corrupt)
                if image is None:
                    skipped.append(str(file))
                    continue
                images.append(image)
                labels.append(index[name])
        data[part] = (stack_images(images, str(folder)), np.asarray(labels, dtype=np.int64))
    if skipped:
        import warnings

        warnings.warn(f"skipped {len(skipped)} unreadable image file(s) under {root}: "
                      f"{', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}",
                      stacklevel=2)
    _same_kind(data, str(root))
    return _splits(data, tuple(class_dirs), str(root), size, channels, val_fraction,
                   test_fraction, seed)


def stack_images(images: list[np.ndarray], where: str) -> np.ndarray:
    """uint8 images, grey (H, W) and/or colour (H, W, 3), of one size -> one array: grey
    (N, H, W) if all are grey, else colour (N, H, W, 3) with the grey ones repeated."""
    if not images:
        return np.zeros((0, 1, 1), np.uint8)
    sizes = sorted({im.shape[:2] for im in images})
    if len(sizes) > 1:
        raise ConfigError(f"{where} holds images of {len(sizes)} sizes (e.g. {sizes[:3]}); set "
                          "[data] image_size to resize them")
    if any(im.ndim == 3 for im in images):
        images = [im if im.ndim == 3 else np.repeat(im[..., None], 3, axis=-1) for im in images]
    return np.stack(images)


def _same_kind(data: dict, where: str) -> None:
    """Colour in any split makes every split colour (grey images repeated)."""
    if any(x.ndim == 4 for x, _ in data.values()):
        for part, (x, y) in data.items():
            if x.ndim == 3 and len(x):
                data[part] = (np.repeat(x[..., None], 3, axis=-1), y)


def _read_image(file: Path, size: int | None, skip_corrupt: bool) -> np.ndarray | None:
    """A grey (H, W) or colour (H, W, 3) uint8 image, resized to size x size if given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as im:
            im.load()
            return pil_to_array(im, size)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        if skip_corrupt:
            return None
        raise ConfigError(f"{file} cannot be read as an image ({type(exc).__name__}: {exc}); "
                          "remove or replace it, or skip such files and list them with "
                          "[data] skip_corrupt = true (API: skip_corrupt=True)") from None


def pil_to_array(im, size: int | None = None) -> np.ndarray:
    """A PIL image -> uint8 grey (H, W), or colour (H, W, 3) unless its channels are equal."""
    from PIL import Image

    if im.mode in ("L", "1", "I;16", "I", "F"):
        out = im.convert("L")
    else:
        out = im.convert("RGB")
        rgb = np.asarray(out)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            out = out.convert("L")
    if size:
        out = out.resize((size, size), Image.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def load_python_dataset(entry: str, *, size: int | None = None, channels: int = 0,
                        val_fraction: float = 0.1, test_fraction: float = 0.2,
                        seed: int = 0) -> dict[str, ArrayDataset]:
    """Any dataset your code builds: `entry` names a function `package.module:function` that
    returns a torch Dataset (split here with a seed like the other sources), a (train, test) or
    (train, val, test) tuple, or a dict with those keys. Items are (image, label) with raw,
    un-normalized images: PIL images, uint8 arrays/tensors (H, W), (H, W, C) or (C, H, W), or
    floats in [0, 1]. optbench computes the normalization from the training split and records it
    in the artifacts, so the server prepares uploads the same way; the data are held in memory.
    Class names come from the dataset's `classes` attribute where it has one."""
    from optbench.config import entry_point

    fn = entry_point(entry, "[data] python dataset")
    try:
        returned = fn()
    except Exception as exc:  # the user's code: say whose failure it is
        raise ConfigError(f"python dataset {entry!r} raised {type(exc).__name__}: {exc}"
                          ) from exc
    if isinstance(returned, dict):
        unknown = set(returned) - set(SPLITS)
        if unknown or not {"train", "test"} <= set(returned):
            raise ConfigError(f"python dataset {entry!r} returned a dict with keys "
                              f"{sorted(returned)}; give train and test (val optional)")
        parts = dict(returned)
    elif isinstance(returned, tuple):             # splits; a list is one dataset of items
        if len(returned) not in (2, 3):
            raise ConfigError(f"python dataset {entry!r} returned {len(returned)} datasets; "
                              "give one, (train, test) or (train, val, test)")
        parts = dict(zip(("train", "test") if len(returned) == 2 else SPLITS, returned,
                         strict=True))
    else:
        parts = {"all": returned}
    classes: tuple[str, ...] = ()
    data = {}
    for part, dataset in parts.items():
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            what = "it returned" if part == "all" else f"its {part} part is"
            raise ConfigError(f"python dataset {entry!r}: {what} a {type(dataset).__name__}, "
                              "not a Dataset (__len__ and __getitem__ returning (image, "
                              "label))")
        images, labels = [], []
        for i in range(len(dataset)):
            where = f"python dataset {entry!r} {'' if part == 'all' else part + ' '}item {i}"
            image, label = _item(dataset[i], where, size)
            images.append(image)
            labels.append(label)
        data[part] = (stack_images(images, f"python dataset {entry!r} {part}"),
                      _npz_labels(np.asarray(labels), f"python dataset {entry!r} {part} labels"))
        classes = classes or tuple(str(c) for c in getattr(dataset, "classes", ()) or ())
    _same_kind(data, entry)
    top = max(int(y.max()) for _, y in data.values() if len(y)) + 1
    if len(classes) < top:
        classes = tuple(str(k) for k in range(top))
    return _splits(data, classes, f"python dataset {entry!r}", size, channels, val_fraction,
                   test_fraction, seed)


def _item(item, where: str, size: int | None) -> tuple[np.ndarray, int]:
    """One (image, label) -> (uint8 grey (H, W) or colour (H, W, 3), int)."""
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise ConfigError(f"{where} is a {type(item).__name__}; items must be (image, label)")
    image, label = item[0], item[1]
    try:
        label = int(label)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: label {label!r} is not an integer class id") from None
    if hasattr(image, "mode") and hasattr(image, "convert"):   # a PIL image
        return pil_to_array(image, size), label
    x = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = np.moveaxis(x, 0, -1)        # (C, H, W) -> (H, W, C)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)):
        raise ConfigError(f"{where}: image of shape {x.shape}; give (H, W), (H, W, C) or "
                          "(C, H, W) with 1 or 3 channels")
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (np.isnan(x).any() or x.min() < 0 or x.max() > 1):
            found = "NaN" if np.isnan(x).any() else f"{x.min():.3g}..{x.max():.3g}"
            raise ConfigError(f"{where}: float pixels must lie in [0, 1] (found {found}). "
                              "Return raw "
                              "images, not normalized ones: optbench normalizes them itself and "
                              "records it, so the server prepares uploads the same way")
        x = np.round(x * 255).astype(np.uint8)
    elif x.dtype != np.uint8:
        raise ConfigError(f"{where}: pixels of dtype {x.dtype}; give uint8 0..255 or float in "
                          "[0, 1]")
    if size and x.shape[:2] != (size, size):
        from PIL import Image

        x = np.asarray(Image.fromarray(x).resize((size, size), Image.BILINEAR), dtype=np.uint8)
    return x, label


def _npz_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    elif x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3:
        x = np.moveaxis(x, 1, -1)                    # (N, 3, H, W) -> (N, H, W, 3)
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)):
        raise ConfigError(f"{where} has shape {x.shape}; images must be grey (N, H, W) or "
                          "(N, H, W, 1), or colour (N, H, W, 3) or (N, 3, H, W)")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
            found = "NaN" if np.isnan(x).any() else f"{x.min():.3g}..{x.max():.3g}"
            raise ConfigError(f"{where}: float images must lie in [0, 1] (found {found}); "
                              "scale them, or save uint8 0..255")
        return np.round(x * 255).astype(np.uint8)
    raise ConfigError(f"{where} has dtype {x.dtype}; images must be uint8 (0..255) or float "
                      "in [0, 1]")


def _npz_labels(y: np.ndarray, where: str) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"{where} must be a 1-D array of integer class ids, got shape "
                          f"{y.shape} dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ConfigError(f"{where} has negative class ids (min {y.min()}); use 0..K-1")
    return y.astype(np.int64)


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
