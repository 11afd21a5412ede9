"""QAT's conv-bn passes run only for the conv kinds the graph holds (transforms/qat.py)."""

import torch
import torch.nn.functional as F
from conftest import TinyNet
from torch import nn

from optbench.isa import cpu_features, pt2e_mode
from optbench.transforms.qat import _holds_conv_kind, conv_bn_passes_for_present_kinds
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


def _prepare_and_convert(model, spy=None):
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    mode = pt2e_mode("auto", cpu_features())
    prepared = prepare_qat_pt2e(_exported(model), x86_quantizer(is_qat=True, mode=mode))
    torch.manual_seed(1)
    for _ in range(2):
        prepared(torch.randn(8, 1, 16, 16))   # observers and batch-norm statistics
    move_exported_model_to_eval(prepared)
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
    with conv_bn_passes_for_present_kinds():
        converted = _prepare_and_convert(UpNet())
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
