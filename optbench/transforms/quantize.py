"""Int8 post-training quantization, calibrated on real data.

- `ptq-pt2e`: torch.export + X86InductorQuantizer + prepare_pt2e/convert_pt2e (torchao), run by
  the `torch-compile` runtime (Inductor with freezing lowers it to int8 oneDNN kernels).
- `ptq-ort-static`: ONNX Runtime static QDQ quantization of the fp32 ONNX graph, per-channel
  weights, unsigned 8-bit activations (ORT's signed default left ~40% of convs in fp32 on x86).
- `ptq-ort-dynamic`: dynamic int8 for Linear-heavy models; warns on conv nets (slower there).

Every int8 method picks a number format that stays exact on the CPU it runs on (`int8_mode`,
see optbench.isa: full range where the CPU has VNNI, 7 bits where it has not) and then runs the
accuracy guard (optbench.transforms.guard) against its parent before returning.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import warnings
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from optbench.config import Config, check_choice, check_positive
from optbench.data import make_loader
from optbench.errors import ConfigError
from optbench.isa import ORT_MODES, PT2E_MODES, Int8Mode, cpu_features, ort_mode, pt2e_mode
from optbench.transforms.base import Context, Variant, register, require_module
from optbench.transforms.guard import Int8Guard, check_int8

DYNAMIC_ON_CONV_WARNING = ("dynamic int8 computes activation scales at run time and turns convs "
                           "into ConvInteger, which has no fast x86 kernel; on conv nets it was "
                           "measured 3-5x slower than fp32 here. Use ptq-ort-static or ptq-pt2e "
                           "for CNNs; keep dynamic int8 for Linear-heavy models.")


@dataclasses.dataclass(frozen=True)
class PT2EQuantConfig(Config):
    method: ClassVar[str] = "ptq-pt2e"
    calibration_batches: int = 8
    batch_size: int = 32
    fx_fallback: bool = True    # when PT2E cannot take the model: the deprecated FX path, warned
    int8_mode: str = "auto"     # auto | full-range | reduce-range (7-bit activations, no VNNI)
    guard: Int8Guard = Int8Guard()

    def __post_init__(self):
        check_positive("PT2EQuantConfig", calibration_batches=self.calibration_batches,
                       batch_size=self.batch_size)
        check_choice("PT2EQuantConfig", "int8_mode", self.int8_mode, PT2E_MODES)


@dataclasses.dataclass(frozen=True)
class OrtStaticQuantConfig(Config):
    method: ClassVar[str] = "ptq-ort-static"
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
    opset: int = 18
    int8_mode: str = "auto"   # auto | u8s8 | u8s8-reduce-range | u8u8 (see optbench.isa)
    guard: Int8Guard = Int8Guard()

    def __post_init__(self):
        check_choice("OrtDynamicQuantConfig", "int8_mode", self.int8_mode, ORT_MODES)


# -- PT2E ------------------------------------------------------------------------------------
@register(PT2EQuantConfig)
def quantize_pt2e(parent: Variant, config: PT2EQuantConfig, ctx: Context) -> Variant:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    data = ctx.require("calib_data", config.method)
    model = untie_shared_modules(copy.deepcopy(require_module(parent, config.method)).eval())
    mode = pt2e_mode(config.int8_mode, cpu_features())
    try:
        exported = export_for_quantization(model, ctx.example(2))
        prepared = prepare_pt2e(exported, x86_quantizer(is_qat=False, mode=mode))
    except Exception as exc:  # capture or annotation failed: the model, not the data
        reason = _first_line(exc)
        if not config.fx_fallback:
            raise ConfigError(f"PT2E could not quantize this model ({reason}); set "
                              "fx_fallback = true to use the deprecated FX path, or make the "
                              "model torch.export-able") from exc
        return _quantize_fx(parent, model, data, config, ctx, reason)
    calibrate(prepared, data, config.calibration_batches, config.batch_size)
    converted = drop_unused_attributes(convert_pt2e(prepared))
    variant = parent.derive("ptq-pt2e", model=converted, runtimes=("torch-compile",),
                            info={"int8": True, "ops": pt2e_op_counts(converted),
                                  "int8_mode": mode.to_dict()})
    check_int8(parent, variant, data, config.guard, mode_hints(mode))
    return variant


def mode_hints(mode: Int8Mode, *extra: str) -> tuple[str, ...]:
    """Likely causes of an int8 collapse, for the guard's message."""
    hints = list(extra)
    if mode.needs_vnni and cpu_features().u8s8_saturates:
        hints.append(f"int8_mode {mode.mode!r} uses full-range u8s8, which saturates on this "
                     f"{cpu_features().kind} CPU without VNNI: use int8_mode = 'auto';")
    hints.append("calibration data too small or unlike the inputs (more calibration_batches, "
                 "calibrate_method = 'percentile' where the method has it);")
    return tuple(hints)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


