"""MLflow tracking of a results folder (`optbench run ... --mlflow`, `optbench report DIR
--mlflow`): one parent run for the pipeline, holding the report files, and one nested run per
measured variant with its parameters (method, config, lineage), its metrics (accuracy, latency
per runtime and batch, throughput, memory, size, ratios against the references, robustness) and
its deployable artifact (ONNX file + manifest) where it has one.

Everything is read from the saved report.json, so a finished folder can be logged later, and
logging the same report twice is refused with the run that already holds it (no duplicates).
Training checkpoints under OUT/work are not logged: they are large and stay where they are.

MLflow 3.13+ refuses its file store unless MLFLOW_ALLOW_FILE_STORE=true ("maintenance mode");
a local folder is the store a single engineer wants, so for file URIs that variable is set for
the process unless the user set it. Database and server URIs (sqlite:///..., http://...) pass
through untouched; they need the full `mlflow` package or a server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from optbench.errors import ConfigError, MissingInputError, RuntimeUnavailableError
from optbench.io import sha256_file
from optbench.results import BenchResult, Row, VariantFacts, load_report

DEFAULT_EXPERIMENT = "optbench"
REPORT_TAG = "optbench.report_sha256"
ROLE_TAG = "optbench.role"        # "pipeline" on the parent run, "variant" on its children
MAX_PARAM_CHARS = 6000          # MLflow's limit on one parameter value (3.x)
REPORT_FILES = ("report.json", "report.md", "report.html", "report.csv", "search.json",
                "search.md")


@dataclasses.dataclass
class TrackingResult:
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    variant_runs: dict[str, str]     # variant -> run id
    already_logged: bool = False


def default_uri(results_dir: str | os.PathLike) -> str:
    return (Path(results_dir).resolve() / "mlruns").as_uri()


def log_results(results_dir: str | os.PathLike, tracking_uri: str | None = None,
                experiment: str = DEFAULT_EXPERIMENT, run_name: str | None = None
                ) -> TrackingResult:
    """Log the results folder written by `optbench run` (report.json and friends, artifacts/)."""
    folder = Path(results_dir)
    report_path = folder / "report.json"
    if not report_path.is_file():
        raise MissingInputError(f"no report.json in {folder}; run `optbench run RECIPE --out "
                                f"{folder}` first (without --no-measure)")
    uri = tracking_uri or default_uri(folder)
    client = _client(uri)   # a missing MLflow is said before anything is read
    report = load_report(report_path)
    exp_id = _experiment(client, experiment)
    digest = sha256_file(report_path)
    found = client.search_runs([exp_id], filter_string=f"tags.`{REPORT_TAG}` = '{digest}' and "
                               f"tags.`{ROLE_TAG}` = 'pipeline'", max_results=1)
    if found:
        parent = found[0].info.run_id
        children = client.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = "
                                      f"'{parent}'", max_results=1000)
        return TrackingResult(uri, exp_id, parent, {r.info.run_name: r.info.run_id
                                                    for r in children}, already_logged=True)
    env = report.env
    tags = {REPORT_TAG: digest, "optbench.results_dir": str(folder.resolve()),
            "optbench.recipe_fingerprint": str(report.sections.recipe_fingerprint or ""),
            "optbench.git_commit": str(env.get("git_commit", "")),
            "optbench.cpu": str(env.get("cpu_model", "")),
            "optbench.command": str(env.get("command", ""))[:5000]}
    parent = client.create_run(exp_id, run_name=run_name or folder.resolve().name,
                               tags={**tags, ROLE_TAG: "pipeline"})
    pid = parent.info.run_id
    runs: dict[str, str] = {}
    try:
        _log(client, pid, params=_flatten({"bench": report.config.to_dict()}),
             metrics={"variants": len(_variants(report))})
        for name in REPORT_FILES:
            if (folder / name).is_file():
                client.log_artifact(pid, str(folder / name))
        for variant in _variants(report):
            child = client.create_run(exp_id, run_name=variant,
                                      tags={**tags, ROLE_TAG: "variant",
                                            "mlflow.parentRunId": pid})
            runs[variant] = child.info.run_id
            try:
                _log(client, child.info.run_id, params=variant_params(report, variant),
                     metrics=variant_metrics(report, variant))
                artifact = folder / "artifacts" / variant
                if (artifact / "manifest.json").is_file():
                    client.log_artifacts(child.info.run_id, str(artifact), "artifact")
            except Exception:
                client.set_terminated(child.info.run_id, "FAILED")
                raise
            client.set_terminated(child.info.run_id)
    except Exception:
        client.set_terminated(pid, "FAILED")
        client.set_tag(pid, REPORT_TAG, "failed:" + digest)  # a retry logs afresh
        raise
    client.set_terminated(pid)
    return TrackingResult(uri, exp_id, pid, runs)


def _variants(report: BenchResult) -> list[str]:
    """The pipeline's measured variants; for a plain bench/demo report, the timed ones."""
    named = report.sections.variants
    return list(named) if named else list(dict.fromkeys(r.variant for r in report.rows))


