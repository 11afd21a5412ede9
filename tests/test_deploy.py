"""Deployment files: Kubernetes manifests validate against the API schema, and they and the
Dockerfile point at endpoints the server really has. (No Docker engine runs here.)"""

from pathlib import Path

import pytest

kv = pytest.importorskip("kubernetes_validate")
yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
K8S = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))
K8S_VERSION = "1.30.0"


def _docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_manifest_validates_strictly(path):
    for doc in _docs(path):
        kv.validate(doc, K8S_VERSION, strict=True)


def test_validator_rejects_a_broken_manifest():
    doc = _docs(ROOT / "deploy" / "k8s" / "deployment.yaml")[0]
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kv.ValidationError):
        kv.validate(doc, K8S_VERSION, strict=True)


def _app_paths():
    from optbench.serve.app import _add_routes

    class Recorder:
        def __init__(self):
            self.paths = set()

        def __getattr__(self, verb):
            def register(path, **kw):
                self.paths.add(path)
                return lambda fn: fn
            return register

    class App(Recorder):
        state = None

    app = App()
    _add_routes(app)
    return app.paths


def test_probes_and_scrape_annotations_point_at_real_endpoints():
    paths = _app_paths()
    deploy = _docs(ROOT / "deploy" / "k8s" / "deployment.yaml")[0]
    pod = deploy["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics" in paths
    assert {"requests", "limits"} <= set(container["resources"])
    kinds = {d["kind"] for p in K8S for d in _docs(p)}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= kinds


def test_dockerfile_is_slim_non_root_cpu_only_with_healthcheck():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and
             not line.strip().startswith("#")]
    assert lines[0].startswith("FROM python:") and "slim" in lines[0]
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0")
    assert any(line.startswith("HEALTHCHECK") for line in lines) and "/healthz" in text
    assert "download.pytorch.org/whl/cpu" in text
    assert '"optbench", "serve"' in text


def test_ray_sweep_manifests_fit_the_sweep_command_and_the_image():
    """deploy/k8s/ray-sweep.yaml: workers are whole-CPU Guaranteed pods whose Ray CPU count is
    their limit (a timing trial holds a pod), the Job runs a sweep file the image ships, and
    the image installs the ray extra."""
    docs = {d["metadata"]["name"]: d for d in _docs(ROOT / "deploy" / "k8s" / "ray-sweep.yaml")}
    worker = docs["optbench-ray-worker"]["spec"]["template"]["spec"]["containers"][0]
    res = worker["resources"]
    assert res["requests"]["cpu"] == res["limits"]["cpu"]
    assert f"--num-cpus={res['limits']['cpu']}" in worker["command"]
    job = docs["optbench-sweep"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert job[:2] == ["optbench", "sweep"] and (ROOT / job[2]).is_file()
    assert job[job.index("--executor") + 1] == "ray"
    image = (ROOT / "deploy" / "Dockerfile.ray").read_text()
    assert '".[ray,openvino]"' in image and "COPY sweeps" in image and "USER 10001" in image
