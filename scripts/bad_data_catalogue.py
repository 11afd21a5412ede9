"""The bad-data catalogue of docs/your_data.md: each case is built in a temporary folder, loaded
the way a recipe loads it, and the error optbench gives is printed as a Markdown table row.

    .venv/bin/python scripts/bad_data_catalogue.py > /tmp/catalogue.md
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from optbench.data import load_image_folder, load_npz, load_python_dataset
from optbench.errors import OptbenchError


def _folder(root: Path, classes=("coat", "bag"), n=6, size=(12, 12), colour=False) -> Path:
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shape = (*size, 3) if colour else size
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def cases(tmp: Path):
    def folder(name, **kw):
        return _folder(tmp / name, **kw)

    def npz(name, **arrays):
        np.savez(tmp / f"{name}.npz", **arrays)
        return tmp / f"{name}.npz"

    x = np.random.default_rng(0).integers(0, 255, (40, 12, 12), dtype=np.uint8)
    y = np.arange(40) % 2
    yield "image folder: missing", lambda: load_image_folder(tmp / "nowhere")
    (tmp / "empty").mkdir()
    (tmp / "empty" / "notes.txt").write_text("x")
    yield "image folder: no class folders", lambda: load_image_folder(tmp / "empty")
    yield "image folder: one class", lambda: load_image_folder(folder("one", classes=("coat",)))
    root = folder("emptyclass")
    (root / "shirt").mkdir()
    yield "image folder: an empty class folder", lambda: load_image_folder(root)
    root = folder("corrupt")
    (root / "coat" / "broken.png").write_bytes(b"\x89PNG not really")
    yield "image folder: a corrupt file", lambda: load_image_folder(root)
    root = folder("mixed")
    _folder(root, classes=("coat",), n=1, size=(20, 20))
    yield "image folder: mixed sizes, no image_size", lambda: load_image_folder(root)
    yield ("image folder: non-square images, no image_size",
           lambda: load_image_folder(folder("wide", size=(12, 20))))
    yield ("image folder: colour images, channels = 1",
           lambda: load_image_folder(folder("colour", colour=True), channels=1))
    root = tmp / "trainonly"
    _folder(root / "train")
    yield "image folder: train/ without test/", lambda: load_image_folder(root)
    root = tmp / "unknown"
    _folder(root / "train")
    _folder(root / "test", classes=("shirt",))
    yield "image folder: a test class train lacks", lambda: load_image_folder(root)
    yield "npz: arrays not named x/y", lambda: load_npz(npz("names", images=x, labels=y))
    yield "npz: 2-channel images", lambda: load_npz(npz("two", x=np.stack([x, x], -1), y=y))
    yield ("npz: floats outside [0, 1]",
           lambda: load_npz(npz("range", x=x.astype(np.float32), y=y)))
    yield "npz: int32 pixels", lambda: load_npz(npz("int32", x=x.astype(np.int32), y=y))
    yield "npz: one label short", lambda: load_npz(npz("short", x=x, y=y[:-1]))
    yield "npz: float labels", lambda: load_npz(npz("flabels", x=x, y=y.astype(float)))
    yield "npz: negative labels", lambda: load_npz(npz("neg", x=x, y=y - 1))
    yield "npz: one class", lambda: load_npz(npz("oneclass", x=x, y=np.zeros_like(y)))
    yield ("npz: Python objects inside",
           lambda: load_npz(npz("objects", x=np.array([{"a": 1}] * 40, dtype=object), y=y)))
    (tmp / "notzip.npz").write_bytes(b"hello")
    yield "npz: not an npz file", lambda: load_npz(tmp / "notzip.npz")
    (tmp / "bad_module.py").write_text(textwrap.dedent('''
        import numpy as np
        def normalized():
            return [(np.full((8, 8), -0.5, np.float32), i % 2) for i in range(20)]
        def not_a_dataset():
            return 42
        def broken():
            raise RuntimeError("no data today")
    '''))
    sys.path.insert(0, str(tmp))
    yield ("python: normalized floats",
           lambda: load_python_dataset("bad_module:normalized"))
    yield "python: not a Dataset", lambda: load_python_dataset("bad_module:not_a_dataset")
    yield "python: the function raises", lambda: load_python_dataset("bad_module:broken")
    yield "python: no such module", lambda: load_python_dataset("no_such_module:data")


def main() -> int:
    print("| case | error |\n|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, load in cases(Path(tmp)):
            try:
                load()
                message = "(no error: a bug)"
            except OptbenchError as exc:
                message = f"{type(exc).__name__}: {exc}".replace(tmp, "TMP")
            print(f"| {name} | {message.replace('|', '/')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
