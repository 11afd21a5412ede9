"""The models a server holds: verified artifacts, each with its batcher and warm-up state."""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch

from optbench.artifact import LoadedArtifact, Manifest, load_artifact, read_manifest
from optbench.errors import ConfigError
from optbench.isa import cpu_features, portability_warning
from optbench.monitor.metrics import ServeMetrics
from optbench.serve.batching import Batcher, Direct
from optbench.serve.settings import ServeSettings


@dataclasses.dataclass
class ServedModel:
    name: str
    artifact: LoadedArtifact
    batcher: Batcher | Direct
    sha256: str
    drift: object | None = None   # monitor.drift.LiveDriftMonitor when drift_window > 0
    warmed_up: bool = False

    @property
    def manifest(self) -> Manifest:
        return self.artifact.manifest

    def forward(self, items: np.ndarray) -> Outputs:
        return _forward(self.artifact, items)

    def warm_up(self, rounds: int = 3) -> None:
        example = np.zeros((1, *self.manifest.input_shape), dtype=self.manifest.input_dtype)
        for _ in range(rounds):
            self.forward(example)
        self.warmed_up = True


class Outputs(NamedTuple):
    """One forward pass's rows: what every endpoint answers with. The batcher hands each
    request its own rows of every field."""

    logits: np.ndarray    # (n, classes), as the runtime returned them
    probs: np.ndarray     # (n, classes) float64 softmax
    indices: np.ndarray   # (n,) predicted class


def _forward(artifact: LoadedArtifact, items: np.ndarray) -> Outputs:
    """Logits, softmax and argmax for (n, *input_shape), once per batch; runs on the inference
    thread, so the event loop only parses requests and writes answers."""
    if not items.flags.writeable:   # a request's bytes, viewed without a copy
        items = items.copy()
    with torch.inference_mode():
        logits = np.asarray(artifact.predict(torch.from_numpy(items)))
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    return Outputs(logits, probs, probs.argmax(1))


def check_manifests(settings: ServeSettings) -> dict[str, Manifest]:
    """Parse and checksum every manifest and check the A/B routes name loaded models; raises
    before a server starts, so `optbench serve` fails with the reason instead of a dead worker."""
    if not settings.manifests:
        raise ConfigError("no model to serve; pass one or more artifact manifests "
                          "(manifest.json files written by optbench.artifact.save_artifact)")
    manifests: dict[str, Manifest] = {}
    for path in settings.manifests:
        manifest, _ = read_manifest(path)
        if manifest.name in manifests:
            raise ConfigError(f"two artifacts are named {manifest.name!r}; model names must "
                              "be unique (rename one with save_artifact(name=...))")
        manifests[manifest.name] = manifest
        for warning in model_warnings(manifest):
            logging.getLogger("optbench.serve").warning("model %s: %s", manifest.name, warning)
    for route in settings.ab_routes:
        for model in (route.a, route.b):
            if model not in manifests:
                raise ConfigError(f"A/B route {route.name!r} names model {model!r}, which is not "
                                  f"loaded; loaded models are {sorted(manifests)}")
        if manifests[route.a].input_shape != manifests[route.b].input_shape:
            raise ConfigError(f"A/B route {route.name!r}: models {route.a!r} and {route.b!r} "
                              "take different input shapes, so one request cannot go to either")
    return manifests


def model_warnings(manifest: Manifest) -> list[str]:
    """What a client should know before trusting this model here: an int8 format made for
    another CPU kind (optbench.isa.portability_warning)."""
    warning = portability_warning(manifest.int8, cpu_features())
    return [warning] if warning else []


def load_models(settings: ServeSettings, metrics: ServeMetrics,
                executors: dict[str, ThreadPoolExecutor]) -> dict[str, ServedModel]:
    """Load (checksums verified again), build batchers, warm up. Runs on a worker thread."""
    models: dict[str, ServedModel] = {}
    for path in settings.manifests:
        artifact = load_artifact(path, threads=settings.threads)
        m = artifact.manifest
        name = m.name

        def on_batch(n, s, _name=name):
            metrics.record_batch(_name, n, s)

        def run(items, _artifact=artifact, _name=name, _classes=m.class_names):
            out = _forward(_artifact, items)
            metrics.record_predictions(_name, _classes, out.indices)
            return out

        batcher = (Batcher(run, executors["inference"], settings.max_batch,
                           settings.max_wait_ms / 1000.0, on_batch) if settings.batching
                   else Direct(run, executors["naive"], on_batch))
        drift = _drift_monitor(artifact, settings) if settings.drift_window else None
        served = ServedModel(name, artifact, batcher, sha256=m.files[m.model_file], drift=drift)
        metrics.record_model(name, m.version, m.format, served.sha256)
        served.warm_up()
        models[name] = served
    return models


def _drift_monitor(artifact: LoadedArtifact, settings: ServeSettings):
    from optbench.monitor.drift import LiveDriftMonitor, load_profile

    profile = load_profile(artifact.root)
    if profile is None:
        raise ConfigError(f"drift_window is set but artifact {artifact.manifest.name!r} has no "
                          f"reference profile ({artifact.root}/drift_profile.json); create one "
                          "with optbench.monitor.drift.save_profile")
    return LiveDriftMonitor(profile, window=settings.drift_window)
