import json

import numpy as np
import pytest
import torch
from serve_helpers import SHAPE, onnx_artifact, tiny_net

from optbench.artifact import ArtifactError, load_artifact, read_manifest, save_artifact
from optbench.errors import ConfigError, MissingInputError
from optbench.models import build_model


def test_onnx_artifact_round_trip_matches_torch(tmp_path):
    path = onnx_artifact(tmp_path)
    art = load_artifact(path)
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        expected = tiny_net()(x).numpy()
    np.testing.assert_allclose(art.predict(x), expected, atol=1e-5)
    manifest = json.loads(path.read_text())
    assert manifest["format"] == "onnx" and manifest["input_shape"] == list(SHAPE)
    assert len(manifest["files"]["model.onnx"]) == 64


def test_state_dict_artifact_rebuilds_zoo_model(tmp_path):
    model = build_model("resnet18", num_classes=10, in_channels=1, small_input=True).eval()
    arch = {"name": "resnet18", "num_classes": 10, "in_channels": 1, "small_input": True}
    path = save_artifact(tmp_path / "r18", name="r18", state_dict=model.state_dict(),
                         architecture=arch, input_shape=(1, 16, 16))
    art = load_artifact(path)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        np.testing.assert_allclose(art.predict(x), model(x).numpy(), atol=1e-5)


def test_checksum_mismatch_is_refused(tmp_path):
    path = onnx_artifact(tmp_path)
    model_file = path.parent / "model.onnx"
    data = bytearray(model_file.read_bytes())
    data[-1] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch.*Re-export"):
        read_manifest(path)


def test_manifest_errors_name_the_problem(tmp_path):
    path = onnx_artifact(tmp_path)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "format": "pickle"}))
    with pytest.raises(ArtifactError, match="format 'pickle' is not one of"):
        read_manifest(path)
    path.write_text(json.dumps({**data, "files": {"../escape.onnx": "0" * 64},
                                "model_file": "../escape.onnx"}))
    with pytest.raises(ArtifactError, match="outside the artifact folder"):
        read_manifest(path)
    path.write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_manifest(path)
    with pytest.raises(MissingInputError, match="manifest not found"):
        read_manifest(tmp_path / "nowhere")


def test_state_dict_with_pickled_objects_is_not_unpickled(tmp_path, monkeypatch):
    import pickle

    from optbench.io import sha256_file

    monkeypatch.chdir(tmp_path)
    path = save_artifact(tmp_path / "a", name="a", state_dict=tiny_net().state_dict(),
                         architecture={"name": "resnet18"}, input_shape=SHAPE)
    # weights replaced by a pickle that runs a command, checksum fixed to match (as anyone who
    # can write the folder could do): loading must refuse it, not run it
    model_file = path.parent / "model.pt"
    model_file.write_bytes(pickle.dumps(Exploit()))
    data = json.loads(path.read_text())
    data["files"]["model.pt"] = sha256_file(model_file)
    path.write_text(json.dumps(data))
    with pytest.raises((ConfigError, ArtifactError)):
        load_artifact(path)
    assert not (tmp_path / "pwned").exists()


class Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned",))


def test_save_artifact_needs_one_model_source(tmp_path):
    with pytest.raises(ConfigError, match="exactly one"):
        save_artifact(tmp_path, name="x", input_shape=SHAPE)
    with pytest.raises(ConfigError, match="architecture"):
        save_artifact(tmp_path, name="x", input_shape=SHAPE, state_dict={})


def test_openvino_ir_artifact_verifies_both_files_and_serves(tmp_path):
    """An NNCF variant is served as its OpenVINO IR: .xml and .bin checksummed, read by
    OpenVINO (parsed, never unpickled)."""
    pytest.importorskip("openvino", reason="the openvino extra is required")
    from optbench.runtime.openvino import import_openvino, read_model
    from optbench.transforms.export import export_onnx

    ov = import_openvino()
    onnx = export_onnx(tiny_net(), torch.randn(2, *SHAPE), tmp_path / "src.onnx")
    ov.save_model(read_model(onnx), str(tmp_path / "src.xml"), compress_to_fp16=False)
    path = save_artifact(tmp_path / "ir", name="ir", ir_path=tmp_path / "src.xml",
                         input_shape=SHAPE)
    manifest = json.loads(path.read_text())
    assert manifest["format"] == "openvino-ir"
    assert sorted(manifest["files"]) == ["model.bin", "model.xml"]
    x = torch.randn(3, *SHAPE)
    with torch.no_grad():
        np.testing.assert_allclose(load_artifact(path).predict(x), tiny_net()(x).numpy(),
                                   atol=1e-5)
    weights = path.parent / "model.bin"
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch.*model.bin"):
        load_artifact(path)
