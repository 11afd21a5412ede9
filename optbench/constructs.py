"""Which model constructs a graph holds that some methods cannot take (channel split and
shuffle, grouped convolutions, attention), so a failure can name them instead of surfacing a
library's bare exception."""

from __future__ import annotations

import operator

from torch import nn

SPLIT_OPS = ("chunk", "split", "tensor_split", "unbind")
RESHAPE_OPS = ("view", "reshape", "flatten")


def model_constructs(model: nn.Module) -> list[str]:
    """Plain-words list of the constructs found (by module type and, where torch.fx can trace
    the model, by operation)."""
    found = _module_constructs(model)
    found += _graph_constructs(model)
    return sorted(set(found))


def _module_constructs(model: nn.Module) -> list[str]:
    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and 1 < m.groups < m.in_channels:
            out.append(f"grouped convolutions (e.g. {name}: groups={m.groups})")
        elif isinstance(m, nn.MultiheadAttention) or type(m).__name__.endswith("Attention"):
            out.append(f"attention heads (e.g. {name}: {type(m).__name__})")
        elif type(m).__name__ == "LayerNorm2d" or (isinstance(m, nn.LayerNorm)
                                                    and "norm" in name and "conv" in name):
            out.append(f"channel LayerNorm (e.g. {name})")
    return _first_of_each_kind(out)


def _graph_constructs(model: nn.Module) -> list[str]:
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # untraceable forward: the module scan is all we have
        return ["a forward torch.fx cannot trace (data-dependent Python control flow)"]
    out = []
    for node in graph.nodes:
        target = node.target if isinstance(node.target, str) else getattr(
            node.target, "__name__", str(node.target))
        if target in SPLIT_OPS:
            out.append(f"channel split ({target})")
        elif target in ("transpose", "permute") and _after_reshape(node):
            out.append(f"reshape then {target} of channels (channel shuffle, patch embedding)")
        elif node.target is operator.getitem and _slices_channels(node):
            out.append("channel slicing (x[:, a:b])")
    return _first_of_each_kind(out)


def _after_reshape(node) -> bool:
    src = node.args[0] if node.args else None
    name = getattr(src, "target", None)
    name = name if isinstance(name, str) else getattr(name, "__name__", "")
    return name in RESHAPE_OPS


def _slices_channels(node) -> bool:
    index = node.args[1] if len(node.args) > 1 else None
    return (isinstance(index, tuple) and len(index) > 1 and isinstance(index[1], slice)
            and index[1] != slice(None))


def _first_of_each_kind(items: list[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        kind = item.split(" (")[0]
        if kind not in seen:
            seen.add(kind)
            out.append(item)
    return out
