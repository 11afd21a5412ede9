"""Atomic writes and safe loads: a crash never leaves a half-written result or checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable))


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def safe_torch_load(path: str | os.PathLike) -> Any:
    """torch.load that never unpickles arbitrary objects (weights_only=True)."""
    import pickle

    import torch

    from optbench.errors import ConfigError, MissingInputError

    if not Path(path).is_file():
        raise MissingInputError(f"checkpoint not found: {path}; check the path")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ConfigError(
            f"refusing to load {path}: it holds Python objects beyond tensors and plain "
            f"containers, and unpickling them could run code ({str(exc).splitlines()[0]}). "
            "Save a state_dict (torch.save(model.state_dict(), path)) instead.") from None


def load_weights(path: str | os.PathLike) -> Any:
    """A state dict from a file: a plain state dict, or the "model" entry of an optbench
    training checkpoint. Loaded with weights_only=True."""
    state = safe_torch_load(path)
    return state.get("model", state) if isinstance(state, dict) else state


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__} to JSON")


def load_array(path: str | os.PathLike):
    """A numpy array from a .npy file, or the first array of a .npz; never unpickles."""
    import numpy as np

    from optbench.errors import ConfigError, MissingInputError

    p = Path(path)
    if p.suffix not in (".npy", ".npz"):
        raise ConfigError(f"{path}: expected a .npy or .npz array (images N,C,H,W / N,H,W or "
                          "rows N,F)")
    if not p.is_file():
        raise MissingInputError(f"array not found: {path}")
    data = np.load(p, allow_pickle=False)  # never unpickle
    if p.suffix == ".npz":
        data = data[data.files[0]]
    return data
