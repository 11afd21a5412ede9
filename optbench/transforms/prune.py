"""Pruning: unstructured magnitude pruning (zeros; no dense speed-up) and structured channel
pruning with Torch-Pruning's dependency graph (physically smaller layers; real speed-up)."""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

from torch import nn

from optbench.config import Config, check_choice
from optbench.errors import ConfigError, OptbenchError, UnsupportedModelError
from optbench.train import TrainConfig, evaluate, train
from optbench.transforms.base import Context, Variant, register, require_module
from optbench.transforms.distill import KDLoss, teacher_guided_loss

UNSTRUCTURED_NOTE = ("Unstructured sparsity does not make dense kernels faster: the zeros are "
                     "still multiplied. It shrinks the compressed (gzip) size only.")


@dataclasses.dataclass(frozen=True)
class UnstructuredPruneConfig(Config):
    method: ClassVar[str] = "prune-unstructured"
    ratio: float = 0.5                  # fraction of weights set to zero
    scope: str = "global"               # "global" ranks all layers together; "layer": each alone
    skip: tuple[str, ...] = ()          # module names to leave dense (e.g. "fc")

    def __post_init__(self):
        if not 0.0 < self.ratio < 1.0:
            raise ConfigError(f"UnstructuredPruneConfig.ratio must lie in (0, 1), got {self.ratio}")
        check_choice("UnstructuredPruneConfig", "scope", self.scope, ("global", "layer"))


@dataclasses.dataclass(frozen=True)
class StructuredPruneConfig(Config):
    method: ClassVar[str] = "prune-structured"
    checkpoint_suffix: ClassVar[str] = "finetune.ckpt"   # OUT/work/STEP-finetune.ckpt
    training_field: ClassVar[str] = "finetune"
    ratio: float = 0.5                  # fraction of channels removed per layer (scope
    #                                     "global": of all prunable channels together)
    target_macs_ratio: float = 0.0      # if > 0: prune until MACs <= this fraction of the input's
    scope: str = "layer"                # "layer": every layer loses `ratio`; "global": channels
    #                                     ranked across layers (importance relative to each
    #                                     layer's mean), so layers lose unevenly at the same total
    max_layer_ratio: float = 0.8        # scope "global": no layer loses more than this fraction
    importance: str = "l1"              # "l1"/"l2" norm of the filters; "bn": BatchNorm scale
    round_to: int = 8                   # keep channel counts multiples of this (SIMD-friendly)
    rounding: str = "nearest"           # kept channels: the nearest multiple, or "down" (what
    #                                     Torch-Pruning does: 30% of 64 at round_to 16 cuts 50%)
    recalibrate_bn: int = 1024          # images to re-estimate BatchNorm statistics on after
    #                                     pruning (calibration data, else training data); 0: off
    skip: tuple[str, ...] = ()          # module names never pruned; the classifier always is
    layer_ratios: dict[str, float] = dataclasses.field(default_factory=dict)
    #                                     scope "layer": module name -> the fraction its convs
    #                                     lose instead of `ratio` (a stage, e.g. "layer4", or
    #                                     one conv); where batch-1 latency follows the weights
    #                                     streamed, cutting the widest stages buys most
    finetune: TrainConfig | None = None
    teacher: str = ""                   # fine-tune by distilling from this step or model
    kd: KDLoss = KDLoss()               # the distillation loss when a teacher is named

    def __post_init__(self):
        if self.teacher and self.finetune is None:
            raise ConfigError("StructuredPruneConfig.teacher guides the fine-tuning; give "
                              "finetune = { epochs = ... } too, or drop the teacher")
        if not 0.0 < self.ratio < 1.0:
            raise ConfigError(f"StructuredPruneConfig.ratio must lie in (0, 1), got {self.ratio}")
        if not 0.0 <= self.target_macs_ratio < 1.0:
            raise ConfigError("StructuredPruneConfig.target_macs_ratio must lie in [0, 1), got "
                              f"{self.target_macs_ratio}")
        check_choice("StructuredPruneConfig", "importance", self.importance, IMPORTANCE)
        check_choice("StructuredPruneConfig", "rounding", self.rounding, ("nearest", "down"))
        check_choice("StructuredPruneConfig", "scope", self.scope, ("layer", "global"))
        if not 0.0 < self.max_layer_ratio < 1.0:
            raise ConfigError("StructuredPruneConfig.max_layer_ratio must lie in (0, 1), got "
                              f"{self.max_layer_ratio}")
        if self.round_to < 1:
            raise ConfigError(f"StructuredPruneConfig.round_to must be >= 1, got {self.round_to}")
        if not isinstance(self.layer_ratios, dict):
            raise ConfigError("StructuredPruneConfig.layer_ratios maps module names to ratios, "
                              f'e.g. {{ layer4 = 0.6 }}; got {self.layer_ratios!r}')
        nested = [k for k, v in self.layer_ratios.items() if isinstance(v, dict)]
        if nested:
            raise ConfigError(f"StructuredPruneConfig.layer_ratios: {nested} holds a table, "
                              "not a ratio; in TOML quote a dotted module name, e.g. "
                              '{ "layer4.0.conv1" = 0.5 }')
        bad = {k: v for k, v in self.layer_ratios.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0}
        if bad:
            raise ConfigError(f"StructuredPruneConfig.layer_ratios: ratios must lie in [0, 1) "
                              f"(0 leaves the module's channels as they are), got {bad}")
        if self.layer_ratios and (self.scope != "layer" or self.target_macs_ratio):
            raise ConfigError("StructuredPruneConfig.layer_ratios sets each module's cut by "
                              "hand; it works with scope = \"layer\" and no target_macs_ratio "
                              "(drop one or the other)")
        if self.recalibrate_bn < 0:
            raise ConfigError("StructuredPruneConfig.recalibrate_bn is a number of images "
                              f"(0 turns it off), got {self.recalibrate_bn}")


