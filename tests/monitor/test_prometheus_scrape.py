"""A real Prometheus server (Debian package `prometheus`) scrapes a running optbench server;
the series are read back through Prometheus' HTTP API."""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

pytest.importorskip("uvicorn")
from live_server import free_port, serve  # noqa: E402
from serve_helpers import SHAPE, onnx_artifact  # noqa: E402

PROMETHEUS = shutil.which("prometheus")


def _query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


def _post_json(url: str, payload: dict) -> int:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


@pytest.mark.skipif(PROMETHEUS is None and os.environ.get("OPTBENCH_REQUIRE_PROMETHEUS") != "1",
                    reason="prometheus is not installed (apt-get install -y prometheus)")
def test_prometheus_scrapes_the_server(tmp_path):
    assert PROMETHEUS, "OPTBENCH_REQUIRE_PROMETHEUS=1 but prometheus is not installed"
    manifest = onnx_artifact(tmp_path, "tiny")
    with serve([manifest]) as url:
        target = url.removeprefix("http://")
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: optbench\n    static_configs: [{{targets: ['{target}']}}]\n")
        port = free_port()
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(5):
                assert _post_json(url + "/v1/models/tiny/predict",
                                  {"inputs": np.zeros((2, *SHAPE)).tolist()}) == 200
            deadline = time.monotonic() + 60
            found = []
            while time.monotonic() < deadline and not found:
                time.sleep(1)
                try:
                    found = _query(base, 'optbench_requests_total{model="tiny",status="200"}')
                except OSError:
                    continue  # Prometheus still starting
            assert found, "Prometheus never scraped optbench_requests_total"
            assert float(found[0]["value"][1]) >= 5
            assert found[0]["metric"]["job"] == "optbench"
            batch = _query(base, 'optbench_batch_size_sum{model="tiny"}')
            assert float(batch[0]["value"][1]) >= 10
            info = _query(base, "optbench_model_info")
            assert info and info[0]["metric"]["format"] == "onnx"
            assert len(info[0]["metric"]["sha256"]) == 64
            up = _query(base, 'up{job="optbench"}')
            assert up[0]["value"][1] == "1"
        finally:
            prom.terminate()
            prom.wait(10)
