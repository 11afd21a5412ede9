"""Your data and your model through the whole product: a colour dataset and a network from
your own code (python: entry points) are trained on, exported and packaged with their transform
(RGB, per-channel normalization, class names); the server answers a JPEG upload exactly as the
model would; and the exported .onnx file is the starting point of a second recipe (ONNX-only
methods; the others refused up front)."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from optbench.errors import ConfigError
from optbench.pipeline import Recipe, run_recipe
from tests.test_python_dataset import MODULE

BENCH = {"runtimes": ["onnxruntime"], "batch_sizes": [1], "min_time_s": 0.05,
         "max_time_s": 0.2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("colours")
    (folder / "my_colours.py").write_text(MODULE)
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(folder))
    recipe = Recipe.from_dict({
        "data": {"dataset": "python", "entry": "my_colours:one", "val_limit": 0},
        "models": {"net": {"arch": "python:my_colours:tiny_net", "num_classes": 3}},
        "bench": BENCH,
        "steps": [{"name": "trained", "method": "train", "measure": False,
                   "train": {"epochs": 3, "batch_size": 16, "lr": 0.05}},
                  {"name": "onnx", "method": "export-onnx"}]})
    result = run_recipe(recipe, folder / "out", progress=False)
    yield folder, result
    mp.undo()


def test_the_artifact_records_the_colour_transform_and_classes(trained):
    _, result = trained
    manifest = json.loads(result.artifacts["onnx"].read_text())
    assert manifest["input_shape"] == [3, 16, 16]
    assert manifest["class_names"] == ["red", "green", "blue"]
    tf = manifest["transform"]
    assert tf["rgb"] is True and tf["channels"] == 3 and len(tf["mean"]) == 3
    assert result.bench.accuracy("onnx") > 0.9   # the colours are easy: it learned them


def test_the_server_answers_a_jpeg_upload_as_the_model_does(trained):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from optbench.artifact import load_artifact
    from optbench.serve import ServeSettings, create_app

    _, result = trained
    pixels = np.full((40, 40, 3), 30, np.uint8)
    pixels[..., 2] = 200                                   # blue, and not 16x16: resized
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    settings = ServeSettings(manifests=(str(result.artifacts["onnx"]),))
    with TestClient(create_app(settings)) as client:
        r = client.post("/v1/models/onnx/predict", content=buf.getvalue(),
                        headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    served = r.json()["predictions"][0]
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    art = load_artifact(result.artifacts["onnx"])
    logits = art.predict(art.preprocess_images(torch.from_numpy(decoded.copy())[None]))
    assert served["class_index"] == int(logits.argmax()) and served["class_name"] == "blue"
    probs = np.exp(logits[0] - logits[0].max())
    assert served["probabilities"] == pytest.approx(list(probs / probs.sum()), abs=1e-4)


def test_an_onnx_file_is_a_starting_point_for_onnx_methods(trained):
    folder, result = trained
    onnx = result.variants["onnx"].onnx_path
    recipe = {
        "data": {"dataset": "python", "entry": "my_colours:one", "val_limit": 0},
        "models": {"given": {"arch": f"onnx:{onnx}"}},
        "bench": BENCH, "measure_models": ["given"],
        "steps": [{"name": "int8", "method": "ptq-ort-static", "calibration_batches": 2}]}
    out = run_recipe(Recipe.from_dict(recipe), folder / "from-onnx", progress=False)
    assert out.variants["int8"].facts.int8
    assert {r.variant for r in out.bench.rows} == {"given", "int8"}
    assert out.bench.accuracy("int8") > 0.9
    # methods that need a torch module are refused before any work, naming the ONNX ones
    pruned = {**recipe, "steps": [{"name": "p", "method": "prune-structured", "ratio": 0.3}]}
    with pytest.raises(ConfigError, match="needs a torch model.*ptq-nncf, ptq-ort-dynamic, "
                                          "ptq-ort-static"):
        Recipe.from_dict(pruned)
    # an ONNX file that does not fit the data is refused with what it takes
    wrong = {**recipe, "data": {**recipe["data"], "image_size": 24}}
    with pytest.raises(ConfigError, match=r"takes input \[None, 3, 16, 16\] but the data are "
                                          r"\[3, 24, 24\]"):
        run_recipe(Recipe.from_dict(wrong), folder / "wrong", progress=False)