IMPORTANCE = ("l1", "l2", "bn")


@register(UnstructuredPruneConfig)
def prune_unstructured(parent: Variant, config: UnstructuredPruneConfig, ctx: Context) -> Variant:
    from torch.nn.utils import prune

    model = copy.deepcopy(require_module(parent, config.method))
    targets = [(m, "weight") for name, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)) and name not in config.skip]
    if not targets:
        raise ConfigError("no Conv2d/Linear layers left to prune; check "
                          "UnstructuredPruneConfig.skip")
    if config.scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured,
                                  amount=config.ratio)
    else:
        for module, attr in targets:
            prune.l1_unstructured(module, attr, amount=config.ratio)
    for module, attr in targets:
        prune.remove(module, attr)  # make it permanent: a plain weight with zeros in it
    return parent.derive("prune-unstructured", model=model,
                         info={"sparsity": sparsity_report(model), "note": UNSTRUCTURED_NOTE,
                               "unstructured_sparsity": True})


def sparsity_report(model: nn.Module) -> dict:
    layers, zeros, total = {}, 0, 0
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight.detach()
            z = int((w == 0).sum())
            layers[name] = z / w.numel()
            zeros, total = zeros + z, total + w.numel()
    return {"global": zeros / max(total, 1), "layers": layers}


