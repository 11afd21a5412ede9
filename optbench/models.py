"""Model zoo: torchvision classifiers adapted to a dataset (input channels, number of classes).

`stem` adapts the zoo's first layers to small (28-32 px) images, where an ImageNet stem (stride-2
7x7 conv + max-pool for ResNets, stride-2 first conv for MobileNets) shrinks a 32x32 image to 1x1
too early:

- "imagenet": the stock stem (the default);
- "small": a stride-1 3x3 first conv and no max-pool (`small_input=True`): 16x the stock cost;
- "small-pool" (ResNets): a stride-1 3x3 first conv that keeps the max-pool: 4x the stock cost at
  a given input size, half the "small" stem's resolution (a ResNet50 epoch on 54k 32x32
  images: about 5 min stock, 14 min small-pool on 2 EPYC cores).

The stem changes the network at every input size: timing a small-stem model at 224x224 times a
network 4-16x dearer than the stock one.
"""

from __future__ import annotations

import torch
from torch import nn

from optbench.errors import ConfigError, MissingInputError

ZOO = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
STEMS = ("imagenet", "small", "small-pool")


def resolve_stem(stem: str, small_input: bool) -> str:
    """The stem asked for by `stem` or the older `small_input=True` (= "small")."""
    if stem and stem not in STEMS:
        raise ConfigError(f"stem must be one of {list(STEMS)}, got {stem!r}")
    if small_input and stem not in ("", "small"):
        raise ConfigError(f"small_input=True means stem=\"small\"; it contradicts stem={stem!r} "
                          "(give one of them)")
    return "small" if small_input else (stem or "imagenet")


def build_model(name: str, num_classes: int = 10, in_channels: int = 3,
                weights: str | None = None, small_input: bool = False,
                stem: str = "") -> nn.Module:
    """A classifier with `in_channels` inputs and `num_classes` outputs. `name` is one of:

    - a zoo name (ZOO: the stems of these five can be swapped for small inputs);
    - `torchvision:<name>`, any torchvision classification model (its first convolution is
      rebuilt for `in_channels`);
    - `timm:<name>`, any timm model (`pip install timm`; architectures work offline);
    - `python:<package.module>:<function>`, your own code: called as
      function(num_classes=..., in_channels=...), it returns the nn.Module.

    weights="DEFAULT" (or a torchvision weights name) loads pretrained ImageNet weights where they
    are cached or downloadable; the classifier is then replaced when num_classes != 1000.
    """
    if num_classes < 1 or in_channels < 1:
        raise ConfigError(f"num_classes and in_channels must be >= 1, got {num_classes}, "
                          f"{in_channels}")
    stem = resolve_stem(stem, small_input)
    source, _, rest = name.partition(":")
    if rest:
        if stem != "imagenet":
            raise ConfigError(f"stem (small_input) swaps the stem of the zoo's models {list(ZOO)}; "
                              f"for {name} build the stem you want in your own code "
                              "(python:package.module:function)")
        if source not in _SOURCES:
            raise ConfigError(f"unknown model source {source!r} in {name!r}; use one of "
                              f"{sorted(_SOURCES)} (e.g. torchvision:regnet_y_400mf), or a zoo "
                              f"name {list(ZOO)}")
        return _SOURCES[source](rest, num_classes, in_channels, weights)
    if name not in ZOO:
        raise ConfigError(f"unknown model {name!r}; the zoo has {list(ZOO)}, or name another "
                          "source: torchvision:<name>, timm:<name>, "
                          "python:<package.module>:<function>")
    model = _torchvision(name, weights, num_classes)
    if weights is not None and num_classes != 1000:
        _replace_classifier(model, num_classes)
    if stem == "small-pool" and not hasattr(model, "maxpool"):
        raise ConfigError(f"stem=\"small-pool\" keeps a ResNet's max-pool; {name} has none "
                          "(use stem=\"small\")")
    if in_channels != 3 or stem != "imagenet":
        _adapt_stem(model, in_channels, stem, pretrained=weights is not None)
    return model


def _any_torchvision(name: str, num_classes: int, in_channels: int,
                     weights: str | None) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ConfigError(f"torchvision has no classification model {name!r}; some it has: "
                          f"{', '.join(sorted(known)[:12])}, ... "
                          "(torchvision.models.list_models())")
    model = _torchvision(name, weights, num_classes)
    if weights is not None and num_classes != 1000:
        head = classifier_name(model)
        if head is None:
            raise ConfigError(f"{name} has no nn.Linear classifier to replace for "
                              f"{num_classes} classes")
        old = model.get_submodule(head)
        model.set_submodule(head, nn.Linear(old.in_features, num_classes))
    if in_channels != 3:
        _replace_first_conv(model, in_channels, pretrained=weights is not None)
    return model


