"""Methods that make a new variant from a model (prune, quantize, distill, export).

    from optbench.transforms import optimize, config_from_dict
    variant = optimize(model, config_from_dict({"method": "ptq-pt2e"}), ctx)

Importing this package imports every method module, which registers its handlers
(transforms.base holds the registry and the Context/Variant they build on, and imports none of
them: no import cycle).
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from optbench.config import Config
from optbench.errors import ConfigError
from optbench.transforms import (  # noqa: F401  (imported to register their handlers)
    distill,
    export,
    finetune,
    precision,
    prune,
    qat,
    quantize,
    quantize_nncf,
    quantize_ort,
)
from optbench.transforms.base import _HANDLERS, _METHODS, Context, Variant

__all__ = ["Context", "Variant", "config_from_dict", "config_to_dict", "method_names",
           "optimize"]


def method_names() -> list[str]:
    return sorted(_METHODS)


def config_from_dict(data: dict) -> Config:
    """{'method': 'prune-l1', ...fields} -> the registered config; errors list what exists."""
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