@register(StructuredPruneConfig)
def prune_structured(parent: Variant, config: StructuredPruneConfig, ctx: Context) -> Variant:
    import torch_pruning as tp

    model = copy.deepcopy(require_module(parent, config.method)).eval().cpu()
    example = ctx.example(1).cpu()
    ignored = _ignored_layers(model, config.skip)
    ratios = _layer_ratios(model, config.layer_ratios)
    importance = (tp.importance.BNScaleImportance() if config.importance == "bn" else
                  tp.importance.MagnitudeImportance(p=1 if config.importance == "l1" else 2))
    try:
        macs_before, params_before, macs, params = _prune(tp, model, example, importance,
                                                          ignored, ratios, config)
        _check_still_runs(model, example, parent)
    except OptbenchError:
        raise
    except Exception as exc:  # Torch-Pruning's own failures: name the construct instead
        raise unsupported(model, exc) from exc
    info = {"macs_before": macs_before, "macs_after": macs, "params_before": params_before,
            "params_after": params, "round_to": config.round_to,
            "channels": channel_counts(model), "rounding": config.rounding,
            "scope": config.scope}
    info.update(_recalibrate(model, config, ctx))
    if ctx.val_data is not None:   # what the fine-tuning (if any) starts from
        info["val_accuracy_pruned"] = evaluate(model, ctx.val_data)   # on the CPU, as pruned
    if config.finetune is not None:
        data = ctx.require("train_data", config.method + " with finetune")
        loss_fn = (teacher_guided_loss(ctx.require("teacher", config.method), config.kd,
                                       ctx.device) if config.teacher else None)
        info["finetune"] = train(model, data, config.finetune, device=ctx.device,
                                 checkpoint=ctx.file(parent, config.checkpoint_suffix),
                                 progress=ctx.progress, val_data=ctx.val_data,
                                 loss_fn=loss_fn).history
        if config.teacher:
            info["finetune_teacher"] = config.teacher
        lost = lost_start(info.get("val_accuracy_pruned"), info["finetune"])
        if lost:
            info.setdefault("warnings", []).append(lost)
    return parent.derive("prune-structured", model=model.eval(), info=info)


def lost_start(start: float | None, history: list[dict]) -> str | None:
    """A warning when the fine-tune's first epoch ended below what pruning left (validation
    top-1), else None. Right after pruning, gradients run far larger than in training (norms
    of 170-530 on the composition's ResNet50): at full lr the first steps can wreck the
    network, and the fine-tune then retrains it instead of recovering it."""
    first = history[0].get("val_accuracy") if history else None
    if start is None or first is None or first >= start:
        return None
    return (f"the fine-tune lost the pruned start: {100 * first:.2f}% validation top-1 after "
            f"its first epoch against {100 * start:.2f}% right after pruning; set "
            f"finetune.warmup_epochs and finetune.grad_clip_norm (e.g. 0.2 and 5.0), which "
            f"kept it on the composition's ResNet50 (results/composition_global/first_steps, "
            f"results/composition_stages)")


def _prune(tp, model, example, importance, ignored, ratios, config: StructuredPruneConfig):
    macs_before, params_before = tp.utils.count_ops_and_params(model, example)
    steps = 10 if config.target_macs_ratio else 1
    ratio = 0.9 if config.target_macs_ratio else config.ratio
    ranked_globally = config.scope == "global"
    pruner = tp.pruner.MetaPruner(model, example, importance=importance, pruning_ratio=ratio,
                                  pruning_ratio_dict=ratios or None, iterative_steps=steps,
                                  ignored_layers=ignored,
                                  round_to=config.round_to, global_pruning=ranked_globally,
                                  max_pruning_ratio=config.max_layer_ratio if ranked_globally
                                  else 1.0)
    if config.rounding == "nearest":
        pruner._round_to = _round_to_nearest   # Torch-Pruning's own rounds the kept count down
    for _ in range(steps):
        pruner.step()
        macs, params = tp.utils.count_ops_and_params(model, example)
        if config.target_macs_ratio and macs <= config.target_macs_ratio * macs_before:
            break
    return macs_before, params_before, macs, params


