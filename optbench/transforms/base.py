"""Methods as data: a frozen config class plus a handler registered for it (DESIGN rule 1).

    variant = optimize(model, UnstructuredPruneConfig(ratio=0.5), ctx)

A handler never mutates its input; it returns a Variant: a torch module and/or an ONNX file,
the runtimes it is meant for, its lineage, and an `info` dict (method reports, warnings, facts
the diagnosis reads).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from optbench.config import Config
from optbench.errors import ConfigError, MissingInputError

Handler = Callable[["Variant", Any, "Context"], "Variant"]
_HANDLERS: dict[type, Handler] = {}
_METHODS: dict[str, type] = {}


@dataclasses.dataclass
class Context:
    """What methods may need besides the model. Datasets yield (image, label) pairs."""

    example_input: torch.Tensor | None = None   # one batch (batch >= 2 for export-based methods)
    calib_data: Any = None       # PTQ calibration (real data, e.g. a training subset)
    train_data: Any = None       # fine-tuning, QAT, distillation
    val_data: Any = None         # parity checks, accuracy budgets
    teacher: nn.Module | None = None
    workdir: Path = Path("runs/tmp")
    device: str = "cpu"
    progress: bool = True
    step: str = ""               # the pipeline step being run (names its files)
    onnx_cache: dict = dataclasses.field(default_factory=dict)  # id(model) -> fp32 ONNX path

    def __post_init__(self):
        self.workdir = Path(self.workdir)

    def require(self, field: str, method: str) -> Any:
        value = getattr(self, field)
        if value is None:
            raise MissingInputError(f"method {method!r} needs Context.{field}; pass it, e.g. "
                                    f"Context({field}=...)")
        return value

    def file(self, parent: Variant, suffix: str) -> Path:
        """A path in workdir for this step's files (checkpoints, ONNX), unique per step."""
        stem = self.step or "-".join(parent.lineage) or parent.name
        return self.workdir / f"{stem}-{suffix}"

    def fp32_onnx(self, parent: Variant, opset: int) -> Path:
        """The parent's fp32 ONNX file: its own if it is one, else exported once and reused."""
        if parent.onnx_path is not None and not parent.info.get("int8"):
            return Path(parent.onnx_path)
        model = require_module(parent, "onnx export")
        key = (id(model), opset)
        if key not in self.onnx_cache or not self.onnx_cache[key].is_file():
            from optbench.transforms.export import export_onnx

            self.onnx_cache[key] = export_onnx(model, self.example(2),
                                               self.file(parent, "fp32.onnx"), opset=opset)
        return self.onnx_cache[key]

    def example(self, batch: int = 2) -> torch.Tensor:
        x = self.require("example_input", "export")
        if len(x) >= batch:
            return x[:batch]
        return x.repeat(batch // len(x) + 1, *([1] * (x.dim() - 1)))[:batch]


@dataclasses.dataclass
class Variant:
    """One optimized (or baseline) version of a model."""

    name: str
    model: nn.Module | None = None
    onnx_path: Path | None = None
    runtimes: tuple[str, ...] = ("torch-eager", "torch-compile")
    lineage: tuple[str, ...] = ()
    info: dict = dataclasses.field(default_factory=dict)

    def artifact(self, runtime_accepts: str):
        return self.onnx_path if runtime_accepts == "onnx" else self.model

    def artifact_for(self, runtime: str):
        """What `runtime` loads of this variant: the ONNX file or the module."""
        from optbench.runtime import get_runtime

        return self.artifact(get_runtime(runtime).accepts)

    def derive(self, name: str, **changes) -> Variant:
        """A child variant: lineage extended, info started afresh unless given."""
        base = dict(name=name, model=None, onnx_path=None, runtimes=self.runtimes,
                    lineage=(*self.lineage, name), info={})
        base.update(changes)
        return Variant(**base)


def register(config_cls: type) -> Callable[[Handler], Handler]:
    """Register `handler` for `config_cls`; its `method` class attribute names it in recipes."""
    def decorator(handler: Handler) -> Handler:
        _HANDLERS[config_cls] = handler
        _METHODS[config_cls.method] = config_cls
        return handler
    return decorator


def method_names() -> list[str]:
    _load_builtin_methods()
    return sorted(_METHODS)


def config_from_dict(data: dict) -> Config:
    """{'method': 'prune-l1', ...fields} -> the registered config; errors list what exists."""
    _load_builtin_methods()
    data = dict(data)
    method = data.pop("method", None)
    if method not in _METHODS:
        raise ConfigError(f"unknown method {method!r}; registered methods are {method_names()}")
    return _METHODS[method].from_dict(data)


def config_to_dict(config: Config) -> dict:
    return {"method": type(config).method, **config.to_dict()}


def optimize(model: nn.Module | Variant, config: Config, ctx: Context | None = None,
             name: str | None = None) -> Variant:
    """Apply one method. `model` is left untouched; the result is a new Variant."""
    _load_builtin_methods()
    handler = _HANDLERS.get(type(config))
    if handler is None:
        raise ConfigError(f"no handler registered for {type(config).__name__}; registered "
                          f"methods are {method_names()}")
    parent = model if isinstance(model, Variant) else Variant("input", model=model)
    ctx = ctx or Context()
    Path(ctx.workdir).mkdir(parents=True, exist_ok=True)
    variant = handler(parent, config, ctx)
    if name:
        variant.name = name
        variant.lineage = (*parent.lineage, name)
    variant.info.setdefault("method", type(config).method)
    variant.info.setdefault("config", config.to_dict())
    return variant


def require_module(variant: Variant, method: str) -> nn.Module:
    if variant.model is None:
        raise ConfigError(f"method {method!r} needs a torch model, but variant {variant.name!r} "
                          "is only an ONNX file; apply it before exporting")
    return variant.model


def _load_builtin_methods() -> None:
    # importing the modules registers their handlers
    from optbench.transforms import (  # noqa: F401
        distill,
        export,
        finetune,
        precision,
        prune,
        qat,
        quantize,
    )
