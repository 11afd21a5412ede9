"""The Open Inference Protocol (KServe v2) beside /v1: JSON and binary tensors through the real
ASGI app, the errors a client gets, and the `tritonclient` HTTP client against a live server."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import SHAPE, onnx_artifact, tiny_net  # noqa: E402

from optbench.serve import ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    manifest = onnx_artifact(tmp_path_factory.mktemp("v2"), "tiny")
    app = create_app(ServeSettings(manifests=(str(manifest),), max_items=8))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _expected(x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return tiny_net(0)(torch.from_numpy(x)).numpy()


def _binary_request(x: np.ndarray, binary_out: bool = True) -> tuple[bytes, dict]:
    header = json.dumps({"id": "r1", "inputs": [{
        "name": "input", "shape": list(x.shape), "datatype": "FP32",
        "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": binary_out}}]}).encode()
    return header + x.astype("<f4").tobytes(), {
        "Inference-Header-Content-Length": str(len(header))}


def test_health_metadata_and_json_inference(client):
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/tiny/ready").status_code == 200
    assert "binary_tensor_data" in client.get("/v2").json()["extensions"]
    meta = client.get("/v2/models/tiny").json()
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, *SHAPE]}]
    assert [o["name"] for o in meta["outputs"]] == ["logits", "probabilities"]
    x = np.random.default_rng(0).standard_normal((3, *SHAPE)).astype(np.float32)
    r = client.post("/v2/models/tiny/infer", json={"inputs": [
        {"name": "input", "shape": list(x.shape), "datatype": "FP32",
         "data": x.ravel().tolist()}]})
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    logits = np.asarray(out["logits"]["data"]).reshape(out["logits"]["shape"])
    np.testing.assert_allclose(logits, _expected(x), atol=1e-4)
    probs = np.asarray(out["probabilities"]["data"]).reshape(3, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_binary_tensors_in_and_out(client):
    x = np.random.default_rng(1).standard_normal((2, *SHAPE)).astype(np.float32)
    body, headers = _binary_request(x)
    r = client.post("/v2/models/tiny/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    n = int(r.headers["inference-header-content-length"])
    header = json.loads(r.content[:n])
    assert header["id"] == "r1" and header["outputs"][0]["parameters"]["binary_data_size"] == 80
    logits = np.frombuffer(r.content[n:], dtype="<f4").reshape(2, 10)
    np.testing.assert_allclose(logits, _expected(x), atol=1e-4)
    body, headers = _binary_request(x, binary_out=False)   # binary in, JSON out
    r = client.post("/v2/models/tiny/versions/1/infer", content=body, headers=headers)
    assert r.status_code == 200 and "inference-header-content-length" not in r.headers
    assert len(r.json()["outputs"][0]["data"]) == 20


@pytest.mark.parametrize("mutate, status, message", [
    (lambda b, h: (b[:-4], h), 400, "binary_data_size 512 does not match"),
    (lambda b, h: (b, {"Inference-Header-Content-Length": "999999"}), 400, "not a byte count"),
    (lambda b, h: (b"{not json", {}), 400, "not valid JSON"),
    (lambda b, h: (b.replace(b'"input"', b'"image"', 1), h), 400, "unknown input 'image'"),
    (lambda b, h: (b.replace(b"[2, 1, 8, 8]", b"[2, 1, 8, 9]"), h), 400, "send [N, 1, 8, 8]"),
    (lambda b, h: (b.replace(b'"logits"', b'"scores"'), h), 400, "unknown output 'scores'"),
    (lambda b, h: (b.replace(b"[2, 1, 8, 8]", b"[9, 1, 8, 8]"), h), 413, "limit is 8"),
])
def test_bad_requests_get_a_4xx_naming_the_problem(client, mutate, status, message):
    x = np.zeros((2, *SHAPE), np.float32)
    body, headers = mutate(*_binary_request(x))
    r = client.post("/v2/models/tiny/infer", content=body, headers=headers)
    assert r.status_code == status and message in r.json()["error"], r.text
    assert client.post("/v2/models/nope/infer", content=b"{}").status_code == 404
    assert client.post("/v2/models/tiny/versions/7/infer", content=b"{}").status_code == 404


def test_the_hot_path_is_counted_like_any_route_and_a_failure_is_a_500(client):
    """POST /v2/models/{name}/infer skips FastAPI's routing: its requests still appear in
    /metrics under the route template; a name no model has is not a label value; a forward
    pass that raises answers 500 with the app's error body, and the server goes on."""
    x = np.zeros((1, *SHAPE), np.float32)
    body, headers = _binary_request(x)
    assert client.post("/v2/models/tiny/infer", content=body, headers=headers).status_code == 200
    client.post("/v2/models/made-up-name/infer", content=body, headers=headers)
    text = client.get("/metrics").text
    assert ('optbench_requests_total{endpoint="/v2/models/{name}/infer",model="tiny",'
            'status="200"}') in text
    assert 'endpoint="/v2/models/{name}/infer",model="",status="404"' in text
    assert "made-up-name" not in text
    batcher = client.app.state.models["tiny"].batcher
    run = batcher.run
    batcher.run = lambda items: 1 / 0
    try:
        r = client.post("/v2/models/tiny/infer", content=body, headers=headers)
    finally:
        batcher.run = run
    assert r.status_code == 500 and "ZeroDivisionError" in r.json()["error"]
    assert client.post("/v2/models/tiny/infer", content=body, headers=headers).status_code == 200


