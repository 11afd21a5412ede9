"""Write real images as an image-folder dataset (and/or an .npz file), for the example recipes
recipes/your_image_folder.toml and recipes/your_npz.toml.

The images are Fashion-MNIST's 10,000 test images (the Debian package dataset-fashion-mnist, or
$OPTBENCH_DATA_DIR), written as PNG files in one folder per class name, the layout of
torchvision's ImageFolder. optbench then reads them back like any user's folder: it splits them
with the recipe's seed, takes the class names from the folders and computes the normalization
from the training split.

    python scripts/make_image_folder.py --out runs/fashion-png [--npz runs/fashion.npz]

Writes to a temporary folder first and renames it, so an interrupted run leaves nothing half
written; an existing complete folder is kept (delete it to write it again).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/fashion-png", help="the image folder to write")
    parser.add_argument("--npz", default="", help="also write the images as this .npz file")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    args = parser.parse_args(argv)
    from PIL import Image

    from optbench.data import FASHION_CLASSES, load_fashion_mnist

    test = load_fashion_mnist("test", download=False)
    n = args.limit or len(test)
    images, labels = test.images[:n].numpy(), test.labels[:n].numpy()
    names = [c.replace("/", "-").replace(" ", "-").lower() for c in FASHION_CLASSES]
    out = Path(args.out)
    if out.is_dir():
        print(f"{out} exists; kept (delete it to write it again)")
    else:
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for name in names:
            (tmp / name).mkdir(parents=True)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            Image.fromarray(image).save(tmp / names[label] / f"{i:05d}.png")
        os.replace(tmp, out)
        print(f"wrote {n} PNG images in {len(names)} class folders under {out}")
    if args.npz:
        npz = Path(args.npz)
        tmp = npz.with_name(f".{npz.stem}.tmp.npz")
        np.savez_compressed(tmp, x=images, y=labels, classes=np.array(names))
        os.replace(tmp, npz)
        print(f"wrote {npz}: x {images.shape} uint8, y, classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
