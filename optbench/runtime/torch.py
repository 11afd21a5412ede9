"""PyTorch runtimes: eager and torch.compile."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from optbench.errors import ConfigError, RuntimeUnavailableError


class TorchSession:
    def __init__(self, fn, runtime: str, device: str):
        self.fn, self.runtime, self.device = fn, runtime, device
        self.compile_stats: dict | None = None   # torch-compile: what Dynamo did at load

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(self.device)

    def run(self, prepared: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.fn(prepared)

    def to_numpy(self, output: Any) -> np.ndarray:
        return output.detach().float().cpu().numpy()


class EagerRuntime:
    name = "torch-eager"
    accepts = "module"

    def available(self, device: str = "cpu") -> bool:
        return _device_ok(device)

    def load(self, model, *, example: torch.Tensor, device: str = "cpu",
             threads: int = 0) -> TorchSession:
        module = _placed(model, device, self.name)
        return TorchSession(module, self.name, device)


class CompileRuntime:
    """torch.compile (Inductor) with freezing, the setting for CPU inference: weights become
    constants, so Inductor folds and prepacks them, and PT2E int8 graphs lower to real int8
    kernels (without freezing they run as slow quantize/dequantize reference code).
    Compilation happens in load(), outside any timed region."""

    name = "torch-compile"
    accepts = "module"
    compiles_per_shape = True   # dynamic=False: each new input shape is a new compile

    def __init__(self, mode: str | None = None):
        self.mode = mode

    def available(self, device: str = "cpu") -> bool:
        return _device_ok(device)

    def load(self, model, *, example: torch.Tensor, device: str = "cpu",
             threads: int = 0) -> TorchSession:
        import torch._inductor.config as inductor_config

        module = _placed(model, device, self.name)
        _register_int8_lowerings(module)
        # process-wide on purpose: recompiles (new batch sizes) happen after load() returns, and
        # torch.compile(options={"freezing": True}) fails on PT2E int8 graphs in torch 2.14
        inductor_config.freezing = True
        allow_recompiles()
        before = dynamo_counts()
        compiled = torch.compile(module, mode=self.mode, dynamic=False)
        session = TorchSession(compiled, self.name, device)
        run_compiled(session, session.prepare(example))  # compile now, not inside the timer
        session.compile_stats = {k: v - before[k] for k, v in dynamo_counts().items()}
        return session


RECOMPILE_LIMIT = 256


def allow_recompiles() -> None:
    """Dynamo guards on parameter identity, so every model instance of one architecture (every
    variant, every export) recompiles the same `forward`; after `recompile_limit` (8) it silently
    falls back to eager, and a "torch-compile" row would time eager code. Measured here: the
    flagship pipeline hit the limit on MobileNetV2.forward before its compile rows were timed.
    The limit is raised, and hitting it anyway is an error (run_compiled), never a silent
    eager run under the torch-compile label."""
    import torch._dynamo

    cfg = torch._dynamo.config
    cfg.recompile_limit = max(cfg.recompile_limit, RECOMPILE_LIMIT)
    cfg.accumulated_recompile_limit = max(cfg.accumulated_recompile_limit, 4 * RECOMPILE_LIMIT)
    cfg.fail_on_recompile_limit_hit = True


def run_compiled(session: TorchSession, prepared) -> Any:
    """A call that may compile (the first at a shape). Dynamo's recompile limit turns into a
    RuntimeUnavailableError: past it Dynamo would run this model eager while the report said
    torch-compile."""
    import torch._dynamo

    try:
        return session.run(prepared)
    except torch._dynamo.exc.FailOnRecompileLimitHit as exc:
        cfg = torch._dynamo.config
        raise RuntimeUnavailableError(
            f"torch.compile hit Dynamo's recompile limit ({cfg.recompile_limit}) on this model: "
            "past it the model runs in eager mode, so this torch-compile entry is not timed. "
            "Build fewer variants of one architecture per process, or raise "
            "torch._dynamo.config.recompile_limit") from exc


def dynamo_counts() -> dict[str, int]:
    """Dynamo's process-wide counters that say what a compile did: graphs compiled, frames
    converted, graph breaks."""
    from torch._dynamo.utils import counters

    return {"graphs": int(counters["stats"]["unique_graphs"]),
            "frames_ok": int(counters["frames"]["ok"]),
            "graph_breaks": int(sum(counters["graph_break"].values()))}


def _register_int8_lowerings(module: torch.nn.Module) -> None:
    """Inductor turns a PT2E graph's quantize/dequantize patterns into int8 oneDNN kernels
    only once torchao's x86 lowerings are registered, which importing its X86InductorQuantizer
    does. The process that quantized has them; a fresh timing worker, or a server loading the
    model, does not, and Inductor then compiled the dequantize of every int8 weight into each
    call: ResNet50 at 224x224, batch 1, AMX Xeon, 664 ms in a worker without them, 5.8 ms with
    them."""
    graph = getattr(module, "graph", None)
    if graph is None or not any("quantized_decomposed" in str(n.target) for n in graph.nodes):
        return
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
    except ImportError as exc:
        raise RuntimeUnavailableError(
            f"this model is PT2E int8, and compiling it into int8 kernels needs torchao's "
            f"x86 lowerings ({exc}); pip install torchao") from None


def _placed(model, device: str, runtime: str) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"runtime {runtime!r} takes a torch.nn.Module, got "
                          f"{type(model).__name__}; use runtime 'onnxruntime' for .onnx files")
    if not _device_ok(device):
        raise RuntimeUnavailableError(f"device {device!r} is not available to PyTorch here; "
                                      "use device='cpu' or run on a machine with CUDA")
    # a copy: placing on a device or compiling must not touch the caller's model
    return copy.deepcopy(model).eval().to(device)


def _device_ok(device: str) -> bool:
    if device == "cpu":
        return True
    if device.startswith("cuda"):
        return torch.cuda.is_available()
    return False
