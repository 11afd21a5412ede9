"""Quantization-aware training with PT2E: fake-quant inserted by X86InductorQuantizer(is_qat),
fine-tuned with the shared loop, converted to the same int8 graph as PTQ."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from optbench.config import Config, check_choice
from optbench.errors import ConfigError
from optbench.isa import PT2E_MODES, cpu_features, pt2e_mode
from optbench.train import TrainConfig, train
from optbench.transforms.base import Context, Variant, register, require_module
from optbench.transforms.distill import KDLoss, teacher_guided_loss
from optbench.transforms.guard import Int8Guard, check_int8, mode_hints
from optbench.transforms.quantize import (
    drop_unused_attributes,
    export_for_quantization,
    pt2e_op_counts,
    untie_shared_modules,
    x86_quantizer,
)


@dataclasses.dataclass(frozen=True)
class QATConfig(Config):
    method: ClassVar[str] = "qat-pt2e"
    checkpoint_suffix: ClassVar[str] = "qat.ckpt"   # OUT/work/STEP-qat.ckpt
    training_field: ClassVar[str] = "train"
    train: TrainConfig = TrainConfig(epochs=1, lr=0.001, optimizer="sgd", momentum=0.9,
                                     weight_decay=0.0)
    int8_mode: str = "auto"     # auto | full-range | reduce-range (see optbench.isa)
    # QAT moves the weights, so agreement with the fp32 parent is looser than after PTQ
    guard: Int8Guard = Int8Guard(min_agreement=0.6)
    teacher: str = ""           # teacher-guided recovery: distill from this step or model
    kd: KDLoss = KDLoss()       # the distillation loss when a teacher is named

    def __post_init__(self):
        check_choice("QATConfig", "int8_mode", self.int8_mode, PT2E_MODES)
        if self.train.compile:
            # torch 2.14: Inductor's code for torchao's fused observer + fake-quant op
            # (aten._fused_moving_avg_obs_fq_helper) asserts a per-tensor shape on the
            # per-channel weight scales, at the first compiled step
            raise ConfigError("qat-pt2e cannot train through torch.compile: Inductor fails on "
                              "the fake-quant graph's per-channel observers in torch 2.14; "
                              "set compile = false in this step's train table (QAT steps "
                              "train eager)")


class _ExportedTrainable(nn.Module):
    """Lets the shared loop call .train()/.eval() on an exported graph (which forbids them).
    torchao's switch rewrites dropout and batch-norm patterns, traced with strict export: it
    runs with the compiled programs kept (strict_exports_keep_compiled_code)."""

    def __init__(self, gm):
        super().__init__()
        self.gm = gm

    def train(self, mode: bool = True):
        from torchao.quantization.pt2e import (
            move_exported_model_to_eval,
            move_exported_model_to_train,
        )

        with strict_exports_keep_compiled_code():
            (move_exported_model_to_train if mode else move_exported_model_to_eval)(self.gm)
        self.training = mode
        return self

    def forward(self, x):
        return self.gm(x)


# torchao's QAT conv-bn fusion (prepare) and folding (convert) run once per conv kind (conv1d,
# conv2d, conv_transpose1d/2d), and each run traces its pattern graphs with torch.export (the
# folding 24 per kind), most of them for kinds the model does not hold, which can never match.
# Only the kinds present in the graph are run: a conv2d net's prepare + convert took 9-14 s
# instead of 34-38 s on 2 AVX2 cores (commit 7c8ca10).
_CONV_KINDS = {F.conv1d: "conv1d", F.conv2d: "conv2d", F.conv_transpose1d: "conv_transpose1d",
               F.conv_transpose2d: "conv_transpose2d"}
_CONV_BN_PASSES = ("_fuse_conv_bn_qat_helper", "_fold_conv_bn_qat_helper")


def _holds_conv_kind(gm, conv_fn) -> bool:
    kind = _CONV_KINDS.get(conv_fn)
    if kind is None:    # a kind this table does not know: run torchao's pass as it is
        return True
    packet = getattr(torch.ops.aten, kind)
    return any(n.op == "call_function" and getattr(n.target, "overloadpacket", n.target) is packet
               for n in gm.graph.nodes)


@contextlib.contextmanager
def conv_bn_passes_for_present_kinds():
    """Inside: torchao's per-conv-kind QAT conv-bn passes skip the kinds absent from the graph
    (a pattern holding conv_transpose1d cannot match a graph without one), so a conv2d model
    traces a quarter of the patterns. Outside, and where torchao no longer has these passes,
    torchao runs unchanged."""
    from torchao.quantization.pt2e import qat_utils

    originals = {name: getattr(qat_utils, name) for name in _CONV_BN_PASSES
                 if callable(getattr(qat_utils, name, None))}

    def only_present(original):
        @functools.wraps(original)
        def run(m, conv_fn, *args, **kwargs):
            return original(m, conv_fn, *args, **kwargs) if _holds_conv_kind(m, conv_fn) else m
        return run

    for name, original in originals.items():
        setattr(qat_utils, name, only_present(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(qat_utils, name, original)


def strict_exports_keep_compiled_code():
    """Inside: strict torch.export (torchao's QAT passes trace each pattern graph with it) uses
    Dynamo's v1 capture, which forgets only the traced pattern's own compiled code. torch 2.14's
    default capture calls torch._dynamo.reset() before every trace, dropping every program
    compiled in the process: the KD teacher compiled for the distillation steps compiled again
    in QAT (20-24 s in the flagship's quick run), at the first train()/eval() switch of the
    exported graph as well as in prepare and convert. Where torch has no such switch, a no-op."""
    import torch._export.config as export_config

    if not hasattr(export_config, "use_new_tracer_experimental"):
        return contextlib.nullcontext()
    return export_config.patch(use_new_tracer_experimental=False)


@contextlib.contextmanager
def qat_passes():
    """torchao's QAT prepare and convert passes, run the way this module needs them: conv-bn
    patterns for the present conv kinds only, compiled programs (a teacher) kept."""
    with conv_bn_passes_for_present_kinds(), strict_exports_keep_compiled_code():
        yield


@register(QATConfig)
def qat(parent: Variant, config: QATConfig, ctx: Context) -> Variant:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    data = ctx.require("train_data", config.method)
    model = untie_shared_modules(copy.deepcopy(require_module(parent, config.method)).train())
    mode = pt2e_mode(config.int8_mode, cpu_features())
    with qat_passes():
        prepared = prepare_qat_pt2e(export_for_quantization(model, ctx.example(2)),
                                    x86_quantizer(is_qat=True, mode=mode))
    wrapper = _ExportedTrainable(prepared)
    loss_fn = (teacher_guided_loss(ctx.require("teacher", config.method), config.kd, ctx.device)
               if config.teacher else None)
    history = train(wrapper, data, config.train, device=ctx.device, progress=ctx.progress,
                    checkpoint=ctx.file(parent, config.checkpoint_suffix), loss_fn=loss_fn).history
    wrapper.train(False)
    with qat_passes():
        converted = drop_unused_attributes(convert_pt2e(wrapper.gm))
    variant = parent.derive("qat-pt2e", model=converted, runtimes=("torch-compile",),
                            info={"int8": True, "ops": pt2e_op_counts(converted),
                                  "history": history, "int8_mode": mode.to_dict(),
                            **({"teacher": config.teacher} if config.teacher else {})})
    check_int8(parent, variant, ctx.calib_data if ctx.calib_data is not None else data,
               config.guard, mode_hints(mode))
    return variant
