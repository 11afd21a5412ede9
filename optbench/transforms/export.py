"""Export a torch model to ONNX (fp32), with a dynamic batch axis and the checker run."""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from optbench.config import Config
from optbench.errors import ConfigError, OptbenchError
from optbench.transforms.base import Context, Variant, register, require_module

DEFAULT_OPSET = 18


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: str | os.PathLike,
                opset: int = DEFAULT_OPSET, dynamic_batch: bool = True) -> Path:
    """Export `model` (left untouched) to `path`; returns the path. Checks the graph with onnx."""
    import onnx

    if example.dim() < 2:
        raise ConfigError(f"example input needs a batch axis, got shape {tuple(example.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = out_of_place(copy.deepcopy(model).eval().cpu())
    dynamic_shapes = ({"x": {0: torch.export.Dim("batch", min=1, max=4096)}}
                      if dynamic_batch else None)
    # a name of this process's own: side-by-side workers (run --jobs) may export the same file
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.onnx")
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


def out_of_place(module: torch.nn.Module) -> torch.nn.Module:
    """`module` (changed in place) with its activations' `inplace` flags off: the same graph in
    ONNX, exported in half the time for MobileNetV2, whose in-place ReLU6 (hardtanh_) under a
    dynamic batch axis costs the exporter's decomposition most of its symbolic-shape work
    (22 s -> 12 s of CPU at 32x32, one thread, same ops and outputs; measured beside a running
    training, so CPU seconds only)."""
    for sub in module.modules():
        if isinstance(getattr(sub, "inplace", None), bool):
            sub.inplace = False
    return module


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


# -- as a method: export + parity check on real data -------------------------------------------

class ParityError(OptbenchError):
    """The exported model disagrees with the PyTorch model beyond the allowed bar."""


@dataclasses.dataclass(frozen=True)
class ExportOnnxConfig(Config):
    method: ClassVar[str] = "export-onnx"
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    parity_examples: int = 2000         # real examples compared (0 = skip the check)
    min_top1_agreement: float = 0.999   # fraction of identical predictions required
    max_abs_diff: float = 1e-3          # largest allowed logit difference, or else
    max_rel_diff: float = 1e-5          # the same per unit of the largest |logit|: float32
                                        # rounding grows with the logits (a diverged or
                                        # unnormalized net's logits reach thousands)

    def __post_init__(self):
        if not 0.0 <= self.min_top1_agreement <= 1.0:
            raise ConfigError("ExportOnnxConfig.min_top1_agreement must lie in [0, 1], got "
                              f"{self.min_top1_agreement}")
        if self.max_abs_diff < 0 or self.max_rel_diff < 0:
            raise ConfigError("ExportOnnxConfig.max_abs_diff and max_rel_diff must be >= 0, got "
                              f"{self.max_abs_diff} and {self.max_rel_diff}")


@register(ExportOnnxConfig)
def export_method(parent: Variant, config: ExportOnnxConfig, ctx: Context) -> Variant:
    model = require_module(parent, config.method)
    if config.dynamic_batch:
        path = fp32_onnx(ctx, parent, config.opset)
    else:
        path = export_onnx(model, ctx.example(2), ctx.file(parent, "fp32-static.onnx"),
                           opset=config.opset, dynamic_batch=False)
    info: dict = {"opset": config.opset}
    if config.parity_examples:
        info["parity"] = parity_check(model, path, ctx.require("val_data", config.method),
                                      config)
    return parent.derive("onnx", onnx_path=path, runtimes=("onnxruntime", "openvino"), info=info)


def parity_check(model: torch.nn.Module, path: Path, data, config: ExportOnnxConfig) -> dict:
    """Compare PyTorch and ONNX Runtime on real data; raise ParityError past the bar."""
    from optbench.data import make_loader, take_subset
    from optbench.measure import agreement, collect_logits, top1_accuracy
    from optbench.runtime import get_runtime
    from optbench.runtime.base import predict

    subset = take_subset(data, config.parity_examples)
    session = get_runtime("onnxruntime").load(path)
    module = copy.deepcopy(model).eval()

    def torch_predict(x):
        with torch.no_grad():
            return module(x)

    ort_logits, labels = collect_logits(lambda x: predict(session, x), make_loader(subset, 256))
    torch_logits, _ = collect_logits(torch_predict, make_loader(subset, 256))
    agree = agreement(torch_logits, ort_logits)
    scale = float(np.abs(torch_logits).max()) if agree.n else 0.0
    allowed = max(config.max_abs_diff, config.max_rel_diff * scale)
    top1 = decided_agreement(torch_logits, ort_logits, 2 * allowed)
    result = {**agree.to_dict(), "max_abs_logit": scale, "allowed_abs_diff": allowed,
              "decided_top1_agreement": top1,
              "torch_accuracy": top1_accuracy(torch_logits, labels),
              "onnx_accuracy": top1_accuracy(ort_logits, labels)}
    if top1 < config.min_top1_agreement or agree.max_abs_diff > allowed:
        raise ParityError(
            f"ONNX export of {path.name} disagrees with PyTorch on {agree.n} real examples: "
            f"top-1 agreement {top1:.4%} (flips between classes closer than twice the "
            f"allowed |diff| are rounding, not counted; raw {agree.top1_agreement:.4%}; need >= "
            f"{config.min_top1_agreement:.4%}), max |diff| {agree.max_abs_diff:.3g} (allowed "
            f"{allowed:.3g}: the larger of max_abs_diff={config.max_abs_diff:.3g} and "
            f"max_rel_diff={config.max_rel_diff:.3g} x the largest |logit| {scale:.3g}); "
            f"accuracy torch {result['torch_accuracy']:.4f} vs onnx "
            f"{result['onnx_accuracy']:.4f}. Raise max_abs_diff/max_rel_diff or lower "
            "min_top1_agreement in ExportOnnxConfig to accept it, or try another opset.")
    return result


def decided_agreement(reference: np.ndarray, candidate: np.ndarray, tie: float) -> float:
    """Top-1 agreement where a flip counts only if the reference's top two logits differ by
    more than `tie`: when two logits are closer than the allowed rounding error, either answer
    is the same network (a diverged net with logits in the thousands has such near-ties)."""
    if len(reference) == 0 or reference.shape[1] < 2:   # one class: nothing can flip
        return 1.0
    top2 = np.sort(reference, axis=1)[:, -2:]
    flips = (reference.argmax(1) != candidate.argmax(1)) & (top2[:, 1] - top2[:, 0] > tie)
    return float(1.0 - flips.mean())


def fp32_onnx(ctx: Context, parent: Variant, opset: int) -> Path:
    """The parent's fp32 ONNX file: its own if it is one, else exported once per model and
    opset (cached in ctx.onnx_cache) and reused by every method that starts from ONNX."""
    if parent.onnx_path is not None and not parent.facts.int8:
        return Path(parent.onnx_path)
    model = require_module(parent, "onnx export")
    files = ctx.onnx_cache.setdefault(model, {})
    if opset not in files or not files[opset].is_file():
        files[opset] = export_onnx(model, ctx.example(2), ctx.file(parent, "fp32.onnx"),
                                   opset=opset)
    return files[opset]
