import json

import numpy as np
import torch
from serve_helpers import SHAPE, tiny_net

from optbench.cli import main
from optbench.models import build_model


def test_package_onnx_and_state_dict(tmp_path, capsys):
    from optbench.artifact import load_artifact
    from optbench.transforms.export import export_onnx

    onnx = export_onnx(tiny_net(), torch.randn(2, *SHAPE), tmp_path / "m.onnx")
    assert main(["package", str(onnx), "--out", str(tmp_path / "a"), "--input-shape",
                 "1,8,8"]) == 0
    assert load_artifact(tmp_path / "a").manifest.name == "m"
    model = build_model("mobilenet_v2", 10, 1)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    assert main(["package", str(tmp_path / "w.pt"), "--arch", "mobilenet_v2", "--out",
                 str(tmp_path / "b")]) == 0
    assert main(["package", str(tmp_path / "w.pt"), "--arch", "resnet18", "--out",
                 str(tmp_path / "c")]) == 2  # weights do not fit: refused with the reason
    assert "does not fit architecture" in capsys.readouterr().err


def test_drift_cli(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "ref.npy", rng.random((800, 1, 8, 8)))
    np.save(tmp_path / "same.npy", rng.random((300, 1, 8, 8)))
    np.save(tmp_path / "bright.npy", np.clip(rng.random((300, 1, 8, 8)) + 0.2, 0, 1))
    ref, out = str(tmp_path / "ref.npy"), str(tmp_path / "r.json")
    assert main(["drift", ref, str(tmp_path / "same.npy"), "--fail-on-drift"]) == 0
    assert main(["drift", ref, str(tmp_path / "bright.npy"), "--fail-on-drift", "--json",
                 out]) == 1
    assert "drift detected in brightness" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["drifted"] is True
    np.save(tmp_path / "tab.npy", rng.normal(size=(500, 3)))
    assert main(["drift", str(tmp_path / "tab.npy"), str(tmp_path / "tab.npy"),
                 "--tabular"]) == 0
    assert main(["drift", ref, str(tmp_path / "nope.txt")]) == 2


def test_abtest_cli(tmp_path, capsys):
    from monitor.test_abtest import _records

    log = tmp_path / "ab.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in _records(400, 0.85, 0.9, 0.01, 0.01)))
    assert main(["abtest", str(log), "--baseline-rate", "0.85", "--mde", "0.02"]) == 0
    text = capsys.readouterr().out
    assert "planned sample:" in text and "peeking" in text and "verdict: B is better" in text
    assert main(["abtest", str(tmp_path / "missing.jsonl")]) == 2
