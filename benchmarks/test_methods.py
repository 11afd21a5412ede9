"""Each method's variant against fp32 eager, timed by pytest-benchmark (same model, same run).

Groups are per model and batch size, so `pytest-benchmark compare` shows the ratios directly.
"""

import warnings

import pytest
import torch
from conftest import bench_models

from optbench.data import ImageTransform, synthetic_dataset
from optbench.models import build_model
from optbench.runtime import get_runtime
from optbench.transforms import Context, Variant, config_from_dict, optimize

METHODS = {  # case id -> (method config or None for the baseline, runtime)
    "fp32-eager": (None, "torch-eager"),
    "fp32-compile": (None, "torch-compile"),
    "pruned50-eager": ({"method": "prune-structured", "ratio": 0.5, "round_to": 16},
                       "torch-eager"),
    "int8-pt2e-compile": ({"method": "ptq-pt2e", "calibration_batches": 2, "batch_size": 8},
                          "torch-compile"),
    "int8-ort-static": ({"method": "ptq-ort-static", "calibration_batches": 2, "batch_size": 8},
                        "onnxruntime"),
    "bf16-compile": ({"method": "reduced-precision", "dtype": "bfloat16"}, "torch-compile"),
}
_CACHE: dict = {}


@pytest.fixture(scope="module", params=bench_models(), ids=lambda p: f"{p[0]}@{p[1]}")
def case(request, tmp_path_factory):
    name, size = request.param
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=3).eval()
    data = synthetic_dataset(n=32, size=size, transform=ImageTransform(size=size, channels=3))
    ctx = Context(example_input=data.batch(0, 2), calib_data=data,
                  workdir=tmp_path_factory.mktemp(name), progress=False)
    return name, size, Variant(name, model=model, lineage=(name,)), ctx


def _variant(case, method_id):
    name, size, base, ctx = case
    key = (name, size, method_id)
    if key not in _CACHE:
        config = METHODS[method_id][0]
        ctx.step = method_id
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE[key] = base if config is None else optimize(base, config_from_dict(config),
                                                                ctx)
    return _CACHE[key]


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("method_id", list(METHODS))
def test_method_latency(benchmark, case, method_id, batch):
    name, size, _, _ = case
    variant = _variant(case, method_id)
    runtime = get_runtime(METHODS[method_id][1])
    x = torch.randn(batch, 3, size, size)
    session = runtime.load(variant.artifact(runtime.accepts), example=x,
                           threads=torch.get_num_threads())
    prepared = session.prepare(x)
    benchmark.group = f"methods {name}@{size} batch {batch}"
    benchmark.extra_info.update(method=method_id, runtime=runtime.name, batch=batch)
    benchmark(session.run, prepared)
