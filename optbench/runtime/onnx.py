"""ONNX Runtime: CPU provider, and the CUDA provider when present."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optbench.errors import ConfigError, MissingInputError, RuntimeUnavailableError

_INSTALL_HINT = "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)"


class OrtSession:
    def __init__(self, inference_session, device: str):
        self.session = inference_session
        self.runtime, self.device = "onnxruntime", device
        self.input_name = inference_session.get_inputs()[0].name

    def prepare(self, batch: torch.Tensor) -> dict[str, np.ndarray]:
        return {self.input_name: np.ascontiguousarray(batch.detach().cpu().numpy())}

    def run(self, prepared: dict[str, np.ndarray]) -> Any:
        return self.session.run(None, prepared)[0]

    def to_numpy(self, output: Any) -> np.ndarray:
        return np.asarray(output, dtype=np.float32)


class OrtRuntime:
    name = "onnxruntime"
    accepts = "onnx"

    def available(self, device: str = "cpu") -> bool:
        try:
            import onnxruntime as ort
        except ImportError:
            return False
        return _provider(device) in ort.get_available_providers()

    def load(self, model, *, example: torch.Tensor | None = None, device: str = "cpu",
             threads: int = 0) -> OrtSession:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeUnavailableError(f"onnxruntime is not installed; {_INSTALL_HINT}"
                                          ) from None
        path = _onnx_path(model)
        provider = _provider(device)
        if provider not in ort.get_available_providers():
            raise RuntimeUnavailableError(
                f"ONNX Runtime here has providers {ort.get_available_providers()}, not {provider} "
                f"needed for device {device!r}; {_INSTALL_HINT}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # spinning threads would steal cores from the next runtime when runs are interleaved
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=[provider])
        return OrtSession(session, device)


def _provider(device: str) -> str:
    if device == "cpu":
        return "CPUExecutionProvider"
    if device.startswith("cuda"):
        return "CUDAExecutionProvider"
    raise ConfigError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")


def _onnx_path(model) -> Path:
    if not isinstance(model, (str, os.PathLike)):
        raise ConfigError(f"runtime 'onnxruntime' takes a path to an .onnx file, got "
                          f"{type(model).__name__}; export it first with "
                          "optbench.transforms.export.export_onnx")
    path = Path(model)
    if not path.is_file():
        raise MissingInputError(f"ONNX file not found: {path}")
    return path
