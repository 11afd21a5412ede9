"""The pytest plugin, as a user meets it: a small project with no conftest, run by pytest in a
subprocess, finds the fixtures through the `pytest11` entry point; pytest-benchmark groups the
calls and its compare gate fails a real regression."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from child_env import child_env

from optbench.errors import ConfigError
from optbench.pytest_plugin import load_ready

PROJECT = textwrap.dedent("""
    import os, time
    import torch
    from torch import nn

    SLOW = float(os.environ.get("SLOW_S", "0"))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.fc = nn.Linear(8, 4)
        def forward(self, x):
            if SLOW:
                time.sleep(SLOW)
            return self.fc(self.conv(x).mean((2, 3)))

    def test_eager(optbench_bench):
        ready = optbench_bench(Net().eval(), input_shape=(3, 16, 16))
        assert ready.runtime == "torch-eager" and ready.threads == 1

    def test_artifact(optbench_bench):
        ready = optbench_bench(os.environ["ARTIFACT"])
        assert ready.runtime == "onnxruntime" and ready.batch_size == 1
""")


def _pytest(folder, *args, env=None):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", "--optbench-threads", "1", *args],
                          cwd=folder, capture_output=True, text=True, timeout=600,
                          env=child_env(**(env or {})))


def test_a_user_project_times_a_module_and_an_artifact_in_one_group(tmp_path):
    from serve_helpers import onnx_artifact

    artifact = onnx_artifact(tmp_path / "art")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "test_speed.py").write_text(PROJECT)
    env = {"ARTIFACT": str(artifact)}
    done = _pytest(tmp_path / "proj", "--benchmark-json=run.json", "--benchmark-min-rounds=5",
                   env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    runs = json.loads((tmp_path / "proj" / "run.json").read_text())["benchmarks"]
    assert {b["name"] for b in runs} == {"test_eager", "test_artifact"}
    assert {b["group"] for b in runs} == {"batch 1"}
    assert {b["extra_info"]["runtime"] for b in runs} == {"torch-eager", "onnxruntime"}
    assert all(b["stats"]["rounds"] >= 5 for b in runs)


def test_the_compare_gate_fails_a_regression(tmp_path):
    from serve_helpers import onnx_artifact

    artifact = onnx_artifact(tmp_path / "art")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "test_speed.py").write_text(PROJECT)
    env = {"ARTIFACT": str(artifact)}
    base = _pytest(tmp_path / "proj", "-k", "eager", "--benchmark-autosave",
                   "--benchmark-storage=bench", env=env)
    assert base.returncode == 0, base.stdout[-3000:]
    # every call now sleeps 20 ms: far past a 10% median regression on any machine
    slow = _pytest(tmp_path / "proj", "-k", "eager", "--benchmark-compare",
                   "--benchmark-compare-fail=median:10%", "--benchmark-storage=bench",
                   "--benchmark-max-time=0.5", env={**env, "SLOW_S": "0.02"})
    assert slow.returncode != 0
    assert "Performance has regressed" in slow.stdout + slow.stderr


def test_bad_models_are_explained(tmp_path):
    with pytest.raises(ConfigError, match="needs input_shape"):
        load_ready(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match=r"an OpenVINO IR \(.xml\) or an artifact"):
        load_ready(tmp_path / "model.pt", input_shape=(3, 8, 8))


def test_the_documented_example_runs(tmp_path):
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "test_benchmark_my_model.py"
    done = _pytest(tmp_path, str(example), "--benchmark-disable")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout
