"""OpenVINO on CPU: an OpenVINO IR (.xml), an .onnx file, or a torch module (converted).

Two traps are handled here, and tell users why:

- **bf16 by default.** On CPUs with AVX512-BF16 or AMX, OpenVINO's CPU plugin runs an fp32
  model in bf16 unless told otherwise (seen here on an AMD EPYC with AVX512-BF16: every
  convolution ran in bf16). A row labelled fp32 must compute in fp32, so sessions pin
  `INFERENCE_PRECISION_HINT` to f32 (`precision="bf16"` asks for bf16 on purpose); an int8 IR
  still runs its quantized layers in int8.
- **tcmalloc.** `make demo` preloads tcmalloc (batched PyTorch is faster with it). OpenVINO's
  threading library (oneTBB) dlopens `libtbbbind` with RTLD_DEEPBIND, which binds it and hwloc
  to glibc's malloc while the rest of the process uses tcmalloc: `compile_model` then aborts
  (`free(): invalid size`). `import_openvino` loads libtbbbind first, into the global scope, so
  the later deep-bound dlopen gets the library already bound to the process's allocator.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optbench.errors import ConfigError, MissingInputError, RuntimeUnavailableError

INSTALL_HINT = "pip install 'optbench[openvino]' (or: pip install openvino nncf)"
PRECISIONS = ("f32", "bf16")


def import_openvino():
    """`import openvino`, made safe under a preloaded allocator; RuntimeUnavailableError with the
    install command when the package is missing. Call it before anything imports openvino (NNCF
    included)."""
    spec = importlib.util.find_spec("openvino")
    if spec is None or spec.origin is None:
        raise RuntimeUnavailableError(f"OpenVINO is not installed; {INSTALL_HINT}")
    _bind_tbbbind_globally(Path(spec.origin).parent / "libs")
    import openvino

    return openvino


_BOUND: list = []   # the handle is kept for the life of the process


def _bind_tbbbind_globally(libs: Path) -> None:
    if _BOUND or not libs.is_dir():
        return
    for name in ("libtbbbind_2_5.so.3", "libtbbbind_2_0.so.3", "libtbbbind.so.3"):
        path = libs / name
        if path.is_file():
            # without hwloc loading fails, and TBB then runs without topology binding
            with contextlib.suppress(OSError):
                _BOUND.append(ctypes.CDLL(str(path), mode=os.RTLD_NOW | os.RTLD_GLOBAL))
            return


class OvSession:
    def __init__(self, compiled, device: str, precision: str):
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.runtime, self.device = "openvino", device
        self.precision = precision

    def prepare(self, batch: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(batch.detach().cpu().numpy())

    def run(self, prepared: np.ndarray) -> Any:
        # copies the output, as ONNX Runtime's run does, so a result outlives the next call
        return self.request.infer({0: prepared})[0]

    def to_numpy(self, output: Any) -> np.ndarray:
        return np.asarray(output, dtype=np.float32)

    def layer_precisions(self) -> dict[str, int]:
        """How many convolutions/matmuls the compiled model runs in each precision (u8/i8 means
        int8 kernels): what actually ran, not what the IR asked for."""
        counts: dict[str, int] = {}
        for op in self.compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            if str(info["layerType"].astype(str)) in COMPUTE_LAYERS:
                precision = str(info["runtimePrecision"].astype(str))
                counts[precision] = counts.get(precision, 0) + 1
        return counts


COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "FullyConnected", "MatMul")


class OpenVinoRuntime:
    """OpenVINO's CPU plugin with the bench's thread count and the LATENCY hint (one stream:
    a request uses all its threads, the setting for batch-1 latency)."""

    name = "openvino"
    accepts = "openvino"   # an IR path, else an .onnx path, else a module (Variant.artifact)

    def __init__(self, precision: str = "f32"):
        if precision not in PRECISIONS:
            raise ConfigError(f"OpenVINO precision must be one of {PRECISIONS}, got "
                              f"{precision!r}")
        self.precision = precision

    def available(self, device: str = "cpu") -> bool:
        return device == "cpu" and importlib.util.find_spec("openvino") is not None

    def load(self, model, *, example: torch.Tensor | None = None, device: str = "cpu",
             threads: int = 0) -> OvSession:
        if device != "cpu":
            raise RuntimeUnavailableError(f"optbench runs OpenVINO on the CPU only, not "
                                          f"{device!r}; use onnxruntime or torch on CUDA")
        ov = import_openvino()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": self.precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = ov.Core().compile_model(read_model(model, example), "CPU", config)
        return OvSession(compiled, device, self.precision)


def read_model(model, example: torch.Tensor | None = None):
    """An ov.Model from an IR (.xml), an .onnx file or a torch module (converted with
    `example`, batch axis dynamic)."""
    ov = import_openvino()
    if isinstance(model, torch.nn.Module):
        if example is None:
            raise ConfigError("converting a torch module to OpenVINO needs an example input")
        import copy

        module = copy.deepcopy(model).eval().cpu()
        shape = [-1, *example.shape[1:]]
        with torch.no_grad():
            return ov.convert_model(module, example_input=example.cpu(),
                                    input=[(shape, ov.Type.f32)])
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(f"runtime 'openvino' takes an OpenVINO IR (.xml), an .onnx path or an "
                          f"nn.Module, got {type(model).__name__}")
    path = Path(model)
    if path.suffix not in (".xml", ".onnx"):
        raise ConfigError(f"runtime 'openvino' reads .xml (OpenVINO IR) or .onnx files, got "
                          f"{path.name!r}")
    if not path.is_file():
        raise MissingInputError(f"model file not found: {path}")
    if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
        raise MissingInputError(f"OpenVINO IR {path.name} has no weights file "
                                f"{path.with_suffix('.bin').name} beside it; copy both files")
    return ov.Core().read_model(str(path))