FX_FALLBACK_WARNING = ("PT2E could not capture this model ({reason}), so it was quantized with "
                       "the FX path (torch.ao.quantization.quantize_fx), which PyTorch has "
                       "deprecated and will remove; it runs in eager mode with the x86 "
                       "quantized engine. Make the model torch.export-able to use PT2E.")


def _quantize_fx(parent: Variant, model: nn.Module, data, config: PT2EQuantConfig, ctx: Context,
                 reason: str) -> Variant:
    """The deprecated FX graph-mode path, for models PT2E cannot take. The last Linear (the
    classifier) stays fp32, as in ptq-ort-static: int8 there cost 6.8 points on the contract
    test's tiny model (2.5 with it in fp32), for almost no time."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    message = FX_FALLBACK_WARNING.format(reason=reason)
    warnings.warn(message, stacklevel=3)
    torch.backends.quantized.engine = "x86"
    mode = pt2e_mode(config.int8_mode, cpu_features())
    with warnings.catch_warnings():  # the deprecation is said once, in `message`
        warnings.simplefilter("ignore")
        try:
            mapping = get_default_qconfig_mapping("x86")  # 7-bit activations everywhere
            linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            if linears:
                mapping = mapping.set_module_name(linears[-1], None)
            prepared = prepare_fx(model, mapping, (ctx.example(2),))
        except Exception as exc:
            raise ConfigError(f"neither PT2E ({reason}) nor FX ({_first_line(exc)}) could "
                              "trace this model; int8 needs a traceable forward (no "
                              "data-dependent Python control flow)") from exc
        calibrate(prepared, data, config.calibration_batches, config.batch_size)
        converted = convert_fx(prepared)
    ops = Counter("int8_compute_ops" if ".quantized." in type(m).__module__ else "fp32_compute_ops"
                  for m in converted.modules()
                  if type(m).__name__ in ("Conv2d", "ConvReLU2d", "Linear", "LinearReLU"))
    fx_mode = Int8Mode("reduce-range", False, mode.chosen_for,
                       "the FX x86 qconfig always uses 7-bit activations")
    variant = parent.derive("ptq-fx", model=converted, runtimes=("torch-eager",),
                            info={"int8": True, "backend": "fx", "ops": dict(ops),
                                  "pt2e_error": reason, "warnings": [message],
                                  "int8_mode": fx_mode.to_dict()})
    check_int8(parent, variant, data, config.guard, mode_hints(fx_mode))
    return variant


def x86_quantizer(is_qat: bool, mode: Int8Mode):
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config(
        is_qat=is_qat, reduce_range=mode.mode == "reduce-range"))
    return quantizer


def export_for_quantization(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """torch.export with a dynamic batch axis (the example needs batch >= 2: export
    specializes a batch of 1 to a constant)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},)).module()


@torch.no_grad()
def calibrate(model, data, batches: int, batch_size: int) -> None:
    for i, (images, _) in enumerate(make_loader(data, batch_size)):
        if i >= batches:
            break
        model(images)


def untie_shared_modules(model: nn.Module) -> nn.Module:
    """Give each call site its own ReLU in torchvision ResNet blocks (in place; pass a copy).

    torchvision's BasicBlock/Bottleneck call one nn.ReLU two or three times; PT2E's quantizer
    then sees one partition with several outputs and fails ("Input partition has more than one
    output node"). New ReLU modules per call site fix it without changing the numbers.
    """
    from torchvision.models.resnet import BasicBlock, Bottleneck

    for module in model.modules():
        if isinstance(module, BasicBlock) and not hasattr(module, "relu_out"):
            module.relu_out = nn.ReLU(inplace=True)
            module.forward = types.MethodType(_basic_block_forward, module)
        elif isinstance(module, Bottleneck) and not hasattr(module, "relu_out"):
            module.relu_mid, module.relu_out = nn.ReLU(inplace=True), nn.ReLU(inplace=True)
            module.forward = types.MethodType(_bottleneck_forward, module)
    return model


def _basic_block_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
    return self.relu_out(out + identity)


def _bottleneck_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu_mid(self.bn2(self.conv2(out)))
    return self.relu_out(self.bn3(self.conv3(out)) + identity)


