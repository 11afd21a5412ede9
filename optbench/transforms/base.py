"""Methods as data: a frozen config class plus a handler registered for it (DESIGN rule 1).

This module holds what the method modules build on (Context, Variant, the registry they
register into); optbench.transforms (the package) imports every method module and offers
`optimize`, `config_from_dict`, `method_names`:

    variant = optimize(model, UnstructuredPruneConfig(ratio=0.5), ctx)

A handler never mutates its input; it returns a Variant: a torch module and/or an ONNX file,
the runtimes it is meant for, its lineage, and an `info` dict (method reports, warnings, facts
the diagnosis reads).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from optbench.errors import ConfigError, MissingInputError
from optbench.results import VariantFacts

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
    teacher: nn.Module | Variant | None = None   # a module, or a variant (a recipe step's)
    workdir: Path = Path("runs/tmp")
    device: str = "cpu"
    progress: bool = True
    step: str = ""               # the pipeline step being run (names its files)
    # model -> {opset: its fp32 ONNX file}; weak keys, so a freed model's id cannot alias
    onnx_cache: weakref.WeakKeyDictionary = dataclasses.field(
        default_factory=weakref.WeakKeyDictionary)

    def __post_init__(self):
        self.workdir = Path(self.workdir)

    def for_step(self, step: str, **changes) -> Context:
        """A copy for one step (its name, e.g. its teacher); data and the ONNX cache are shared,
        this context is left as it was."""
        return dataclasses.replace(self, step=step, **changes)

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
    ir_path: Path | None = None          # an OpenVINO IR (.xml, its .bin beside it)
    runtimes: tuple[str, ...] = ("torch-eager", "torch-compile")
    lineage: tuple[str, ...] = ()
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def facts(self) -> VariantFacts:
        """The typed reading of `info`: what the diagnosis, report and artifact use."""
        return VariantFacts.from_info(self.info)

    def artifact(self, runtime_accepts: str):
        """What a runtime that accepts `runtime_accepts` loads of this variant."""
        if runtime_accepts == "onnx":
            return self.onnx_path
        if runtime_accepts == "openvino":   # OpenVINO reads all three
            return self.ir_path or self.onnx_path or self.model
        return self.model

    def artifact_for(self, runtime: str):
        """What `runtime` loads of this variant: its IR, its ONNX file or its module."""
        from optbench.runtime import get_runtime

        return self.artifact(get_runtime(runtime).accepts)

    def derive(self, name: str, **changes) -> Variant:
        """A child variant: lineage extended, info started afresh unless given."""
        base = dict(name=name, model=None, onnx_path=None, ir_path=None, runtimes=self.runtimes,
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


def require_module(variant: Variant, method: str) -> nn.Module:
    if variant.model is None:
        raise ConfigError(f"method {method!r} needs a torch model, but variant {variant.name!r} "
                          "is only an ONNX file; apply it before exporting, or use a method "
                          f"that works on ONNX ({', '.join(onnx_methods())})")
    return variant.model


def onnx_methods() -> list[str]:
    """The methods that accept an ONNX file as their input (config class `takes_onnx`)."""
    return sorted(name for name, cls in _METHODS.items() if getattr(cls, "takes_onnx", False))