def _round_to_nearest(n_pruned: int, current_channels: int, round_to: int) -> int:
    """How many of `current_channels` to remove so that the kept count is the multiple of
    `round_to` nearest to what the ratio asks (at least one multiple, never more than there
    are). Torch-Pruning rounds the kept count down, which for few channels and a coarse
    multiple removes far more than asked (64 channels, 30%, round_to 16: 44.8 kept -> 32)."""
    wanted = current_channels - n_pruned
    kept = max(round_to, int((wanted + round_to / 2) // round_to) * round_to)
    return max(current_channels - min(kept, current_channels), 0)


def _recalibrate(model: nn.Module, config: StructuredPruneConfig, ctx: Context) -> dict:
    """Re-estimate BatchNorm running statistics of the pruned model: removing channels changes
    the statistics that follow, and eval-mode BatchNorm would keep the old ones: a pruned
    ResNet50 then scores at chance before any fine-tuning (results/pruning_start)."""
    data = ctx.calib_data if ctx.calib_data is not None else ctx.train_data
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not config.recalibrate_bn or not norms:
        return {}
    if data is None:
        return {"bn_recalibrated": "no: the Context has neither calib_data nor train_data"}
    import torch

    from optbench.data import make_loader

    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None   # a cumulative average over every batch seen
    seen = 0
    model.train()
    with torch.no_grad():
        for x, _ in make_loader(data, batch_size=128, shuffle=True, seed=0):
            model(x)   # the model is on the CPU while it is pruned
            seen += len(x)
            if seen >= config.recalibrate_bn:
                break
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()
    return {"bn_recalibrated": seen}


def _check_still_runs(model: nn.Module, example, parent: Variant) -> None:
    import torch

    was_training = parent.model.training   # a model fresh from its constructor trains: a
    parent.model.eval()                     # forward would update its BatchNorm statistics
    try:
        with torch.no_grad():
            out = model(example)
            expected = parent.model(example)
    finally:
        parent.model.train(was_training)
    if tuple(out.shape) != tuple(expected.shape):
        raise RuntimeError(f"the pruned model returns shape {tuple(out.shape)}, "
                           f"not {tuple(expected.shape)}")


def unsupported(model: nn.Module, exc: Exception) -> UnsupportedModelError:
    """The error for a model Torch-Pruning cannot prune: the constructs found, the fixes."""
    from optbench.constructs import model_constructs

    lines = str(exc).strip().splitlines()
    cause = f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"
    found = model_constructs(model)
    holds = ("it holds " + "; ".join(found) + ", which channel pruning cannot keep "
             "consistent") if found else "no construct known to block channel pruning was found"
    return UnsupportedModelError(
        f"prune-structured cannot prune this {type(model).__name__}: Torch-Pruning failed "
        f"({cause}); {holds}. Alternatives: name the blocks that hold it in "
        "StructuredPruneConfig.skip, use prune-unstructured (smaller gzip, no speed-up), "
        "int8 (ptq-ort-static, ptq-pt2e), or distill into a prunable student.")


def channel_counts(model: nn.Module) -> dict[str, int]:
    return {name: m.out_channels for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _layer_ratios(model: nn.Module, layer_ratios: dict[str, float]) -> dict[nn.Module, float]:
    """`layer_ratios` by module: Torch-Pruning gives every conv inside a named module its ratio.
    A group of coupled channels (a ResNet stage's residual width, which also feeds the next
    stage and the classifier) takes the ratio of the conv that roots it."""
    modules = _modules_named(model, layer_ratios, "layer_ratios")
    return {modules[name]: float(ratio) for name, ratio in layer_ratios.items()}


def _ignored_layers(model: nn.Module, skip: tuple[str, ...]) -> list[nn.Module]:
    from optbench.models import classifier_name

    modules = _modules_named(model, skip, "skip")
    ignored = [modules[s] for s in skip]
    head = classifier_name(model)
    if head is not None:
        ignored.append(modules[head])  # the classifier keeps its outputs (the classes)
    return ignored


def _modules_named(model: nn.Module, wanted, field: str) -> dict[str, nn.Module]:
    """The model's modules by name, or a ConfigError naming the `field` entries it lacks."""
    names = dict(model.named_modules())
    unknown = [s for s in wanted if not s or s not in names]
    if unknown:
        raise ConfigError(f"StructuredPruneConfig.{field} names unknown modules {unknown}; "
                          f"e.g. {[n for n in names if n and '.' not in n][:8]}")
    return names