def drop_unused_attributes(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Delete parameters/buffers the graph no longer reads (the fp32 weights that convert_pt2e
    replaced by int8 constants); otherwise a saved int8 model is ~5x too big."""
    used = {node.target for node in gm.graph.nodes if node.op == "get_attr"}
    for name in [n for n, _ in [*gm.named_parameters(), *gm.named_buffers()]]:
        if name not in used and not any(u.startswith(name + ".") for u in used):
            owner_name, _, attr = name.rpartition(".")
            owner = gm.get_submodule(owner_name) if owner_name else gm
            delattr(owner, attr)
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def pt2e_op_counts(gm: torch.fx.GraphModule) -> dict[str, int]:
    """Convolutions/linears in a converted graph, and how many read quantized weights."""
    counts: Counter[str] = Counter()
    for node in gm.graph.nodes:
        name = str(node.target)
        if "fake_quantize" in name:
            counts["fake_quant_ops"] += 1
        if node.op == "call_function" and any(k in name for k in ("conv2d", "convolution",
                                                                   "aten.linear")):
            counts["compute_ops"] += 1
            weight = node.args[1] if len(node.args) > 1 else None
            if getattr(weight, "target", None) is not None and "dequantize" in str(weight.target):
                counts["int8_compute_ops"] += 1
    counts["fp32_compute_ops"] = counts["compute_ops"] - counts["int8_compute_ops"]
    return dict(counts)


# -- ONNX Runtime ----------------------------------------------------------------------------
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
    source = ctx.fp32_onnx(parent, config.opset)
    pre = ctx.file(parent, f"int8-{config.calibrate_method}-pre.onnx")
    out = ctx.file(parent, f"int8-{config.calibrate_method}.onnx")
    quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    act = QuantType.QUInt8 if config.activation_type == "uint8" else QuantType.QInt8
    mode = ort_mode(config.int8_mode, cpu_features())
    # Measured on ResNet18/Fashion-MNIST: quantizing the classifier cost 1.7 top-1 points
    # (86.97 -> 85.30); leaving that one small Gemm in fp32 gave 87.02 at no measurable cost.
    graph = _graph(pre)
    keep = _classifier_nodes(graph) if config.keep_classifier_fp32 else []
    quantize_static(str(pre), str(out), _Reader(data, graph.input[0].name,
                                                 config.calibration_batches, config.batch_size),
                    quant_format=QuantFormat.QDQ, per_channel=config.per_channel,
                    activation_type=act, calibrate_method=methods[config.calibrate_method],
                    nodes_to_exclude=keep, **ort_weight_args(mode))
    pre.unlink(missing_ok=True)
    ops = onnx_op_counts(out)
    info = {"int8": True, "ops": ops, "activation_type": config.activation_type,
            "fp32_nodes": keep, "int8_mode": mode.to_dict()}
    hints = ()
    if config.activation_type == "int8":
        info["warnings"] = [SIGNED_ACTIVATIONS_WARNING]
        hints = (SIGNED_ACTIVATIONS_WARNING + ";",)
    variant = parent.derive(f"ptq-ort-static-{config.calibrate_method}", onnx_path=out,
                            runtimes=("onnxruntime",), info=info)
    check_int8(parent, variant, data, config.guard, mode_hints(mode, *hints))
    return variant


SIGNED_ACTIVATIONS_WARNING = ("signed int8 activations: ORT on x86 leaves many convs in fp32 "
                              "(measured ~40% here, 3x slower); use activation_type='uint8'")


def ort_weight_args(mode: Int8Mode) -> dict:
    """quantize_static/quantize_dynamic keyword arguments for an int8 mode."""
    from onnxruntime.quantization import QuantType

    weight = QuantType.QUInt8 if mode.mode == "u8u8" else QuantType.QInt8
    return {"weight_type": weight, "reduce_range": mode.mode == "u8s8-reduce-range"}


@register(OrtDynamicQuantConfig)
def quantize_ort_dynamic(parent: Variant, config: OrtDynamicQuantConfig, ctx: Context) -> Variant:
    from onnxruntime.quantization import quantize_dynamic

    source = ctx.fp32_onnx(parent, config.opset)
    out = ctx.file(parent, "int8-dynamic.onnx")
    mode = ort_mode(config.int8_mode, cpu_features(), dynamic=True)
    quantize_dynamic(str(source), str(out), **ort_weight_args(mode))
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
    """The last Gemm/MatMul node (the classifier), if any."""
    heads = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    return heads[-1:]


def _graph(path: Path):
    import onnx

    return onnx.load(str(path), load_external_data=False).graph
