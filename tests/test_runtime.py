import numpy as np
import pytest
import torch

from optbench.errors import ConfigError, MissingInputError
from optbench.runtime import get_runtime, runtime_names
from optbench.runtime.base import predict
from optbench.transforms.export import export_onnx


@pytest.fixture
def onnx_file(tiny_model, tmp_path):
    return export_onnx(tiny_model, torch.randn(2, 1, 16, 16), tmp_path / "tiny.onnx")


def _reference(model, x):
    with torch.no_grad():
        return model(x).numpy()


def test_unknown_runtime_lists_registered_names():
    with pytest.raises(ConfigError) as err:
        get_runtime("tensorrt")
    assert all(name in str(err.value) for name in runtime_names())


def test_eager_matches_the_model_and_leaves_it_alone(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    x = torch.randn(3, 1, 16, 16)
    session = get_runtime("torch-eager").load(tiny_model, example=x)
    np.testing.assert_allclose(predict(session, x), _reference(tiny_model, x), atol=1e-6)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())


def test_compile_matches_eager(tiny_model):
    x = torch.randn(2, 1, 16, 16)
    session = get_runtime("torch-compile").load(tiny_model, example=x)
    np.testing.assert_allclose(predict(session, x), _reference(tiny_model, x), atol=1e-4)


def test_onnxruntime_matches_at_any_batch_size(tiny_model, onnx_file):
    session = get_runtime("onnxruntime").load(onnx_file, threads=1)
    for batch in (1, 5):
        x = torch.randn(batch, 1, 16, 16)
        np.testing.assert_allclose(predict(session, x), _reference(tiny_model, x), atol=1e-4)


def test_wrong_artifact_kinds_are_explained(tiny_model, onnx_file, tmp_path):
    with pytest.raises(ConfigError, match="export it first"):
        get_runtime("onnxruntime").load(tiny_model)
    with pytest.raises(ConfigError, match="nn.Module"):
        get_runtime("torch-eager").load(str(onnx_file), example=torch.randn(1, 1, 16, 16))
    with pytest.raises(MissingInputError):
        get_runtime("onnxruntime").load(tmp_path / "missing.onnx")


@pytest.mark.cuda
def test_cuda_sessions_match_cpu(tiny_model, onnx_file):
    x = torch.randn(4, 1, 16, 16)
    ref = _reference(tiny_model, x)
    eager = get_runtime("torch-eager").load(tiny_model, example=x, device="cuda")
    np.testing.assert_allclose(predict(eager, x), ref, atol=1e-3)
    ort = get_runtime("onnxruntime")
    if ort.available("cuda"):
        np.testing.assert_allclose(predict(ort.load(onnx_file, device="cuda"), x), ref, atol=1e-3)


def test_compile_runtime_lifts_dynamo_recompile_limit():
    """Each variant of one architecture recompiles the same forward; at the default limit (8)
    Dynamo would silently run the ninth in eager while the report says torch-compile."""
    import torch._dynamo

    from optbench.runtime.torch import RECOMPILE_LIMIT, _allow_recompiles

    old = torch._dynamo.config.recompile_limit
    try:
        torch._dynamo.config.recompile_limit = 8
        _allow_recompiles()
        assert torch._dynamo.config.recompile_limit == RECOMPILE_LIMIT >= 64
    finally:
        torch._dynamo.config.recompile_limit = max(old, RECOMPILE_LIMIT)
