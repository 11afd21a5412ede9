"""What the verbs share: flag defaults read from the config classes, the MLflow flags."""

from __future__ import annotations

import dataclasses


def default(cls, name: str):
    """A config field's default as the command line shows it (tuples as comma lists), so flags
    never restate the config classes' defaults by hand."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = field.default
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


def mlflow_args(p) -> None:
    p.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                   help="log every variant's parameters, metrics and artifact to MLflow "
                   "(default store: OUT/mlruns; or a URI such as sqlite:///mlflow.db); needs "
                   "pip install 'optbench[mlflow]'")
    p.add_argument("--mlflow-experiment", default="optbench", help="MLflow experiment name")


def track(args, folder) -> None:
    if args.mlflow is None:
        return
    from optbench.tracking import log_results

    t = log_results(folder, args.mlflow or None, experiment=args.mlflow_experiment)
    verb = "already logged as" if t.already_logged else "logged to"
    print(f"MLflow: {verb} run {t.parent_run_id} ({len(t.variant_runs)} variant runs) in "
          f"experiment {args.mlflow_experiment!r} at {t.tracking_uri}")