@pytest.mark.parametrize("tensor, message", [
    ({"datatype": ["FP32"]}, "needs \"datatype\""),
    ({"parameters": [1]}, "\"parameters\" must be a JSON object"),
    ({"data": [10 ** 400] * 64}, "must be numbers"),
    ({"parameters": {"binary_data_size": True}}, "does not match"),
])
def test_malformed_json_fields_are_4xx_not_5xx(client, tensor, message):
    spec = {"name": "input", "shape": [1, *SHAPE], "datatype": "FP32", "data": [0.0] * 64,
            **tensor}
    r = client.post("/v2/models/tiny/infer", content=json.dumps({"inputs": [spec]}))
    assert r.status_code == 400 and message in r.json()["error"], r.text
    r = client.post("/v2/models/tiny/infer", content=json.dumps({
        "inputs": [{"name": "input", "shape": [1, *SHAPE], "datatype": "FP32",
                    "data": [0.0] * 64}], "parameters": "x"}))
    assert r.status_code == 400
    r = client.post("/v1/models/tiny/predict", json={"inputs": [10 ** 400]})
    assert r.status_code == 422


def test_tritonclient_round_trip_against_a_live_server(tmp_path):
    """The real Triton HTTP client, unchanged: health, metadata, binary and JSON tensors, and
    a bad request's message."""
    httpclient = pytest.importorskip("tritonclient.http")
    from live_server import serve
    from tritonclient.utils import InferenceServerException

    manifest = onnx_artifact(tmp_path, "tiny")
    x = np.random.default_rng(2).standard_normal((4, *SHAPE)).astype(np.float32)
    with serve([manifest]) as url:
        client = httpclient.InferenceServerClient(url.removeprefix("http://"))
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("tiny")
        meta = client.get_model_metadata("tiny")
        assert meta["inputs"][0]["shape"] == [-1, *SHAPE]
        for binary in (True, False):
            inp = httpclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            outs = [httpclient.InferRequestedOutput("logits", binary_data=binary),
                    httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
            result = client.infer("tiny", [inp], outputs=outs, request_id=str(binary))
            np.testing.assert_allclose(result.as_numpy("logits"), _expected(x), atol=1e-4)
            assert result.as_numpy("probabilities").shape == (4, 10)
        bad = httpclient.InferInput("input", [4, 1, 8, 7], "FP32")
        bad.set_data_from_numpy(np.zeros((4, 1, 8, 7), np.float32))
        with pytest.raises(InferenceServerException, match=r"send \[N, 1, 8, 8\]"):
            client.infer("tiny", [bad])
        client.close()
