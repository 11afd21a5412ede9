"""Export a torch model to ONNX (fp32), with a dynamic batch axis and the checker run."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch

from optbench.errors import ConfigError

DEFAULT_OPSET = 18


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str | os.PathLike,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Export `model` (left untouched) to `path`; returns the path. Checks the graph with onnx."""
    import onnx

    if example.dim() < 2:
        raise ConfigError(f"example input needs a batch axis, got shape {tuple(example.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = copy.deepcopy(model).eval().cpu()
    dynamic_shapes = ({"x": {0: torch.export.Dim("batch", min=1, max=4096)}}
                      if dynamic_batch else None)
    tmp = path.with_name(path.name + ".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _Named(module), (example.cpu(),), dynamo=True, opset_version=opset,
            dynamic_shapes=dynamic_shapes, verbose=False, input_names=["input"],
            output_names=["logits"])
        program.save(str(tmp), external_data=_too_big_for_protobuf(module))
    onnx.checker.check_model(str(tmp))
    os.replace(tmp, path)
    return path


class _Named(torch.nn.Module):
    """Gives the input a fixed name ('x') so dynamic_shapes can address it."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)


def _too_big_for_protobuf(module: torch.nn.Module) -> bool:
    total = sum(p.numel() * p.element_size() for p in module.state_dict().values())
    return total > 1_800_000_000
