"""The openvino runtime: every artifact kind it reads, fp32 that stays fp32, its errors, and the
tcmalloc trap (OpenVINO aborts under a preloaded tcmalloc unless import_openvino ran first)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from optbench.errors import ConfigError, MissingInputError, RuntimeUnavailableError
from optbench.measure import artifact_size
from optbench.runtime import get_runtime
from optbench.runtime.base import predict

pytest.importorskip("openvino", reason="the openvino extra is required (pip install openvino)")

ROOT = Path(__file__).resolve().parents[2]


def test_reads_a_module_an_onnx_file_and_an_ir_at_any_batch(tiny_model, onnx_file, tmp_path,
                                                            reference):
    from optbench.runtime.openvino import import_openvino, read_model

    ov = import_openvino()
    ir = tmp_path / "tiny.xml"
    ov.save_model(read_model(onnx_file), str(ir), compress_to_fp16=False)
    runtime = get_runtime("openvino")
    example = torch.randn(2, 1, 16, 16)
    for artifact in (tiny_model, onnx_file, ir):
        session = runtime.load(artifact, example=example, threads=1)
        for batch in (1, 5):
            x = torch.randn(batch, 1, 16, 16)
            np.testing.assert_allclose(predict(session, x), reference(tiny_model, x),
                                       atol=1e-4, err_msg=str(artifact))
    size = artifact_size(ir)
    assert size.format == "openvino-ir"
    assert size.file_bytes == ir.stat().st_size + ir.with_suffix(".bin").stat().st_size
    # the export folds BatchNorm into the conv before it: a few parameters fewer
    n = sum(p.numel() for p in tiny_model.parameters())
    assert 0.95 * n <= size.parameters <= n


def test_fp32_rows_compute_in_fp32(tiny_model):
    """On CPUs with bf16 units OpenVINO would run an fp32 model in bf16 by default."""
    session = get_runtime("openvino").load(tiny_model, example=torch.randn(2, 1, 16, 16))
    assert set(session.layer_precisions()) == {"f32"}
    assert session.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"


def test_bad_artifacts_are_explained(tiny_model, onnx_file, tmp_path, monkeypatch):
    runtime = get_runtime("openvino")
    with pytest.raises(ConfigError, match=r"\.xml \(OpenVINO IR\) or \.onnx"):
        runtime.load(tmp_path / "model.pt")
    with pytest.raises(MissingInputError, match="not found"):
        runtime.load(tmp_path / "missing.onnx")
    (tmp_path / "lonely.xml").write_text("<net/>")
    with pytest.raises(MissingInputError, match="no weights file lonely.bin"):
        runtime.load(tmp_path / "lonely.xml")
    with pytest.raises(ConfigError, match="example input"):
        runtime.load(tiny_model)
    with pytest.raises(RuntimeUnavailableError, match="CPU only"):
        runtime.load(onnx_file, device="cuda")
    with pytest.raises(ConfigError, match="precision must be one of"):
        type(runtime)(precision="int4")
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert not runtime.available()
    with pytest.raises(RuntimeUnavailableError, match=r"pip install 'optbench\[openvino\]'"):
        runtime.load(onnx_file)


_UNDER_TCMALLOC = textwrap.dedent("""
    import torch
    from torch import nn
    from optbench.runtime import get_runtime
    from optbench.runtime.base import predict
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4)).eval()
    session = get_runtime("openvino").load(model, example=torch.randn(2, 3, 32, 32), threads=2)
    print(predict(session, torch.randn(1, 3, 32, 32)).shape)
""")


def test_openvino_runs_under_the_tcmalloc_that_make_demo_preloads(tmp_path):
    path = subprocess.run(["bash", str(ROOT / "scripts/tcmalloc.sh")], capture_output=True,
                          text=True).stdout.strip()
    if not path:
        pytest.skip("tcmalloc is not installed (Debian libtcmalloc-minimal4; "
                    "scripts/sysdeps.sh installs it)")
    env = {**os.environ, "LD_PRELOAD": path, "PYTHONPATH": str(ROOT)}
    script = tmp_path / "under_tcmalloc.py"
    script.write_text(_UNDER_TCMALLOC)
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(1, 4)" in done.stdout
