"""Runtimes, looked up by name and imported only when used (DESIGN rule 6).

A runtime turns a model (an nn.Module, or an artifact path) into a Session that runs batches.
"""

from __future__ import annotations

import importlib

from optbench.errors import ConfigError
from optbench.runtime.base import Runtime, Session

_REGISTRY: dict[str, str] = {
    "torch-eager": "optbench.runtime.torch:EagerRuntime",
    "torch-compile": "optbench.runtime.torch:CompileRuntime",
    "onnxruntime": "optbench.runtime.onnx:OrtRuntime",
    "openvino": "optbench.runtime.openvino:OpenVinoRuntime",
}


def runtime_names() -> list[str]:
    return sorted(_REGISTRY)


def get_runtime(name: str) -> Runtime:
    """The runtime registered under `name`; a ConfigError lists the names that exist."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown runtime {name!r}; registered runtimes are {runtime_names()}"
                          ) from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)()


__all__ = ["Runtime", "Session", "get_runtime", "runtime_names"]
