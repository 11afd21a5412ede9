"""The CPU features that decide int8 speed *and* int8 correctness, and what is safe where.

On x86, int8 convolutions multiply uint8 activations by int8 weights (U8S8). CPUs with VNNI
(AVX512-VNNI, AVX-VNNI; AMX has its own int8 tiles) add the four products of a group straight
into 32 bits. CPUs without it (AVX2-only, AVX512 without VNNI) use `vpmaddubsw`, which adds
pairs of products into a *saturating 16-bit* integer first: 2 x 255 x 127 = 64,770 does not fit
in 32,767, so full-range weights can silently clip and a model loses tens of points (seen on an
AVX2-only EPYC: 88.1% -> 58.4%). ONNX Runtime's documented remedies are 7-bit weights
(`reduce_range`) or U8U8; torchao's X86InductorQuantizer documents 7-bit activations
(`reduce_range=True`) for CPUs without VNNI. Either keeps 2 x 255 x 64 (or 2 x 127 x 128)
below 32,767.

Features come from CPUID through `torch.cpu.get_capabilities()` (what the kernels themselves
see, also under an emulator), not from /proc/cpuinfo.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import numpy as np

INT16_MAX = 32767


@dataclasses.dataclass(frozen=True)
class CpuFeatures:
    arch: str = "x86_64"
    avx2: bool = False
    avx512: bool = False
    avx512_vnni: bool = False
    avx_vnni: bool = False
    avx512_bf16: bool = False
    amx_int8: bool = False
    amx_bf16: bool = False

    @property
    def x86(self) -> bool:
        return self.arch in ("x86_64", "amd64", "AMD64", "i386", "i686")

    @property
    def vnni(self) -> bool:
        """int8 dot products accumulate in 32 bits (no 16-bit saturation)."""
        return self.avx512_vnni or self.avx_vnni or self.amx_int8

    @property
    def u8s8_saturates(self) -> bool:
        """True where full-range U8S8 int8 can clip (x86 without VNNI)."""
        return self.x86 and not self.vnni

    @property
    def bf16_native(self) -> bool:
        """An x86 CPU with bf16 arithmetic in hardware (AMX or AVX512-BF16); on other x86 CPUs
        bf16 is emulated and slower than fp32."""
        return self.x86 and (self.amx_bf16 or self.avx512_bf16)

    def bf16_warning(self, what: str) -> str | None:
        """Why `what` (a config setting asking for bf16) is a bad idea on this CPU, or None."""
        if not self.x86 or self.bf16_native:
            return None
        return (f"{what} on a CPU without native bf16 ({self.kind}, no AMX or AVX512-BF16): "
                "emulated, likely slower than fp32; ask for fp32 here, or for \"auto\" (bf16 "
                "only where the CPU has it)")

    @property
    def kind(self) -> str:
        """A short name for the int8 class of this CPU: amx, avx512-vnni, avx-vnni, avx512,
        avx2, or the architecture."""
        if not self.x86:
            return self.arch
        for name, has in (("amx", self.amx_int8), ("avx512-vnni", self.avx512_vnni),
                          ("avx-vnni", self.avx_vnni), ("avx512", self.avx512),
                          ("avx2", self.avx2)):
            if has:
                return name
        return "x86"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "kind": self.kind, "vnni": self.vnni,
                "u8s8_saturates": self.u8s8_saturates}

    @classmethod
    def from_dict(cls, data: Mapping) -> CpuFeatures:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def from_capabilities(caps: Mapping) -> CpuFeatures:
    """CpuFeatures from `torch.cpu.get_capabilities()`'s mapping."""
    return CpuFeatures(
        arch=str(caps.get("architecture", "x86_64")), avx2=bool(caps.get("avx2")),
        avx512=bool(caps.get("avx512_f")), avx512_vnni=bool(caps.get("avx512_vnni")),
        avx_vnni=bool(caps.get("avx_vnni")), avx512_bf16=bool(caps.get("avx512_bf16")),
        amx_int8=bool(caps.get("amx_int8")), amx_bf16=bool(caps.get("amx_bf16")))


@functools.cache
def cpu_features() -> CpuFeatures:
    """This process's CPU, read once."""
    import torch

    return from_capabilities(torch.cpu.get_capabilities())


# -- training and teacher precision ------------------------------------------------------------
PRECISIONS = ("fp32", "bf16", "auto")


def resolve_precision(requested: str, device: str = "cpu", setting: str = "precision") -> str:
    """"fp32" or "bf16" for a requested precision on `device`. "auto" is bf16 where the hardware
    does bf16 (an x86 CPU with AMX or AVX512-BF16, a CUDA GPU that supports it) and fp32
    elsewhere; an explicit "bf16" on a CPU that would emulate it warns (naming `setting`)."""
    import warnings

    import torch

    if requested == "fp32":
        return "fp32"
    kind = torch.device(device).type
    native = torch.cuda.is_bf16_supported() if kind == "cuda" else cpu_features().bf16_native
    if requested == "auto":
        return "bf16" if native else "fp32"
    warning = cpu_features().bf16_warning(f'{setting}="bf16"') if kind == "cpu" else None
    if warning:
        warnings.warn(warning, stacklevel=3)
    return "bf16"


# -- int8 modes --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Int8Mode:
    """The int8 number format a quantizer was told to use, and why."""

    mode: str                 # e.g. "u8s8", "u8s8-reduce-range", "u8u8", "reduce-range"
    needs_vnni: bool          # would clip on a CPU without VNNI
    chosen_for: str           # the CPU kind it was chosen on (CpuFeatures.kind)
    reason: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


