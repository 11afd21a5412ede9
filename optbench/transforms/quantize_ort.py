"""Int8 with ONNX Runtime, calibrated on real data.

- `ptq-ort-static`: static QDQ quantization of the fp32 ONNX graph, per-channel weights,
  unsigned 8-bit activations (ORT's signed default left ~40% of convs in fp32 on x86).
- `ptq-ort-dynamic`: dynamic int8 for Linear-heavy models; warns on conv nets (slower there).

The static QDQ file also runs on OpenVINO, which reads the same file and runs its convs in
int8 (u8 activations): where OpenVINO's int8 kernels are faster than ONNX Runtime's, the bench
times both and the report takes each variant's speed and accuracy from its fastest runtime
(`BenchResult.deployed_quality`). The accuracy guard runs it on ONNX Runtime.

Both pick a weight format that stays exact on the CPU they run on (`int8_mode`, optbench.isa:
7-bit weights for static int8 where the CPU has no VNNI) and run the accuracy guard
(optbench.transforms.guard) against their parent before returning.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np

from optbench.config import Config, check_choice, check_positive
from optbench.data import make_loader
from optbench.isa import ORT_MODES, Int8Mode, cpu_features, ort_mode
from optbench.transforms.base import Context, Variant, register
from optbench.transforms.export import fp32_onnx
from optbench.transforms.guard import Int8Guard, check_int8, mode_hints

DYNAMIC_ON_CONV_WARNING = ("dynamic int8 computes activation scales at run time and turns convs "
                           "into ConvInteger, which has no fast x86 kernel; on conv nets it was "
                           "measured 3-5x slower than fp32 here. Use ptq-ort-static or ptq-pt2e "
                           "for CNNs; keep dynamic int8 for Linear-heavy models.")


@dataclasses.dataclass(frozen=True)
class OrtStaticQuantConfig(Config):
    method: ClassVar[str] = "ptq-ort-static"
    takes_onnx: ClassVar[bool] = True     # works on an .onnx starting point
    calibration_batches: int = 8
    batch_size: int = 32
    calibrate_method: str = "minmax"     # minmax | percentile | entropy
    per_channel: bool = True
    activation_type: str = "uint8"       # uint8 quantizes every conv on x86; int8 is the trap
    keep_classifier_fp32: bool = True    # the last Gemm/MatMul stays fp32 (see below)
    opset: int = 18
    int8_mode: str = "auto"   # auto | u8s8 | u8s8-reduce-range | u8u8 (see optbench.isa)
    guard: Int8Guard = Int8Guard()

    def __post_init__(self):
        check_positive("OrtStaticQuantConfig", calibration_batches=self.calibration_batches,
                       batch_size=self.batch_size)
        check_choice("OrtStaticQuantConfig", "int8_mode", self.int8_mode, ORT_MODES)
        check_choice("OrtStaticQuantConfig", "calibrate_method", self.calibrate_method,
                     ("minmax", "percentile", "entropy"))
        check_choice("OrtStaticQuantConfig", "activation_type", self.activation_type,
                     ("uint8", "int8"))


@dataclasses.dataclass(frozen=True)
class OrtDynamicQuantConfig(Config):
    method: ClassVar[str] = "ptq-ort-dynamic"
    takes_onnx: ClassVar[bool] = True     # works on an .onnx starting point
    opset: int = 18
    int8_mode: str = "auto"   # auto | u8s8 | u8s8-reduce-range | u8u8 (see optbench.isa)
    guard: Int8Guard = Int8Guard()

    def __post_init__(self):
        check_choice("OrtDynamicQuantConfig", "int8_mode", self.int8_mode, ORT_MODES)


# -- PT2E ------------------------------------------------------------------------------------


class _Reader:
    """ORT CalibrationDataReader over a dataset (duck-typed: get_next/rewind)."""

    def __init__(self, data, input_name: str, batches: int, batch_size: int):
        self.data, self.input_name = data, input_name
        self.batches, self.batch_size = batches, batch_size
        self.rewind()

    def get_next(self):
        try:
            images, _ = next(self._it)
        except StopIteration:
            return None
        return {self.input_name: images.numpy().astype(np.float32)}

    def rewind(self):
        loader = make_loader(self.data, self.batch_size)
        self._it = (b for i, b in enumerate(loader) if i < self.batches)


@register(OrtStaticQuantConfig)
def quantize_ort_static(parent: Variant, config: OrtStaticQuantConfig, ctx: Context) -> Variant:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    data = ctx.require("calib_data", config.method)
    source = fp32_onnx(ctx, parent, config.opset)
    out = ctx.file(parent, f"int8-{config.calibrate_method}.onnx")
    pre, tmp = _private(out, "pre"), _private(out, "tmp")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    act = QuantType.QUInt8 if config.activation_type == "uint8" else QuantType.QInt8
    mode = ort_mode(config.int8_mode, cpu_features())
    try:
        quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
        # Measured on ResNet18/Fashion-MNIST: quantizing the classifier cost 1.7 top-1 points
        # (86.97 -> 85.30); leaving that one small Gemm in fp32 gave 87.02 at no measurable cost.
        graph = _graph(pre)
        keep = _classifier_nodes(graph) if config.keep_classifier_fp32 else []
        quantize_static(str(pre), str(tmp), _Reader(data, graph.input[0].name,
                                                     config.calibration_batches,
                                                     config.batch_size),
                        quant_format=QuantFormat.QDQ, per_channel=config.per_channel,
                        activation_type=act, calibrate_method=methods[config.calibrate_method],
                        nodes_to_exclude=keep, **ort_weight_args(mode))
        os.replace(tmp, out)
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    ops = onnx_op_counts(out)
    info = {"int8": True, "ops": ops, "activation_type": config.activation_type,
            "fp32_nodes": keep, "int8_mode": mode.to_dict()}
    hints = ()
    if config.activation_type == "int8":
        info["warnings"] = [SIGNED_ACTIVATIONS_WARNING]
        hints = (SIGNED_ACTIVATIONS_WARNING + ";",)
    variant = parent.derive(f"ptq-ort-static-{config.calibrate_method}", onnx_path=out,
                            runtimes=("onnxruntime", "openvino"), info=info)
    check_int8(parent, variant, data, config.guard, mode_hints(mode, *hints))
    return variant


SIGNED_ACTIVATIONS_WARNING = ("signed int8 activations: ORT on x86 leaves many convs in fp32 "
                              "(measured ~40% here, 3x slower); use activation_type='uint8'")


def _private(out: Path, kind: str) -> Path:
    """A file beside `out` that only this process writes (then moved onto `out`): the same step
    may be rebuilt at once by side-by-side workers (run --jobs), e.g. a teacher's int8 file."""
    return out.with_name(f"{out.stem}.{os.getpid()}.{kind}.onnx")


