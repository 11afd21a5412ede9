"""QAT's conv-bn passes run only for the conv kinds the graph holds, and keep the programs
compiled before them (transforms/qat.py)."""

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import TinyNet
from torch import nn

from optbench.errors import ConfigError
from optbench.isa import cpu_features, pt2e_mode
from optbench.train import TrainConfig
from optbench.transforms.qat import (
    QATConfig,
    _ExportedTrainable,
    _holds_conv_kind,
    conv_bn_passes_for_present_kinds,
    qat_passes,
    strict_exports_keep_compiled_code,
)
from optbench.transforms.quantize import export_for_quantization, x86_quantizer


class UpNet(nn.Module):
    """conv2d and conv_transpose2d, each followed by batch norm."""

    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4))
        self.up = nn.Sequential(nn.ConvTranspose2d(4, 4, 2, stride=2), nn.BatchNorm2d(4))
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.up(torch.relu(self.down(x))).mean((2, 3)))


def _exported(model):
    torch.manual_seed(0)
    return export_for_quantization(model.train(), torch.randn(2, 1, 16, 16))


def test_the_graph_says_which_conv_kinds_it_holds():
    gm = _exported(UpNet())
    assert _holds_conv_kind(gm, F.conv2d) and _holds_conv_kind(gm, F.conv_transpose2d)
    assert not _holds_conv_kind(gm, F.conv1d) and not _holds_conv_kind(gm, F.conv_transpose1d)
    assert _holds_conv_kind(gm, F.conv3d)   # not in the table: torchao's pass runs as it is


def _prepare_and_convert(model, passes):
    """As qat() does it: prepare and convert inside `passes`, the train/eval switches (which
    trace patterns too) outside it."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    mode = pt2e_mode("auto", cpu_features())
    with passes():
        prepared = prepare_qat_pt2e(_exported(model), x86_quantizer(is_qat=True, mode=mode))
    trainable = _ExportedTrainable(prepared).train()
    torch.manual_seed(1)
    for _ in range(2):
        trainable(torch.randn(8, 1, 16, 16))   # observers and batch-norm statistics
    trainable.train(False)
    with passes():
        return convert_pt2e(prepared)


def test_only_present_kinds_trace_patterns_and_the_conv_batch_norm_still_folds(monkeypatch):
    from torchao.quantization.pt2e import qat_utils

    ran = []
    for name in ("_fuse_conv_bn_qat_helper", "_fold_conv_bn_qat_helper"):
        original = getattr(qat_utils, name)

        def spy(m, conv_fn, *args, _name=name, _original=original, **kwargs):
            ran.append((_name, conv_fn.__name__))
            return _original(m, conv_fn, *args, **kwargs)

        monkeypatch.setattr(qat_utils, name, spy)
    converted = _prepare_and_convert(UpNet(), conv_bn_passes_for_present_kinds)
    assert sorted(ran) == [(p, k) for p in ("_fold_conv_bn_qat_helper",
                                            "_fuse_conv_bn_qat_helper")
                           for k in ("conv2d", "conv_transpose2d")]
    # the conv2d's batch norm was folded into its weights: the conv feeds the quantize node
    # directly (unfolded, QAT's simulated batch norm would sit in between)
    conv = next(n for n in converted.graph.nodes if n.target == torch.ops.aten.conv2d.default)
    assert [str(u.target) for u in conv.users] == ["quantized_decomposed.quantize_per_tensor."
                                                   "default"]
    # outside the context torchao's own passes are back
    assert qat_utils._fold_conv_bn_qat_helper is not None
    assert getattr(qat_utils._fold_conv_bn_qat_helper, "__wrapped__", None) is None


def test_an_absent_kinds_pass_leaves_the_graph_as_it_was():
    """What the skip relies on, checked on torchao's own pass: the conv1d fusion run on a
    conv2d-only graph changes nothing."""
    from torchao.quantization.pt2e import qat_utils

    gm = _exported(TinyNet())
    before = gm.code
    example = (torch.randn(1, 1, 3), torch.randn(1, 1, 1), *(torch.randn(1) for _ in range(5)))
    qat_utils._fuse_conv_bn_qat_helper(gm, F.conv1d, example, is_cuda=False)
    assert gm.code == before


class _Teacher(nn.Module):
    """A model of its own class, so its forward's compiled code is this test's alone."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def test_the_qat_passes_keep_a_teacher_compiled_before_them():
    """torch 2.14's strict export resets Dynamo before each trace, and torchao's QAT passes
    trace dozens of patterns: a KD teacher compiled for the distillation steps would compile
    again in QAT. Its compiled code survives prepare and convert (inside qat_passes) and the
    exported graph's train/eval switches, as qat() runs them; the int8 graph is the one made
    with prepare and convert traced by the default capture."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    from optbench.runtime import get_runtime

    session = get_runtime("torch-compile").load(_Teacher().eval(), example=torch.randn(2, 1, 8, 8))
    code = _Teacher.forward.__code__
    assert len(_debug_get_cache_entry_list(code)) == 1
    torch.manual_seed(2)
    net = TinyNet()   # one conv kind: half the patterns of UpNet to trace
    kept = _prepare_and_convert(copy.deepcopy(net), qat_passes)
    assert len(_debug_get_cache_entry_list(code)) == 1
    session.run(torch.randn(2, 1, 8, 8))
    assert len(_debug_get_cache_entry_list(code)) == 1    # the same program, not a recompile
    default = _prepare_and_convert(net, _default_capture)
    x = torch.randn(4, 1, 16, 16)
    assert torch.equal(kept(x), default(x))


@contextlib.contextmanager
def _default_capture():
    """conv-bn passes for the present kinds, prepare and convert traced with torch's default
    strict capture."""
    import torch._export.config as export_config

    with conv_bn_passes_for_present_kinds(), export_config.patch(
            use_new_tracer_experimental=True):
        yield


def test_outside_the_switch_torch_is_left_as_it_was():
    import torch._export.config as export_config

    before = export_config.use_new_tracer_experimental
    with strict_exports_keep_compiled_code():
        assert export_config.use_new_tracer_experimental is False
    assert export_config.use_new_tracer_experimental == before


def test_qat_refuses_compiled_training_with_the_fix_named():
    """torch 2.14's Inductor fails on the QAT graph's per-channel fake-quant observers at the
    first compiled step (aten._fused_moving_avg_obs_fq_helper): the config says so up front."""
    with pytest.raises(ConfigError, match="compile = false"):
        QATConfig(train=TrainConfig(epochs=1, compile=True))
    assert not QATConfig(train=TrainConfig(epochs=1)).train.compile
