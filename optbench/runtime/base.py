"""The Runtime protocol that measurement talks to."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch


class Session(Protocol):
    """A loaded model ready to run. `prepare` moves an input where the runtime wants it (done once,
    outside the timed loop); `run` is the timed call; `to_numpy` fetches an output."""

    runtime: str
    device: str

    def prepare(self, batch: torch.Tensor) -> Any: ...

    def run(self, prepared: Any) -> Any: ...

    def to_numpy(self, output: Any) -> np.ndarray: ...


class Runtime(Protocol):
    name: str
    # "module" (an nn.Module), "onnx" (a path to an .onnx file) or "openvino" (an OpenVINO IR,
    # else an .onnx file, else a module: transforms.base.Variant.artifact picks)
    accepts: str

    def available(self, device: str = "cpu") -> bool: ...

    def load(self, model: Any, *, example: torch.Tensor, device: str = "cpu",
             threads: int = 0) -> Session: ...


def predict(session: Session, batch: torch.Tensor) -> np.ndarray:
    """Run one batch end to end and return the output as numpy."""
    return session.to_numpy(session.run(session.prepare(batch)))