def variant_params(report: BenchResult, variant: str) -> dict[str, str]:
    v = report.sections.variants.get(variant)
    facts = v.facts if v else VariantFacts()
    params = {"lineage": " > ".join(v.lineage if v else ()),
              "runtimes": ",".join(v.runtimes if v else ()),
              "method": facts.method or "model"}
    params.update(_flatten({"config": facts.other.get("config", {})}))
    return params


def variant_metrics(report: BenchResult, variant: str) -> dict[str, float]:
    """Every number the report holds for one variant, under stable keys."""
    m: dict[str, float] = {}
    for row in (r for r in report.rows if r.variant == variant):
        _row_metrics(m, row, "")
    for q in report.quality.values():
        if q.variant == variant:
            m[f"top1_accuracy.{q.runtime}"] = q.top1_accuracy
            if q.agreement:
                m[f"top1_agreement.{q.runtime}"] = q.agreement["top1_agreement"]
    accs = [v for k, v in m.items() if k.startswith("top1_accuracy.")]
    if accs:
        m["top1_accuracy"] = max(accs)
    size = report.sizes.get(variant)
    if size is not None:
        for key in ("file_bytes", "gzip_bytes", "parameters", "nonzero_parameters",
                    "sparsity"):
            m[f"size.{key}"] = getattr(size, key)
    sections = report.sections
    for c in sections.references:
        if c["variant"] == variant:
            ref = f"vs.{c['reference']}"
            for key in ("speedup", "size_ratio", "accuracy_delta_points"):
                if c.get(key) is not None:
                    m[f"{ref}.{key}.b{c['batch_size']}" if key == "speedup"
                      else f"{ref}.{key}"] = c[key]
    rob = sections.robustness.get(variant)
    if rob:
        for eps, acc in rob.get("accuracy", {}).items():
            m[f"robust_accuracy.{rob.get('attack', 'pgd')}.eps{eps}"] = acc
    for size_px, block in sections.at_sizes.items():
        for row in (r for r in block.rows if r.variant == variant):
            _row_metrics(m, row, f"at{size_px}.")
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}


def _row_metrics(m: dict, row: Row, prefix: str) -> None:
    meas = row.measurement
    key = f"{row.runtime}.b{row.batch_size}"
    for stat in ("median_s", "p90_s", "p99_s"):
        m[f"{prefix}latency_{stat[:-2]}_ms.{key}"] = getattr(meas, stat) * 1e3
    m[f"{prefix}throughput_items_s.{key}"] = meas.throughput_items_s
    m[f"{prefix}memory_mb.{key}"] = row.memory_bytes / 2**20
    m[f"{prefix}speedup_vs_baseline.{key}"] = row.speedup.speedup.estimate


def _flatten(data: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    text = json.dumps(data) if isinstance(data, (list, tuple)) else str(data)
    if len(text) > MAX_PARAM_CHARS:  # kept whole in report.json, logged with the parent run
        text = text[:MAX_PARAM_CHARS - 40] + " ... (cut; see report.json)"
    return {prefix[:-1]: text}


def mlflow_key(key: str) -> str:
    """A key MLflow accepts (alphanumerics, _ - . space : /): a seeded step's NAME@SEED
    becomes NAME_seedSEED, anything else outside the set an underscore."""
    return re.sub(r"[^\w\-. :/]", "_", key.replace("@", "_seed"))


def _log(client, run_id: str, params: dict[str, str], metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    items_p = [Param(mlflow_key(k), v) for k, v in params.items()]
    items_m = [Metric(mlflow_key(k), v, now, 0) for k, v in metrics.items()]
    for i in range(0, max(len(items_p), len(items_m)), 100):  # log_batch takes <= 100 params
        client.log_batch(run_id, metrics=items_m[i:i + 100], params=items_p[i:i + 100])


def require_mlflow():
    try:
        import mlflow
    except ImportError:
        raise RuntimeUnavailableError("--mlflow needs MLflow: pip install 'optbench[mlflow]' "
                                      "(mlflow-skinny) or pip install mlflow") from None
    return mlflow


def _client(uri: str):
    MlflowClient = require_mlflow().MlflowClient  # noqa: N806
    if not uri.strip():
        raise ConfigError("the MLflow tracking URI is empty; pass e.g. ./mlruns, "
                          "file:///abs/path/mlruns, sqlite:///mlflow.db or http://host:5000")
    if uri.split(":", 1)[0] in ("file", uri) or Path(uri).is_absolute():  # a local folder
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=uri)


def _experiment(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name)
    if exp.lifecycle_stage != "active":
        raise ConfigError(f"MLflow experiment {name!r} is deleted in this store; restore it "
                          "(mlflow experiments restore) or pick another name with "
                          "--mlflow-experiment")
    return exp.experiment_id
