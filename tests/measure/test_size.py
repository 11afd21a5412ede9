import pytest
import torch
from torch import nn

from optbench.errors import ConfigError, MissingInputError
from optbench.measure import artifact_size, model_size, onnx_size
from optbench.transforms.export import export_onnx


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10))


def test_parameter_count_and_bytes_are_exact():
    size = model_size(_mlp())
    assert size.parameters == 100 * 50 + 50 + 50 * 10 + 10 == 5560
    assert size.nonzero_parameters == 5560
    assert size.dtype_bytes == {"float32": 5560 * 4}
    assert size.file_bytes > 5560 * 4  # serialization adds a small header
    assert size.sparsity == 0.0


def test_zeros_count_as_sparsity_and_compress():
    dense, sparse = _mlp(), _mlp()
    with torch.no_grad():
        sparse[0].weight[:, :90] = 0  # 4500 of 5560 parameters
    d, s = model_size(dense), model_size(sparse)
    assert s.nonzero_parameters == 5560 - 4500
    assert s.sparsity == pytest.approx(4500 / 5560)
    assert s.file_bytes == d.file_bytes  # dense storage does not shrink...
    assert s.gzip_bytes < 0.5 * d.gzip_bytes  # ...but it compresses


def test_onnx_size_counts_initializers(tmp_path):
    path = export_onnx(_mlp(), torch.randn(2, 100), tmp_path / "mlp.onnx")
    size = onnx_size(path)
    assert size.format == "onnx"
    assert size.parameters == 5560
    assert size.file_bytes == path.stat().st_size
    assert artifact_size(path) == size


def test_bad_targets_are_explained(tmp_path):
    with pytest.raises(MissingInputError, match="not found"):
        onnx_size(tmp_path / "nope.onnx")
    with pytest.raises(ConfigError, match="onnx"):
        artifact_size(tmp_path / "weights.bin")
