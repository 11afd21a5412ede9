import numpy as np
import pytest
import torch

from optbench.errors import ConfigError, MissingInputError
from optbench.runtime import get_runtime, runtime_names
from optbench.runtime.base import predict


def test_unknown_runtime_lists_registered_names():
    with pytest.raises(ConfigError) as err:
        get_runtime("tensorrt")
    assert all(name in str(err.value) for name in runtime_names())


def test_eager_matches_the_model_and_leaves_it_alone(tiny_model, reference):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    x = torch.randn(3, 1, 16, 16)
    session = get_runtime("torch-eager").load(tiny_model, example=x)
    np.testing.assert_allclose(predict(session, x), reference(tiny_model, x), atol=1e-6)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())


def test_compile_matches_eager(tiny_model, reference):
    x = torch.randn(2, 1, 16, 16)
    session = get_runtime("torch-compile").load(tiny_model, example=x)
    np.testing.assert_allclose(predict(session, x), reference(tiny_model, x), atol=1e-4)


def test_onnxruntime_matches_at_any_batch_size(tiny_model, onnx_file, reference):
    session = get_runtime("onnxruntime").load(onnx_file, threads=1)
    for batch in (1, 5):
        x = torch.randn(batch, 1, 16, 16)
        np.testing.assert_allclose(predict(session, x), reference(tiny_model, x), atol=1e-4)


def test_wrong_artifact_kinds_are_explained(tiny_model, onnx_file, tmp_path):
    with pytest.raises(ConfigError, match="export it first"):
        get_runtime("onnxruntime").load(tiny_model)
    with pytest.raises(ConfigError, match="nn.Module"):
        get_runtime("torch-eager").load(str(onnx_file), example=torch.randn(1, 1, 16, 16))
    with pytest.raises(MissingInputError):
        get_runtime("onnxruntime").load(tmp_path / "missing.onnx")


@pytest.mark.cuda
def test_cuda_sessions_match_cpu(tiny_model, onnx_file, reference):
    x = torch.randn(4, 1, 16, 16)
    ref = reference(tiny_model, x)
    eager = get_runtime("torch-eager").load(tiny_model, example=x, device="cuda")
    np.testing.assert_allclose(predict(eager, x), ref, atol=1e-3)
    ort = get_runtime("onnxruntime")
    if not ort.available("cuda"):  # said, not passed silently
        pytest.skip("torch sees CUDA, but this onnxruntime has no CUDA provider "
                    "(pip install onnxruntime-gpu)")
    np.testing.assert_allclose(predict(ort.load(onnx_file, device="cuda"), x), ref, atol=1e-3)


def _small():
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()


def test_the_ninth_instance_of_one_architecture_is_still_compiled():
    """Dynamo guards on parameter identity: every instance recompiles the same forward, and at
    the default limit (8) the ninth would silently run eager under the torch-compile label."""
    import torch._dynamo

    torch._dynamo.reset()
    runtime = get_runtime("torch-compile")
    x = torch.randn(2, 8)
    stats = [runtime.load(_small(), example=x).compile_stats for _ in range(9)]
    assert all(s["graphs"] >= 1 for s in stats), stats   # a new graph for every instance
    torch._dynamo.reset()


def test_a_compile_past_the_limit_is_refused_and_reported_not_timed_as_eager(monkeypatch):
    """Force the real fallback (limit 1, two instances): the second entry is skipped with the
    reason, never timed; the first has its Dynamo counts in the row."""
    import torch._dynamo

    from optbench.bench import BenchConfig, Entry, bench_entries
    from optbench.runtime import torch as torch_runtime

    cfg = torch._dynamo.config
    old = cfg.recompile_limit
    monkeypatch.setattr(torch_runtime, "RECOMPILE_LIMIT", 1)
    torch._dynamo.reset()
    cfg.recompile_limit = 1
    try:
        first, second = _small(), _small()
        entries = [Entry("a", "torch-eager", first), Entry("a", "torch-compile", first),
                   Entry("b", "torch-compile", second)]
        result = bench_entries(entries, BenchConfig(
            runtimes=("torch-eager", "torch-compile"), batch_sizes=(2,), input_shape=(8,),
            min_time_s=0.01, max_time_s=0.05))
    finally:
        cfg.recompile_limit = max(old, torch_runtime.RECOMPILE_LIMIT)
        torch._dynamo.reset()
    assert "recompile limit" in result.skipped["b / torch-compile"]
    assert "eager mode" in result.skipped["b / torch-compile"]
    assert {r.entry for r in result.rows} == {"a / torch-eager", "a / torch-compile"}
    row = next(r for r in result.rows if r.runtime == "torch-compile")
    assert row.compile_stats["at_load"]["graphs"] >= 1
    assert row.to_dict()["compile"] == row.compile_stats


def test_bench_compiles_each_shape_once(monkeypatch):
    """torch-compile (dynamic=False) compiles per input shape: the load compiles at the first
    timed batch size, and the quality pass runs at a timed batch size (the largest up to
    eval_batch_size), filling its short last batch up to it. Here that is 2 compiles (batch 1,
    batch 3), not 4 (also eval_batch_size 4 and the last, short batch)."""
    from torch.utils.data import TensorDataset

    from optbench.bench import BenchConfig, Entry, bench_entries
    from optbench.runtime.torch import dynamo_counts

    torch._dynamo.reset()
    model = _small()
    data = TensorDataset(torch.randn(11, 8), torch.zeros(11, dtype=torch.long))
    before = dynamo_counts()
    config = BenchConfig(runtimes=("torch-eager", "torch-compile"), batch_sizes=(1, 3),
                         input_shape=(8,), eval_batch_size=4, min_time_s=0.01, max_time_s=0.05)
    result = bench_entries([Entry("a", "torch-eager", model), Entry("a", "torch-compile", model)],
                           config, eval_data=data)
    compiled = dynamo_counts()["graphs"] - before["graphs"]
    torch._dynamo.reset()
    b1, b3 = (next(r for r in result.rows if r.runtime == "torch-compile" and r.batch_size == b)
              for b in (1, 3))
    assert b1.compile_stats["at_load"]["graphs"] == 1
    assert b1.compile_stats["this_batch"]["graphs"] == 0     # batch 1 is the load's compile
    assert b3.compile_stats["this_batch"]["graphs"] == 1
    assert compiled == 2
    quality = result.quality["a / torch-compile"]
    assert quality.n == 11 and quality.agreement["top1_agreement"] == 1.0   # vs eager at 4
