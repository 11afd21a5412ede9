"""Your model in your pytest-benchmark suite, with optbench's pytest plugin (installed with
optbench; the fixtures need no import). Copy this file next to your tests and run:

    pytest examples/test_benchmark_my_model.py --benchmark-autosave          # reference run
    pytest examples/test_benchmark_my_model.py --benchmark-compare \\
        --benchmark-compare-fail=median:10%                                   # regression gate

The fp32 and int8 tests share the group "batch 1", so the table's parentheses show the int8
path's ratio to the fastest. Replace `my_model` with your own model or artifact path.
"""

import pytest
import torch
import torchvision

from optbench.transforms import Context, config_from_dict, optimize

SHAPE = (3, 64, 64)


@pytest.fixture(scope="module")
def my_model():
    torch.manual_seed(0)
    return torchvision.models.mobilenet_v3_small(num_classes=10).eval()


@pytest.fixture(scope="module")
def my_int8(my_model, tmp_path_factory):
    """Your int8 model: here, optbench's ONNX Runtime static int8 calibrated on random data
    (use your own calibration images). The accuracy guard is off because random weights have
    near-tied logits."""
    data = torch.utils.data.TensorDataset(torch.randn(64, *SHAPE), torch.zeros(64, dtype=int))
    ctx = Context(example_input=torch.randn(2, *SHAPE), calib_data=data,
                  workdir=tmp_path_factory.mktemp("int8"), progress=False)
    config = config_from_dict({"method": "ptq-ort-static", "calibration_batches": 2,
                               "guard": {"action": "off"}})
    return optimize(my_model, config, ctx).onnx_path


def test_fp32_eager(optbench_bench, my_model):
    optbench_bench(my_model, input_shape=SHAPE)


def test_fp32_onnxruntime(optbench_bench, my_model, tmp_path):
    from optbench.transforms.export import export_onnx

    path = export_onnx(my_model, torch.randn(2, *SHAPE), tmp_path / "fp32.onnx")
    optbench_bench(path, input_shape=SHAPE)


def test_int8_onnxruntime(optbench_bench, my_int8):
    optbench_bench(my_int8, input_shape=SHAPE)
