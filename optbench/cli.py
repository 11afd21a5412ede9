"""Command line: `optbench bench | demo | run | report | env | package | serve`. Every verb has
--help."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from optbench.config import parse_ints
from optbench.errors import ConfigError, OptbenchError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except OptbenchError as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="optbench", description="Make PyTorch models smaller and "
                                "faster, and measure what it buys.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    _bench_parser(sub)
    _demo_parser(sub)
    run = sub.add_parser("run", help="run a TOML recipe (a pipeline of methods) and report",
                         description="Validate the recipe, run its steps (training steps resume "
                         "from checkpoints in OUT/work), measure every variant, write the report.")
    run.add_argument("recipe", help="path to a recipe .toml")
    run.add_argument("--out", required=True, help="output folder")
    run.add_argument("--no-measure", action="store_true", help="run the steps only")
    run.add_argument("--skip-search", action="store_true", help="do not run the recipe's "
                     "[search] section")
    run.add_argument("--quick", action="store_true", help="apply the recipe's [quick] overrides "
                     "(a data subset and few steps) for a fast end-to-end check")
    _mlflow_args(run)
    run.set_defaults(func=_run)
    rep = sub.add_parser("report", help="re-render the Markdown and HTML report of a results "
                         "folder")
    rep.add_argument("dir", help="folder holding report.json (from run or demo)")
    _mlflow_args(rep)
    rep.set_defaults(func=_report)
    env = sub.add_parser("env", help="print the machine description stored with every result")
    env.set_defaults(func=_env)
    from optbench import cli_ops

    cli_ops.add_parsers(sub)
    return p


def _mlflow_args(p) -> None:
    p.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                   help="log every variant's parameters, metrics and artifact to MLflow "
                   "(default store: OUT/mlruns; or a URI such as sqlite:///mlflow.db); needs "
                   "pip install 'optbench[mlflow]'")
    p.add_argument("--mlflow-experiment", default="optbench", help="MLflow experiment name")


def _track(args, folder) -> None:
    if args.mlflow is None:
        return
    from optbench.tracking import log_results

    t = log_results(folder, args.mlflow or None, experiment=args.mlflow_experiment)
    verb = "already logged as" if t.already_logged else "logged to"
    print(f"MLflow: {verb} run {t.parent_run_id} ({len(t.variant_runs)} variant runs) in "
          f"experiment {args.mlflow_experiment!r} at {t.tracking_uri}")


def default(cls, name: str):
    """A config field's default as the command line shows it (tuples as comma lists), so flags
    never restate the config classes' defaults by hand."""
    import dataclasses

    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = field.default
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


def _bench_parser(sub) -> None:
    from optbench.bench import BenchConfig as B

    b = sub.add_parser("bench", help="measure a model across runtimes and batch sizes",
                       description="Measure latency, memory, size (and accuracy with --data) of "
                       "a zoo model, a training checkpoint, or an .onnx file.")
    b.add_argument("model", help="zoo name (resnet18, resnet50, mobilenet_v2, ...) or an .onnx "
                   "path")
    b.add_argument("--checkpoint", help="weights for a zoo model: an optbench training "
                   "checkpoint or a state dict (.pt), loaded with weights_only=True")
    b.add_argument("--weights", help="torchvision weights for a zoo model, e.g. DEFAULT")
    b.add_argument("--num-classes", type=int, default=10)
    b.add_argument("--runtimes", default=default(B, "runtimes"),
                   help="comma-separated; the first is the speed-up baseline")
    b.add_argument("--batch-sizes", default=default(B, "batch_sizes"),
                   help="comma-separated, e.g. 1,8,32")
    b.add_argument("--input-shape", default=default(B, "input_shape"),
                   help="one example's shape, C,H,W")
    b.add_argument("--device", default=default(B, "device"), help="cpu or cuda[:N]")
    b.add_argument("--threads", type=int, default=default(B, "threads"),
                   help="intra-op threads (0 = default)")
    b.add_argument("--min-time", type=float, default=default(B, "min_time_s"),
                   help="seconds of timing at least, per entry")
    b.add_argument("--max-time", type=float, default=default(B, "max_time_s"),
                   help="seconds of timing at most, per entry")
    b.add_argument("--data", action="store_true", help="also measure accuracy on Fashion-MNIST")
    b.add_argument("--data-dir", help="folder with Fashion-MNIST idx files")
    b.add_argument("--eval-limit", type=int, default=0, help="test images for --data (0 = all)")
    b.add_argument("--out", default="results/bench", help="folder for result.json/.csv/.md")
    b.set_defaults(func=_bench)