ORT_MODES = ("auto", "u8s8", "u8s8-reduce-range", "u8u8")
PT2E_MODES = ("auto", "full-range", "reduce-range")


def ort_mode(requested: str, cpu: CpuFeatures, dynamic: bool = False) -> Int8Mode:
    """ONNX Runtime static int8: full-range U8S8 where the CPU has VNNI (its fastest, most
    accurate kernels), 7-bit weights (U8S8 with reduce_range) where it has not. Dynamic int8
    (ConvInteger/MatMulInteger, per-tensor weights) keeps full-range weights everywhere: on an
    AVX2-only CPU (emulated) they were exact on the contract model, while 7-bit per-tensor
    weights cost 7.4 points; its accuracy guard still checks every result."""
    if requested == "auto" and dynamic:
        return Int8Mode("u8s8", False, cpu.kind,
                        "auto: dynamic int8 keeps full-range per-tensor weights on every CPU "
                        "(7-bit ones lost 7.4 points without VNNI; full range was exact)")
    return _choose(requested, cpu, "u8s8", "u8s8-reduce-range",
                   "full-range U8S8 would saturate in vpmaddubsw; weights use 7 bits "
                   "(reduce_range)", "full-range U8S8 is exact")


def pt2e_mode(requested: str, cpu: CpuFeatures) -> Int8Mode:
    """PT2E/Inductor int8 (oneDNN): torchao's X86InductorQuantizer documents 7-bit activations
    (reduce_range=True) on CPUs without VNNI."""
    return _choose(requested, cpu, "full-range", "reduce-range",
                   "activations use 7 bits (reduce_range) so oneDNN's u8s8 products cannot "
                   "saturate", "8-bit activations are exact")


def _choose(requested: str, cpu: CpuFeatures, full: str, reduced: str, why_reduced: str,
            why_full: str) -> Int8Mode:
    """The shared rule: a forced mode as asked; auto = `reduced` where U8S8 saturates (no
    VNNI), else `full` (which then needs VNNI wherever it runs)."""
    if requested != "auto":
        return Int8Mode(requested, requested == full, cpu.kind,
                        f"forced: int8_mode = {requested!r}")
    if cpu.u8s8_saturates:
        return Int8Mode(reduced, False, cpu.kind,
                        f"auto: this {cpu.kind} CPU has no VNNI; {why_reduced}")
    return Int8Mode(full, True, cpu.kind, f"auto: this {cpu.kind} CPU has VNNI; {why_full}")


def portability_warning(int8: Mapping | None, cpu: CpuFeatures) -> str | None:
    """A warning when an int8 model made for one CPU kind runs on another that may clip it
    (or that would allow a more accurate format), else None."""
    if not int8 or not cpu.x86:
        return None
    made_for = int8.get("chosen_for", "unknown")
    if int8.get("needs_vnni") and cpu.u8s8_saturates:
        return (f"int8 model quantized with full-range U8S8 ({int8.get('mode')}, made on a "
                f"{made_for} CPU) now runs on a {cpu.kind} CPU without VNNI, where those "
                "products can saturate and cost accuracy; re-quantize on this machine "
                "(int8_mode = 'auto') or with 7-bit weights (int8_mode = 'u8s8-reduce-range')")
    if not int8.get("needs_vnni") and cpu.vnni and made_for not in ("unknown", cpu.kind):
        return (f"int8 model made for a CPU without VNNI ({int8.get('mode')}, on {made_for}) "
                f"runs on a {cpu.kind} CPU: it is safe, but re-quantizing here with "
                "int8_mode = 'auto' would use full-range 8 bits (usually a little more accurate)")
    return None


# -- evidence in the model itself -------------------------------------------------------------
def onnx_int8_mode(path) -> dict | None:
    """Read an ONNX graph's int8 weight format from its initializers: None for a float model;
    else {"mode", "needs_vnni", "chosen_for": "unknown", "reason"}. int8 weights that use the
    full range [-128, 127] need VNNI to be exact; 7-bit ones ([-64, 63]) and uint8 ones do not."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name: i for i in graph.initializer}
    int8_max, has_u8 = None, False
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in weights:
            continue
        values = numpy_helper.to_array(weights[node.input[0]])
        if values.dtype == np.int8 and values.size:
            peak = int(np.abs(values.astype(np.int16)).max())
            int8_max = peak if int8_max is None else max(int8_max, peak)
        elif values.dtype == np.uint8 and values.ndim > 1:
            has_u8 = True
    if int8_max is None:
        return {"mode": "u8u8", "needs_vnni": False, "chosen_for": "unknown",
                "reason": "read from the graph: uint8 weights"} if has_u8 else None
    full = int8_max > 64
    return {"mode": "u8s8" if full else "u8s8-reduce-range", "needs_vnni": full,
            "chosen_for": "unknown",
            "reason": f"read from the graph: int8 weights reach |{int8_max}|"}


def vpmaddubsw(a_u8: np.ndarray, b_s8: np.ndarray) -> np.ndarray:
    """What a CPU without VNNI computes for a U8S8 dot product: adjacent pairs of products
    summed into a saturating int16, then widened and summed (vpmaddubsw + vpmaddwd). Inputs are
    (..., K) with K even; returns the int32 dot products (for tests and the docs)."""
    a = a_u8.astype(np.int32)
    b = b_s8.astype(np.int32)
    pairs = a[..., 0::2] * b[..., 0::2] + a[..., 1::2] * b[..., 1::2]
    return np.clip(pairs, -INT16_MAX - 1, INT16_MAX).sum(axis=-1)