def ort_weight_args(mode: Int8Mode) -> dict:
    """quantize_static/quantize_dynamic keyword arguments for an int8 mode."""
    from onnxruntime.quantization import QuantType

    weight = QuantType.QUInt8 if mode.mode == "u8u8" else QuantType.QInt8
    return {"weight_type": weight, "reduce_range": mode.mode == "u8s8-reduce-range"}


@register(OrtDynamicQuantConfig)
def quantize_ort_dynamic(parent: Variant, config: OrtDynamicQuantConfig, ctx: Context) -> Variant:
    from onnxruntime.quantization import quantize_dynamic

    source = fp32_onnx(ctx, parent, config.opset)
    out = ctx.file(parent, "int8-dynamic.onnx")
    mode = ort_mode(config.int8_mode, cpu_features(), dynamic=True)
    tmp = _private(out, "tmp")
    try:
        quantize_dynamic(str(source), str(tmp), **ort_weight_args(mode))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    ops = onnx_op_counts(out)
    info = {"int8": True, "dynamic": True, "ops": ops, "int8_mode": mode.to_dict()}
    if ops.get("conv", 0):
        warnings.warn(DYNAMIC_ON_CONV_WARNING, stacklevel=2)
        info["warnings"] = [DYNAMIC_ON_CONV_WARNING]
    variant = parent.derive("ptq-ort-dynamic", onnx_path=out, runtimes=("onnxruntime",),
                            info=info)
    data = ctx.calib_data if ctx.calib_data is not None else ctx.val_data
    if data is not None:
        check_int8(parent, variant, data, config.guard, mode_hints(mode))
    else:
        variant.info["int8_guard"] = {"skipped": "no calib_data or val_data in the Context"}
    return variant


def onnx_op_counts(path: Path) -> dict[str, int]:
    """Conv/MatMul nodes and how many of them read quantized inputs (QDQ) or are integer ops;
    the rest still run in fp32."""
    graph = _graph(path)
    producers = {out: node.op_type for node in graph.node for out in node.output}
    counts: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type in ("ConvInteger", "QLinearConv"):
            counts["conv"] += 1
            counts["int8_conv"] += 1
        elif node.op_type == "Conv":
            counts["conv"] += 1
            if producers.get(node.input[0]) == "DequantizeLinear":
                counts["int8_conv"] += 1
        elif node.op_type in ("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul"):
            counts["matmul"] += 1
    counts["fp32_conv"] = counts["conv"] - counts["int8_conv"]
    return dict(counts)


def _classifier_nodes(graph) -> list[str]:
    """The last Gemm/MatMul node (the classifier), if any: the graph counterpart of
    optbench.models.classifier_name."""
    heads = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    return heads[-1:]


def _graph(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False).graph
