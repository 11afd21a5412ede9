"""Size of a model or artifact: bytes on disk, parameters, non-zeros, gzip bytes, dtypes.

gzip bytes show what unstructured sparsity buys (zeros compress; dense kernels do not skip them).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
from collections import Counter
from pathlib import Path

import numpy as np

from optbench.errors import ConfigError, MissingInputError


@dataclasses.dataclass(frozen=True)
class SizeReport:
    format: str
    file_bytes: int
    gzip_bytes: int
    parameters: int
    nonzero_parameters: int
    dtype_bytes: dict[str, int]

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero_parameters / self.parameters if self.parameters else 0.0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "sparsity": self.sparsity}


# BatchNorm statistics are state, not weights; everything else in a state_dict counts, so an
# int8 model's quantized weights (buffers, not Parameters) are counted like fp32 weights.
_NOT_WEIGHTS = ("running_mean", "running_var", "num_batches_tracked")


def model_size(model) -> SizeReport:
    """Size of a torch.nn.Module as its state_dict serialized with torch.save; `parameters`
    counts the elements of its weight tensors (parameters and quantized weight buffers)."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    data = buffer.getvalue()
    dtype_bytes: Counter[str] = Counter()
    weights = []
    for name, tensor in model.state_dict().items():
        if isinstance(tensor, torch.Tensor):
            dtype_bytes[str(tensor.dtype).removeprefix("torch.")] += _tensor_bytes(tensor)
            if not name.endswith(_NOT_WEIGHTS):
                weights.append(tensor)
    return SizeReport(
        format="torch-state-dict", file_bytes=len(data), gzip_bytes=len(gzip.compress(data, 6)),
        parameters=sum(t.numel() for t in weights),
        nonzero_parameters=sum(int(torch.count_nonzero(t)) for t in weights),
        dtype_bytes=dict(dtype_bytes))


def onnx_size(path: str | os.PathLike) -> SizeReport:
    """Size of an ONNX file, counting its external-data files; parameters are initializers."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"ONNX file not found: {path}; export one first "
                                "(optbench.transforms.export.export_onnx) or check the path")
    model = onnx.load(str(path), load_external_data=True)
    files = {path} | _external_files(model, path.parent)
    raw = b"".join(f.read_bytes() for f in sorted(files))
    dtype_bytes: Counter[str] = Counter()
    params = nonzero = 0
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        params += arr.size
        nonzero += int(np.count_nonzero(arr))
        dtype_bytes[str(arr.dtype)] += arr.nbytes
    return SizeReport(format="onnx", file_bytes=len(raw), gzip_bytes=len(gzip.compress(raw, 6)),
                      parameters=params, nonzero_parameters=nonzero, dtype_bytes=dict(dtype_bytes))


def ir_size(path: str | os.PathLike) -> SizeReport:
    """Size of an OpenVINO IR: the .xml and its .bin; parameters are the model's constants
    (an NNCF int8 IR stores its weights as int8 constants)."""
    from optbench.runtime.openvino import read_model

    path = Path(path)
    model = read_model(path)     # checks that both files exist
    raw = path.read_bytes() + path.with_suffix(".bin").read_bytes()
    dtype_bytes: Counter[str] = Counter()
    params = nonzero = 0
    for op in model.get_ops():
        if op.get_type_name() != "Constant":
            continue
        arr = op.get_data()
        if arr.size < 2:      # scalars: shapes, axes, quantization bounds
            continue
        params += arr.size
        nonzero += int(np.count_nonzero(arr))
        dtype_bytes[str(arr.dtype)] += arr.nbytes
    return SizeReport(format="openvino-ir", file_bytes=len(raw),
                      gzip_bytes=len(gzip.compress(raw, 6)), parameters=params,
                      nonzero_parameters=nonzero, dtype_bytes=dict(dtype_bytes))


def artifact_size(target) -> SizeReport:
    """Dispatch: a Module, or a path to an .onnx file or an OpenVINO IR (.xml)."""
    if isinstance(target, (str, os.PathLike)):
        if str(target).endswith(".onnx"):
            return onnx_size(target)
        if str(target).endswith(".xml"):
            return ir_size(target)
        raise ConfigError(f"cannot size {target!r}: expected an nn.Module, an .onnx path or an "
                          "OpenVINO IR (.xml)")
    return model_size(target)


def _tensor_bytes(tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _external_files(model, folder: Path) -> set[Path]:
    out = set()
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                out.add(folder / entry.value)
    return out