def _demo_parser(sub) -> None:
    from optbench.demo import DemoConfig as D

    d = sub.add_parser("demo", help="train a small model on Fashion-MNIST, benchmark it, report",
                       description="The README's main job. Resumes from its checkpoint.")
    d.add_argument("--out", default="results/demo")
    d.add_argument("--work", default="runs/demo", help="folder for the training checkpoint")
    d.add_argument("--model", default=default(D, "model"))
    d.add_argument("--epochs", type=int, default=default(D, "epochs"))
    d.add_argument("--train-limit", type=int, default=default(D, "train_limit"))
    d.add_argument("--test-limit", type=int, default=default(D, "test_limit"),
                   help="0 = the whole test split")
    d.add_argument("--max-time", type=float, default=default(D, "max_time_s"))
    d.add_argument("--threads", type=int, default=default(D, "threads"))
    d.add_argument("--data-dir")
    d.set_defaults(func=_demo)


def _bench(args) -> int:
    from optbench.bench import BenchConfig, bench
    from optbench.report import save_bench

    config = BenchConfig(runtimes=_names(args.runtimes),
                         batch_sizes=parse_ints(args.batch_sizes, "--batch-sizes"),
                         input_shape=parse_ints(args.input_shape, "--input-shape"),
                         device=args.device, threads=args.threads, min_time_s=args.min_time,
                         max_time_s=args.max_time)
    model = _model(args, config.input_shape[0])
    eval_data = _eval_data(args, config.input_shape) if args.data else None
    result = bench(model, config, label=Path(args.model).stem, eval_data=eval_data)
    paths = save_bench(result, args.out)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _demo(args) -> int:
    from optbench.demo import DemoConfig, run_demo

    config = DemoConfig(model=args.model, epochs=args.epochs, train_limit=args.train_limit,
                        test_limit=args.test_limit, max_time_s=args.max_time,
                        threads=args.threads)
    paths = run_demo(args.out, config, data_dir=args.data_dir, work_dir=args.work)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _run(args) -> int:
    from optbench.pipeline import Recipe, run_recipe

    recipe = Recipe.from_toml(args.recipe, quick=args.quick)  # fails here if invalid
    if args.mlflow is not None:  # before hours of work, not after
        if args.no_measure:
            raise ConfigError("--mlflow logs the measured report; drop --no-measure, or log "
                              "later with `optbench report OUT --mlflow`")
        from optbench.tracking import require_mlflow

        require_mlflow()
    result = run_recipe(recipe, args.out, measure=not args.no_measure,
                        search=not args.skip_search)
    if result.bench is None:
        searched = Path(args.out) / "search.md"
        if result.search:
            print(searched.read_text())
        print(f"ran {len(recipe.steps)} steps; no variant measured"
              + (f"; wrote {searched} and search.json" if result.search else ""))
        if args.mlflow is not None:
            print("MLflow: nothing logged (it logs report.json, which a run without measured "
                  "variants does not write)")
        return 0
    print(result.paths["md"].read_text())
    extra = [Path(args.out) / "search.md"] if result.search else []
    print(f"wrote {', '.join(str(p) for p in [*result.paths.values(), *extra])}")
    _track(args, args.out)
    return 0


def _report(args) -> int:
    from optbench.io import atomic_write_text
    from optbench.report import load_result, render_bench

    source = Path(args.dir) / "report.json"
    if not source.is_file():
        from optbench.errors import MissingInputError

        raise MissingInputError(f"{source} not found; run `optbench run` or `optbench demo` "
                                "with --out pointing at this folder first")
    from optbench.report.html import render_html

    data = load_result(source)
    text = render_bench(data)
    atomic_write_text(Path(args.dir) / "report.md", text)
    atomic_write_text(Path(args.dir) / "report.html", render_html(data))
    print(text)
    print(f"wrote {Path(args.dir) / 'report.md'}, {Path(args.dir) / 'report.html'}")
    _track(args, args.dir)
    return 0


def _env(args) -> int:
    from optbench import env

    print(json.dumps(env.capture(), indent=2))
    return 0


def _model(args, in_channels: int):
    if args.model.endswith(".onnx"):
        return args.model
    from optbench.models import build_model

    model = build_model(args.model, num_classes=args.num_classes, in_channels=in_channels,
                        weights=args.weights)
    if args.checkpoint:
        from optbench.io import load_weights

        state = load_weights(args.checkpoint)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigError(f"checkpoint {args.checkpoint} does not fit {args.model} with "
                              f"{args.num_classes} classes and {in_channels} input channels: "
                              f"{str(exc).splitlines()[0]}; check --num-classes/--input-shape"
                              ) from None
    return model.eval()


def _eval_data(args, input_shape):
    from optbench.data import ImageTransform, load_fashion_mnist

    channels, size = input_shape[0], input_shape[-1]
    return load_fashion_mnist("test", args.data_dir, ImageTransform(size=size, channels=channels),
                              limit=args.eval_limit or None)




def _names(text: str) -> tuple[str, ...]:
    from optbench.runtime import get_runtime

    names = tuple(v.strip() for v in text.split(",") if v.strip())
    for name in names:
        get_runtime(name)  # raises ConfigError listing the registered runtimes
    return names


if __name__ == "__main__":
    sys.exit(main())
