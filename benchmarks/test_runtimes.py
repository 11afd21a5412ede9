"""Latency of zoo models through each runtime, timed by pytest-benchmark."""

import pytest
import torch
from conftest import bench_models

from optbench.models import build_model
from optbench.runtime import get_runtime
from optbench.transforms.export import export_onnx

RUNTIMES = ("torch-eager", "torch-compile", "onnxruntime", "openvino")


@pytest.fixture(scope="module", params=bench_models(), ids=lambda p: f"{p[0]}@{p[1]}")
def model_case(request, tmp_path_factory):
    name, size = request.param
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, in_channels=3).eval()
    example = torch.randn(1, 3, size, size)
    onnx_path = export_onnx(model, example, tmp_path_factory.mktemp(name) / f"{name}.onnx")
    return name, model, onnx_path, size


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_latency(benchmark, model_case, runtime, batch):
    name, model, onnx_path, size = model_case
    rt = get_runtime(runtime)
    if not rt.available():
        pytest.skip(f"{runtime} is not installed here")
    artifact = model if rt.accepts == "module" else onnx_path   # OpenVINO reads the same ONNX
    x = torch.randn(batch, 3, size, size)
    session = rt.load(artifact, example=x, threads=torch.get_num_threads())
    prepared = session.prepare(x)
    benchmark.group = f"{name}@{size} batch {batch}"
    benchmark.extra_info.update(runtime=runtime, batch=batch, threads=torch.get_num_threads())
    benchmark(session.run, prepared)
