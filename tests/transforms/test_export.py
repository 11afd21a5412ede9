"""ONNX export: the exporter traces a copy whose activations run out of place (the same graph,
exported faster), and the caller's model keeps its own flags."""

import torch
from torch import nn

from optbench.runtime import get_runtime
from optbench.runtime.base import predict
from optbench.transforms.export import export_onnx, out_of_place


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU6(inplace=True),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(inplace=True),
                         nn.Linear(4, 3)).eval()


def test_out_of_place_turns_every_inplace_flag_off():
    net = out_of_place(_net())
    flags = [m.inplace for m in net.modules() if hasattr(m, "inplace")]
    assert len(flags) == 3 and not any(flags)


def test_export_of_in_place_activations_matches_torch_and_leaves_the_model_alone(tmp_path):
    net = _net()
    path = export_onnx(net, torch.randn(2, 1, 8, 8), tmp_path / "net.onnx")
    assert [m.inplace for m in net.modules() if hasattr(m, "inplace")] == [True] * 3
    x = torch.randn(3, 1, 8, 8)
    session = get_runtime("onnxruntime").load(path)
    with torch.no_grad():
        expected = net(x)
    torch.testing.assert_close(torch.as_tensor(predict(session, x)), expected,
                               rtol=1e-5, atol=1e-5)
