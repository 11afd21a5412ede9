"""The server through its real ASGI app (FastAPI TestClient runs the lifespan)."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from serve_helpers import SHAPE, onnx_artifact, png_bytes, tiny_net  # noqa: E402

from optbench.artifact import ArtifactError  # noqa: E402
from optbench.errors import ConfigError  # noqa: E402
from optbench.serve import ABRoute, ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("art")
    return {"tiny": onnx_artifact(root, "tiny", seed=0), "other": onnx_artifact(root, "other",
                                                                                 seed=1)}


def client_for(artifacts, **kw):
    settings = ServeSettings(manifests=(str(artifacts["tiny"]), str(artifacts["other"])),
                             max_items=8, max_upload_bytes=64 << 10, **kw)
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(artifacts, tmp_path_factory):
    log = tmp_path_factory.mktemp("ab") / "ab.jsonl"
    with client_for(artifacts, ab_routes=(ABRoute("split", "tiny", "other", 0.3),),
                    ab_log=str(log)) as c:
        c.ab_log = log
        yield c


def test_health_ready_models_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "alive"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"] == ["other", "tiny"]
    models = client.get("/v1/models").json()["models"]
    assert {m["name"] for m in models} == {"tiny", "other"}
    one = client.get("/v1/models/tiny").json()
    assert one["manifest"]["files"]["model.onnx"] and one["metrics"]["top1_accuracy"] == 0.5
    client.post("/v1/models/tiny/predict", json={"inputs": np.zeros(SHAPE).tolist()})
    text = client.get("/metrics").text
    assert 'optbench_requests_total{endpoint="/v1/models/{name}/predict",model="tiny",' \
           'status="200"}' in text
    assert "optbench_batch_size_bucket" in text and "optbench_model_info{" in text
    import gc
    import re
    import time

    gc.collect()
    time.sleep(0.05)   # the lag probe wakes every 5 ms
    text = client.get("/metrics").text
    assert float(re.search(r"optbench_event_loop_lag_seconds_count (\S+)", text)[1]) > 0
    assert 'optbench_gc_pause_seconds_count{generation="2"}' in text


def test_json_batch_prediction_matches_the_model(client):
    x = torch.randn(3, *SHAPE)
    r = client.post("/v1/models/tiny/predict", json={"inputs": x.tolist()})
    assert r.status_code == 200, r.text
    body = r.json()
    with torch.no_grad():
        expected = torch.softmax(tiny_net()(x), 1).numpy()
    got = np.array([p["probabilities"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [p["class_index"] for p in body["predictions"]] == expected.argmax(1).tolist()
    assert body["model"] == "tiny" and body["version"] == "1"


@pytest.mark.parametrize("kind", ["raw-png", "raw-jpeg", "multipart"])
def test_image_uploads(client, kind):
    if kind == "multipart":
        r = client.post("/v1/models/tiny/predict",
                        files={"file": ("x.png", png_bytes(), "image/png")})
    else:
        fmt = "PNG" if kind == "raw-png" else "JPEG"
        r = client.post("/v1/models/tiny/predict", content=png_bytes(fmt=fmt),
                        headers={"content-type": f"image/{fmt.lower()}"})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["class_name"]


BAD_INPUTS = {
    "not an image": (dict(content=b"hello", headers={"content-type": "image/png"}), 415,
                     "not a readable PNG or JPEG"),
    "corrupt image": (dict(content=png_bytes()[:40], headers={"content-type": "image/png"}),
                      415, "not a readable"),
    "wrong shape": (dict(json={"inputs": [[1.0, 2.0]]}), 422, "shape"),
    "ragged": (dict(json={"inputs": [[1.0], [1.0, 2.0]]}), 422, "rectangular"),
    "strings": (dict(json={"inputs": "abc"}), 422, "list of numbers"),
    "nan": (dict(content=json.dumps({"inputs": np.full(SHAPE, np.nan).tolist()}).replace(
        "NaN", "NaN"), headers={"content-type": "application/json"}), 422, "NaN"),
    "inf overflow": (dict(json={"inputs": np.full(SHAPE, 1e300).tolist()}), 422, "infinity"),
    "empty body": (dict(content=b"", headers={"content-type": "application/json"}), 400,
                   "empty body"),
    "bad json": (dict(content=b"{", headers={"content-type": "application/json"}), 400,
                 "not valid JSON"),
    "deeply nested": (dict(content=b'{"inputs": ' + b"[" * 30000 + b"]" * 30000 + b"}",
                           headers={"content-type": "application/json"}), 400, "too deeply"),
    "nested too deep for shape": (dict(json={"inputs": [[[[[[[1.0]]]]]]]}), 422, "shape"),
    "no inputs field": (dict(json={"x": 1}), 422, "inputs"),
    "too many items": (dict(json={"inputs": np.zeros((9, *SHAPE)).tolist()}), 413, "limit"),
    "too large": (dict(content=b"\0" * (65 << 10), headers={"content-type": "image/png"}),
                  413, "exceeds the limit"),
    "wrong content type": (dict(content=b"x", headers={"content-type": "text/plain"}), 415,
                           "unsupported content type"),
    "bad labels": (dict(json={"inputs": np.zeros(SHAPE).tolist(), "labels": [99]}), 422,
                   "labels"),
    "multipart without file": (dict(data={"x": "1"}, files={"y": ("y.txt", b"1")}), 422,
                               "'file' field"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_4xx_with_a_message(client, case):
    kwargs, status, words = BAD_INPUTS[case]
    r = client.post("/v1/models/tiny/predict", **kwargs)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert client.get("/healthz").status_code == 200  # the worker survived


def test_unknown_model_and_route_are_404_naming_what_exists(client):
    r = client.post("/v1/models/nope/predict", json={"inputs": []})
    assert r.status_code == 404 and "loaded models are ['other', 'tiny']" in r.json()["error"]
    assert client.get("/v1/ab/nope").status_code == 404
    assert client.get("/no/such/path").status_code == 404


def test_huge_image_dimensions_are_refused(artifacts):
    with client_for(artifacts, max_image_pixels=100) as c:
        r = c.post("/v1/models/tiny/predict", content=png_bytes(size=20),
                   headers={"content-type": "image/png"})
    assert r.status_code == 413 and "pixels" in r.json()["error"]


def test_ab_split_proportions_and_records(client):
    n = 600
    arms = [client.post("/v1/ab/split/predict",
                        json={"inputs": np.zeros(SHAPE).tolist(), "labels": [1]}).json()["arm"]
            for _ in range(n)]
    share_b = arms.count("b") / n
    # weight 0.3, n=600: sd = sqrt(.3*.7/600) = 0.0187; 4 sd covers it
    assert abs(share_b - 0.3) < 4 * 0.0187
    summary = client.get("/v1/ab/split").json()
    assert summary["requests"]["b"] >= arms.count("b")
    lines = [json.loads(line) for line in client.ab_log.read_text().splitlines()]
    assert lines[-1]["labels"] == [1] and lines[-1]["model"] in ("tiny", "other")
    assert 'optbench_ab_requests_total{arm="b",model="other",route="split"}' in \
        client.get("/metrics").text


def test_ab_sticky_assignment_is_stable(client):
    x = np.zeros(SHAPE).tolist()
    for key in ("alice", "bob", "carol", "dave"):
        arms = {client.post("/v1/ab/split/predict", json={"inputs": x, "key": key}).json()["arm"]
                for _ in range(5)}
        header = client.post("/v1/ab/split/predict", json={"inputs": x},
                             headers={"x-ab-key": key}).json()["arm"]
        assert arms == {header}
    # keys spread over both arms
    arms = {client.post("/v1/ab/split/predict", json={"inputs": x, "key": f"user{i}"}
                        ).json()["arm"] for i in range(40)}
    assert arms == {"a", "b"}


def test_concurrent_requests_are_batched_and_answered_individually(artifacts):
    import concurrent.futures

    with client_for(artifacts, max_wait_ms=50.0, max_batch=16) as c:
        xs = [torch.randn(1, *SHAPE) for _ in range(12)]
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            replies = list(pool.map(lambda x: c.post("/v1/models/tiny/predict",
                                                     json={"inputs": x.tolist()}).json(), xs))
        metrics = c.get("/metrics").text
    with torch.no_grad():
        for x, reply in zip(xs, replies, strict=True):
            expected = torch.softmax(tiny_net()(x), 1)[0].numpy()
            np.testing.assert_allclose(reply["predictions"][0]["probabilities"], expected,
                                       atol=1e-4)
    count = _metric(metrics, 'optbench_batch_size_count{model="tiny"}')
    total = _metric(metrics, 'optbench_batch_size_sum{model="tiny"}')
    assert total == 12   # every item went through exactly one forward pass
    assert count < 12    # fewer forward passes than requests: they were grouped


def test_naive_mode_runs_one_forward_per_request(artifacts):
    with client_for(artifacts, batching=False) as c:
        for _ in range(4):
            assert c.post("/v1/models/tiny/predict",
                          json={"inputs": np.zeros(SHAPE).tolist()}).status_code == 200
        metrics = c.get("/metrics").text
    assert _metric(metrics, 'optbench_batch_size_count{model="tiny"}') == 4


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def test_bad_checksum_or_route_fails_before_serving(artifacts, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(artifacts["tiny"].parent, bad)
    (bad / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        create_app(ServeSettings(manifests=(str(bad / "manifest.json"),)))
    with pytest.raises(ConfigError, match="names model 'ghost'"):
        create_app(ServeSettings(manifests=(str(artifacts["tiny"]),),
                                 ab_routes=(ABRoute("r", "tiny", "ghost"),)))
    with pytest.raises(ConfigError, match="no model to serve"):
        create_app(ServeSettings())


def test_settings_from_environment_and_ab_parsing():
    s = ServeSettings(manifests=("a.json",), ab_routes=(ABRoute.parse("r=a:b:0.2"),))
    back = ServeSettings.from_env({"OPTBENCH_SERVE_SETTINGS": s.to_json()})
    assert back == s and back.ab_routes[0].weight_b == 0.2
    with pytest.raises(ConfigError, match="NAME=MODEL_A:MODEL_B"):
        ABRoute.parse("nonsense")
    with pytest.raises(ConfigError, match="is not set"):
        ServeSettings.from_env({})
    with pytest.raises(ConfigError, match="weight_b"):
        ABRoute("r", "a", "b", 1.5)
    with pytest.raises(ConfigError, match=r"gc must be one of \['python', 'freeze'\]"):
        ServeSettings(gc="off")
    with pytest.raises(ConfigError, match="loop must be one of"):
        ServeSettings(loop="trio")


def test_gc_freeze_moves_survivors_out_of_the_collectors_reach():
    import gc

    from optbench.serve.stalls import settle_gc

    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    try:
        settle_gc("python")
        assert gc.get_freeze_count() == frozen and gc.get_threshold() == threshold
        settle_gc("freeze")
        assert gc.get_freeze_count() > 1000 and gc.get_threshold()[0] == 10_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
