"""Deployable artifacts: a folder holding the model file(s) and `manifest.json`.

The manifest says what the files are (format, architecture for state dicts), what input the
model takes (shape, dtype, the image transform to apply), the class names, the figures the
report measured, and the sha256 of every file. Loading verifies every checksum before anything
is parsed, and never unpickles Python objects (state dicts load with weights_only=True).

    save_artifact(out_dir, name="mnv2-int8", onnx_path="model.onnx", input_shape=(1, 32, 32), ...)
    save_artifact(out_dir, name="mnv2-nncf", ir_path="model.xml", ...)   # OpenVINO IR + .bin
    art = load_artifact("out_dir/manifest.json")    # -> LoadedArtifact, ready to predict
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optbench.config import Config
from optbench.errors import ConfigError, MissingInputError, OptbenchError
from optbench.io import atomic_torch_save, atomic_write_json, sha256_file

SCHEMA = "optbench.artifact/1"
FORMATS = {"onnx": "onnxruntime", "torch-state-dict": "torch-eager",
           "openvino-ir": "openvino"}   # an IR: model.xml + model.bin, parsed, never unpickled
MANIFEST = "manifest.json"


class ArtifactError(OptbenchError, ValueError):
    """An artifact's manifest or files are invalid, changed or corrupted."""


@dataclasses.dataclass(frozen=True)
class Manifest(Config):
    name: str
    format: str
    model_file: str
    files: dict[str, str]                  # relative path -> sha256
    input_shape: tuple[int, ...]           # one item, without the batch axis: (C, H, W)
    input_dtype: str = "float32"
    transform: dict | None = None          # optbench.data.ImageTransform fields, for images
    class_names: tuple[str, ...] = ()
    architecture: dict | None = None       # build_model kwargs, for torch-state-dict
    version: str = "1"
    lineage: tuple[str, ...] = ()
    metrics: dict = dataclasses.field(default_factory=dict)
    created: str = ""
    int8: dict | None = None               # int8 format (optbench.isa), read from the graph
    schema: str = SCHEMA

    @classmethod
    def from_dict(cls, data: dict, source: str = "manifest") -> Manifest:
        if not isinstance(data, dict):
            raise ArtifactError(f"{source}: a manifest is a JSON object, got {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise ArtifactError(f"{source}: schema is {data.get('schema')!r}, expected {SCHEMA!r};"
                                " re-create the artifact with optbench.artifact.save_artifact")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING and f.name not in data)
        if missing:
            raise ArtifactError(f"{source}: missing fields {missing}")
        if data["format"] not in FORMATS:
            raise ArtifactError(f"{source}: format {data['format']!r} is not one of "
                                f"{sorted(FORMATS)}")
        try:  # unknown fields and list -> tuple conversion: the shared Config mechanism
            return super().from_dict(data)
        except ConfigError as exc:
            raise ArtifactError(f"{source}: {exc}") from None

    @property
    def runtime(self) -> str:
        return FORMATS[self.format]


def save_artifact(out_dir: str | os.PathLike, *, name: str, input_shape: tuple[int, ...],
                  onnx_path: str | os.PathLike | None = None,
                  state_dict: dict | None = None, architecture: dict | None = None,
                  ir_path: str | os.PathLike | None = None,
                  transform: Any = None, class_names: tuple[str, ...] = (),
                  metrics: dict | None = None, lineage: tuple[str, ...] = (),
                  version: str = "1", int8: dict | None = None) -> Path:
    """Write an artifact folder (model file + manifest.json) and return the manifest's path.
    Give one of: an ONNX file, an OpenVINO IR (.xml, its .bin beside it), or a state dict plus
    the `architecture` (build_model kwargs).
    An ONNX file's int8 weight format is read from the graph (optbench.isa.onnx_int8_mode);
    `int8` (a variant's info["int8_mode"]) adds which CPU kind it was chosen for."""
    out = Path(out_dir)
    if sum(x is not None for x in (onnx_path, state_dict, ir_path)) != 1:
        raise ConfigError("save_artifact needs exactly one of onnx_path, ir_path or state_dict")
    out.mkdir(parents=True, exist_ok=True)
    files = []
    if ir_path is not None:
        fmt, model_file = "openvino-ir", "model.xml"
        ir_path = Path(ir_path)
        _copy_atomic(ir_path.with_suffix(".bin"), out / "model.bin")
        _copy_atomic(ir_path, out / model_file)
        files = ["model.bin"]
    elif onnx_path is not None:
        from optbench.isa import onnx_int8_mode

        fmt, model_file = "onnx", "model.onnx"
        _copy_atomic(Path(onnx_path), out / model_file)
        found = onnx_int8_mode(out / model_file)
        int8 = {**found, **{k: v for k, v in (int8 or {}).items() if k == "chosen_for"},
                "declared": (int8 or {}).get("reason", "")} if found else None
    else:
        if not architecture or "name" not in architecture:
            raise ConfigError("a state-dict artifact needs architecture={'name': <model zoo "
                              "name>, ...build_model kwargs}, so it can be rebuilt without "
                              "unpickling code")
        fmt, model_file = "torch-state-dict", "model.pt"
        atomic_torch_save(out / model_file, state_dict)
    if hasattr(transform, "to_dict"):
        transform = transform.to_dict()
    manifest = Manifest(
        name=name, format=fmt, model_file=model_file,
        files={f: sha256_file(out / f) for f in (model_file, *files)},
        input_shape=tuple(int(s) for s in input_shape), transform=transform,
        class_names=tuple(class_names), architecture=architecture, version=str(version),
        lineage=tuple(lineage), metrics=dict(metrics or {}),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        int8=int8 if fmt in ("onnx", "openvino-ir") else None)
    return atomic_write_json(out / MANIFEST, manifest.to_dict())


