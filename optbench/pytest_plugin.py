"""pytest plugin (the `pytest11` entry point `optbench`): your model in your pytest-benchmark
suite, loaded the way optbench measures it.

    def test_int8_latency(optbench_bench):
        optbench_bench("artifacts/int8/manifest.json", batch_size=1)      # an artifact
    def test_fp32_latency(optbench_bench, my_model):
        optbench_bench(my_model, runtime="torch-compile", input_shape=(3, 224, 224))

`optbench_bench(model, ...)` loads `model` (an nn.Module, an .onnx file, an OpenVINO IR, or an
artifact's manifest.json, checksums verified) into a runtime session with the thread count
(`--optbench-threads`, default 2), warms it up outside the timer, and hands pytest-benchmark one
call. Tests at the same batch size share a benchmark group (unless you name one with
`group=`), so pytest-benchmark's table shows each one's ratio to the fastest in the group (the
numbers in parentheses). A regression gate:

    pytest --benchmark-autosave                          # once, on the reference commit
    pytest --benchmark-compare --benchmark-compare-fail=median:10%

`optbench_session(model, ...)` gives the ready session without timing it (for your own checks).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

WARMUP_CALLS = 5


def pytest_addoption(parser):
    group = parser.getgroup("optbench")
    group.addoption("--optbench-threads", type=int, default=None,
                    help="threads for optbench_bench/optbench_session (default: "
                         "$OPTBENCH_BENCH_THREADS or 2)")


@dataclasses.dataclass
class ReadySession:
    """A loaded, warmed-up session and one prepared batch: `call()` is the timed call."""

    session: Any
    prepared: Any
    runtime: str
    batch_size: int
    threads: int
    label: str

    def call(self):
        return self.session.run(self.prepared)


def _threads(config) -> int:
    value = config.getoption("--optbench-threads")
    return int(value if value is not None else os.environ.get("OPTBENCH_BENCH_THREADS", "2"))


def load_ready(model, *, runtime: str | None = None, batch_size: int = 1,
               input_shape: tuple[int, ...] | None = None, threads: int = 2,
               warmup: int = WARMUP_CALLS) -> ReadySession:
    """`model` -> a warmed-up ReadySession. The runtime defaults to the artifact's own (an
    artifact), OpenVINO for an IR, ONNX Runtime for an .onnx file, torch eager for a module."""
    import torch

    from optbench.errors import ConfigError
    from optbench.runtime import get_runtime

    torch.set_num_threads(threads)
    label, session = type(model).__name__, None
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.name == "manifest.json" or path.is_dir():
            from optbench.artifact import load_artifact

            artifact = load_artifact(path, threads=threads)     # checksums verified first
            if runtime not in (None, artifact.manifest.runtime):
                raise ConfigError(f"artifact {artifact.manifest.name!r} runs on "
                                  f"{artifact.manifest.runtime!r}; leave runtime unset, or "
                                  f"pass its model file to time it on {runtime!r}")
            session, runtime = artifact.session, artifact.manifest.runtime
            input_shape = input_shape or tuple(artifact.manifest.input_shape)
            label = artifact.manifest.name
        else:
            label = path.stem
            runtime = runtime or {".xml": "openvino", ".onnx": "onnxruntime"}.get(path.suffix)
            if runtime is None:
                raise ConfigError(f"optbench_bench takes an nn.Module, an .onnx file, an OpenVINO "
                                  f"IR (.xml) or an artifact's manifest.json, got {path.name!r}")
    runtime = runtime or "torch-eager"
    if input_shape is None:
        raise ConfigError(f"optbench_bench({label}) needs input_shape=(C, H, W) for a model "
                          "that does not declare one (artifacts do)")
    example = torch.randn(batch_size, *input_shape)
    if session is None:
        session = get_runtime(runtime).load(model, example=example, threads=threads)
    prepared = session.prepare(example)
    for _ in range(warmup):
        session.run(prepared)
    return ReadySession(session, prepared, runtime, batch_size, threads, label)


@pytest.fixture
def optbench_session(request):
    """Factory: optbench_session(model, runtime=None, batch_size=1, input_shape=None) ->
    ReadySession (loaded, warmed up, not timed)."""
    threads = _threads(request.config)

    def make(model, **kwargs) -> ReadySession:
        kwargs.setdefault("threads", threads)
        return load_ready(model, **kwargs)

    return make


@pytest.fixture
def optbench_bench(request, optbench_session):
    """Factory: optbench_bench(model, runtime=None, batch_size=1, input_shape=None,
    group=None) times one call of the loaded model with pytest-benchmark and returns the
    ReadySession. Needs pytest-benchmark (pip install pytest-benchmark)."""
    try:
        benchmark = request.getfixturevalue("benchmark")
    except pytest.FixtureLookupError:
        raise pytest.UsageError("optbench_bench needs pytest-benchmark: pip install "
                                "pytest-benchmark (or use optbench_session, which does not "
                                "time)") from None

    def run(model, *, group: str | None = None, **kwargs) -> ReadySession:
        ready = optbench_session(model, **kwargs)
        from optbench.isa import cpu_features

        benchmark.group = group or f"batch {ready.batch_size}"
        benchmark.extra_info.update(runtime=ready.runtime, batch_size=ready.batch_size,
                                    threads=ready.threads, model=ready.label,
                                    cpu_int8_class=cpu_features().kind)
        benchmark(ready.call)
        return ready

    return run
