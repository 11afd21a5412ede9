"""Int8 with PT2E, calibrated on real data: `ptq-pt2e` (torch.export + X86InductorQuantizer +
prepare_pt2e/convert_pt2e from torchao), run by the `torch-compile` runtime (Inductor with
freezing lowers it to int8 oneDNN kernels); models torch.export cannot capture fall back to the
deprecated FX path, warned. The ONNX Runtime methods live in quantize_ort.py.

The int8 format stays exact on the CPU it runs on (`int8_mode`, optbench.isa: 7-bit activations
where the CPU has no VNNI), and the accuracy guard (optbench.transforms.guard) checks the result
against its parent before it is returned.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import warnings
from collections import Counter
from typing import ClassVar

import torch
from torch import nn

from optbench.config import Config, check_choice, check_positive
from optbench.data import make_loader
from optbench.errors import ConfigError
from optbench.isa import PT2E_MODES, Int8Mode, cpu_features, pt2e_mode
from optbench.transforms.base import Context, Variant, register, require_module
from optbench.transforms.guard import Int8Guard, check_int8, mode_hints


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
            from optbench.models import classifier_name

            mapping = get_default_qconfig_mapping("x86")  # 7-bit activations everywhere
            if (head := classifier_name(model)) is not None:
                mapping = mapping.set_module_name(head, None)
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
    specializes a batch of 1 to a constant). Without the input-guard submodule that `.module()`
    adds by default: its forward is a local function, so the int8 model could not be sent to
    the fresh worker processes of `processes = N` (pickling failed)."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    return program.module(check_guards=False)


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
    replaced by int8 constants); otherwise a saved int8 model is ~5x too big. Also removes
    the per-instance train/eval overrides that export leaves on the graph module: they are bound
    methods, so pickling the model (to send it to the fresh worker processes of
    `processes = N`) recursed without end. An int8 graph only runs in eval mode anyway."""
    for name in ("train", "eval"):
        gm.__dict__.pop(name, None)
    # unpickling re-creates the graph with the tracer class recorded here; export's tracer
    # cannot be built without arguments, the default fx tracer can
    gm._tracer_cls, gm._tracer_extras = None, {}
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