def _timm(name: str, num_classes: int, in_channels: int, weights: str | None) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise MissingInputError(f"timm:{name} needs timm: pip install timm") from None
    if weights not in (None, "", "DEFAULT"):
        raise ConfigError("for timm models weights is DEFAULT (timm's pretrained weights, "
                          "where cached) or empty")
    try:
        return timm.create_model(name, pretrained=bool(weights), num_classes=num_classes,
                                 in_chans=in_channels)
    except RuntimeError as exc:   # unknown model, weights not cached offline
        raise ConfigError(f"timm could not build {name!r}: {exc}") from None


def _python(target: str, num_classes: int, in_channels: int, weights: str | None) -> nn.Module:
    from optbench.config import entry_point

    if weights:
        raise ConfigError("weights apply to torchvision and timm models; load your own "
                          "weights with a checkpoint")
    fn = entry_point(target, "python: model", form="python:<package.module>:<function>")
    model = fn(num_classes=num_classes, in_channels=in_channels)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"python:{target} returned {type(model).__name__}, not an "
                          "nn.Module")
    return model


_SOURCES = {"torchvision": _any_torchvision, "timm": _timm, "python": _python}


def _replace_first_conv(model: nn.Module, in_channels: int, pretrained: bool) -> None:
    """Rebuild the first convolution (in module order) that takes 3 channels for in_channels."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.in_channels == 3 and m.groups == 1:
            model.set_submodule(name, _new_conv(m, in_channels, m.kernel_size, m.stride,
                                                m.padding, pretrained))
            return
    raise ConfigError(f"no 3-channel first convolution found in {type(model).__name__} to "
                      f"adapt to {in_channels} input channels")


def _torchvision(name: str, weights: str | None, num_classes: int) -> nn.Module:
    import torchvision

    if weights is None:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    try:
        return torchvision.models.get_model(name, weights=weights)
    except Exception as exc:  # network errors, missing cache, bad weight names
        hub = torch.hub.get_dir()
        raise MissingInputError(
            f"could not load torchvision weights {weights!r} for {name}: "
            f"{type(exc).__name__}: {exc}. Fix: connect to the internet once so torchvision can "
            f"download them, or copy the weight file into {hub}/checkpoints/, or use "
            "weights=None to train from scratch.") from exc


def classifier_name(model: nn.Module) -> str | None:
    """The qualified name of a classifier's output layer: its last nn.Linear (torchvision's
    classifiers all end in one). The methods that keep it whole (structured pruning keeps its
    classes, int8 keeps it in fp32) ask here; ONNX graphs have their own rule
    (transforms.quantize_ort: the last Gemm/MatMul node)."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def _replace_classifier(model: nn.Module, num_classes: int) -> None:
    if hasattr(model, "fc"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_classes)


def _adapt_stem(model: nn.Module, in_channels: int, stem: str, pretrained: bool) -> None:
    if hasattr(model, "conv1"):  # ResNet
        old = model.conv1
        kernel, stride, padding = ((3, 1, 1) if stem != "imagenet"
                                   else (old.kernel_size, old.stride, old.padding))
        model.conv1 = _new_conv(old, in_channels, kernel, stride, padding, pretrained)
        if stem == "small":
            model.maxpool = nn.Identity()
    else:  # MobileNet: features[0] is Conv2dNormActivation whose [0] is the conv
        old = model.features[0][0]
        stride = 1 if stem == "small" else old.stride
        model.features[0][0] = _new_conv(old, in_channels, old.kernel_size, stride, old.padding,
                                         pretrained)


def _new_conv(old: nn.Conv2d, in_channels: int, kernel, stride, padding,
              pretrained: bool) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, old.out_channels, kernel, stride, padding,
                     bias=old.bias is not None)
    if pretrained and conv.weight.shape[2:] == old.weight.shape[2:]:
        with torch.no_grad():  # keep pretrained filters: average them over the input channels
            mean = old.weight.mean(dim=1, keepdim=True)
            conv.weight.copy_(mean.expand_as(conv.weight) * 3.0 / in_channels)
    return conv


def load_model(name: str, num_classes: int = 10, in_channels: int = 3,
               weights: str | None = None, checkpoint: str | None = None,
               small_input: bool = False, stem: str = "") -> nn.Module:
    """A zoo model in eval mode, with weights from `checkpoint` when given: an optbench training
    checkpoint or a plain state dict, loaded with weights_only=True (never unpickled)."""
    model = build_model(name, num_classes=num_classes, in_channels=in_channels, weights=weights,
                        small_input=small_input, stem=stem)
    if checkpoint:
        from optbench.io import load_weights

        state = load_weights(checkpoint)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigError(f"checkpoint {checkpoint} does not fit {name} with {num_classes} "
                              f"classes and {in_channels} input channels: "
                              f"{str(exc).splitlines()[0]}; check num_classes and in_channels "
                              "(CLI: --num-classes, --input-shape) and the stem (small_input)"
                              ) from None
    return model.eval()
