import pytest
import torch

from optbench.transforms.export import export_onnx


@pytest.fixture
def onnx_file(tiny_model, tmp_path):
    return export_onnx(tiny_model, torch.randn(2, 1, 16, 16), tmp_path / "tiny.onnx")


@pytest.fixture
def reference():
    """The eager model's output as numpy: what every runtime must reproduce."""
    def run(model, x):
        with torch.no_grad():
            return model(x).numpy()

    return run