def read_manifest(path: str | os.PathLike) -> tuple[Manifest, Path]:
    """Parse and verify a manifest (or the folder holding one): every file's sha256 must match."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise MissingInputError(f"artifact manifest not found: {path}; pass the manifest.json "
                                "written by save_artifact, or its folder")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc})") from None
    manifest = Manifest.from_dict(data, source=str(path))
    root = path.parent.resolve()
    if manifest.model_file not in manifest.files:
        raise ArtifactError(f"{path}: model_file {manifest.model_file!r} has no checksum in files")
    for rel, expected in manifest.files.items():
        _verify(root, rel, expected, path)
    return manifest, root


def _verify(root: Path, rel: str, expected: str, manifest_path: Path) -> None:
    file = (root / rel).resolve()
    if root not in file.parents:
        raise ArtifactError(f"{manifest_path}: file {rel!r} lies outside the artifact folder")
    if not file.is_file():
        raise MissingInputError(f"{manifest_path}: file {rel!r} is missing from {root}")
    actual = sha256_file(file)
    if actual != expected:
        raise ArtifactError(f"checksum mismatch for {file}: the manifest says sha256 "
                            f"{expected[:16]}..., the file has {actual[:16]}...; the file was "
                            "changed or corrupted since export. Re-export the artifact.")


@dataclasses.dataclass
class LoadedArtifact:
    """A verified artifact with a runtime session, ready to predict."""

    manifest: Manifest
    root: Path
    session: Any

    def predict(self, batch: torch.Tensor) -> np.ndarray:
        """Logits for a batch of preprocessed inputs (N, *input_shape)."""
        from optbench.runtime.base import predict

        return predict(self.session, batch)

    def preprocess_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images, grey (N, H, W) or colour (N, H, W, 3) as the manifest's transform says
        (its `rgb`), -> the model's input."""
        from optbench.data import ImageTransform

        if self.manifest.transform is None:
            raise ArtifactError(f"artifact {self.manifest.name!r} declares no image transform; "
                                "send tensors instead of images")
        return ImageTransform.from_dict(self.manifest.transform)(images)


def load_artifact(path: str | os.PathLike, *, threads: int = 0,
                  device: str = "cpu") -> LoadedArtifact:
    """Verify checksums, then load the model into its runtime (onnxruntime, openvino or torch
    eager)."""
    from optbench.runtime import get_runtime

    manifest, root = read_manifest(path)
    model_path = root / manifest.model_file
    example = torch.zeros((1, *manifest.input_shape), dtype=getattr(torch, manifest.input_dtype))
    if manifest.format in ("onnx", "openvino-ir"):   # the .bin was verified with the .xml
        model: Any = model_path
    else:
        model = _state_dict_model(manifest, model_path)
    session = get_runtime(manifest.runtime).load(model, example=example, device=device,
                                                 threads=threads)
    return LoadedArtifact(manifest, root, session)


def _state_dict_model(manifest: Manifest, path: Path) -> torch.nn.Module:
    from optbench.io import safe_torch_load
    from optbench.models import build_model

    kwargs = dict(manifest.architecture or {})
    model = build_model(kwargs.pop("name"), **kwargs)
    try:
        model.load_state_dict(safe_torch_load(path))
    except RuntimeError as exc:
        raise ArtifactError(f"{path} does not fit architecture {manifest.architecture}: "
                            f"{str(exc).splitlines()[0]}") from None
    return model.eval()


def _copy_atomic(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise MissingInputError(f"file to package not found: {src}")
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def package_model(model_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                  input_shape: tuple[int, ...], class_names: tuple[str, ...],
                  name: str | None = None, arch: str | None = None, small_input: bool = False,
                  image_transform: bool = True, version: str = "1") -> Path:
    """An artifact from a model of the user's own: an .onnx file, or a state dict / optbench
    checkpoint together with `arch` (a zoo name). A state dict is loaded back before the
    manifest is returned, which proves its weights fit the architecture before anyone serves
    it. Returns the manifest's path."""
    if len(input_shape) != 3:
        raise ConfigError(f"input_shape is one item's C,H,W, got {input_shape}")
    if len(class_names) < 2:
        raise ConfigError(f"a classifier needs at least two class names, got {class_names}")
    transform = None
    if image_transform:
        from optbench.data import ImageTransform

        if input_shape[1] != input_shape[2]:
            raise ConfigError("image uploads are resized to a square; for a non-square input "
                              "package without the image transform (image_transform=False; "
                              "CLI: --no-image-transform), taking tensors only")
        transform = ImageTransform(size=input_shape[1], channels=input_shape[0])
    src = Path(model_path)
    kwargs = dict(name=name or src.stem, input_shape=tuple(input_shape), transform=transform,
                  class_names=tuple(class_names), version=version)
    if src.suffix == ".onnx":
        return save_artifact(out_dir, onnx_path=src, **kwargs)
    if not arch:
        raise ConfigError(f"{src} is not an .onnx file; for a state dict give the architecture "
                          "(a zoo name, e.g. mobilenet_v2)")
    from optbench.io import load_weights

    architecture = {"name": arch, "num_classes": len(class_names),
                    "in_channels": input_shape[0], "small_input": small_input}
    path = save_artifact(out_dir, state_dict=load_weights(src), architecture=architecture,
                         **kwargs)
    load_artifact(path)
    return path
