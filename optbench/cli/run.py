"""`optbench run` (a recipe), `optbench report` (re-render a results folder), `optbench env`."""

from __future__ import annotations

import json
from pathlib import Path

from optbench.cli.common import mlflow_args, track
from optbench.errors import ConfigError


def add_parsers(sub) -> None:
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
    run.add_argument("--recipe-changed", action="store_true", help="OUT holds a run of an "
                     "earlier version of this recipe: keep going in it (training steps whose "
                     "training settings did not change resume from their checkpoints; the "
                     "others refuse theirs and say so)")
    run.add_argument("--resume-measurement", action="store_true", help="OUT/report.json is a "
                     "measurement of this recipe cut short (e.g. before its 224x224 stage): keep "
                     "the stages it finished and run only the missing ones (the stage cut short "
                     "reuses the timing processes it finished, where recipe, machine kind and "
                     "packages match). Refused if the "
                     "recipe, its variants or the machine kind (CPU model, ISA) differ; every "
                     "stage records the commit, date and command it ran with")
    run.add_argument("--jobs", type=int, default=1, metavar="N", help="train up to N "
                     "independent training steps (the seeds of a step, students of one "
                     "finished teacher) at once, each in a process of its own with cores/N "
                     "threads (on 2 cores, two distilled students trained 1.28x faster so "
                     "than one after the other: results/thread_scaling). Default 1")
    run.add_argument("--train-device", default="cpu", metavar="DEVICE", help="where the "
                     "training steps train: cpu (default), cuda or cuda:N. Every epoch records "
                     "its device; the variants are measured on the CPU")
    run.add_argument("--until", metavar="STEP", help="run the steps up to and including STEP, "
                     "then stop, unmeasured (e.g. train a teacher on a lent GPU: "
                     "scripts/gpu_train.sh)")
    mlflow_args(run)
    run.set_defaults(func=run_verb)
    rep = sub.add_parser("report", help="re-render the Markdown, HTML and CSV report of a "
                         "results folder from its report.json")
    rep.add_argument("dir", help="folder holding report.json (from run or demo)")
    mlflow_args(rep)
    rep.set_defaults(func=report)
    sw = sub.add_parser("sweep", help="run a grid of recipe variations (local or on Ray) and "
                        "merge their answers", description="Each trial is a recipe run in "
                        "OUT/trials/ID (resumable); finished trials are skipped on a re-run; "
                        "OUT/merged.md lists every trial with its pick and status.")
    sw.add_argument("sweep", help="a sweep .toml ([sweep] recipes, executor, ...; [grid])")
    sw.add_argument("--out", required=True, help="output folder")
    sw.add_argument("--executor", default=None, help="local or ray (default: the file's)")
    sw.add_argument("--address", default=None, help="Ray cluster address (auto, "
                    "ray://host:port); default: a local Ray instance")
    sw.set_defaults(func=sweep_verb)
    sm = sub.add_parser("sweep-merge", help="one report over sweeps run on different machine "
                        "kinds", description="Reads each folder's merged.json (written by "
                        "`optbench sweep`) and writes OUT/sweeps.md, .html, .csv, .json: per "
                        "machine kind, the best pick per model and every trial.")
    sm.add_argument("folders", nargs="+", help="sweep output folders")
    sm.add_argument("--out", required=True, help="output folder")
    sm.set_defaults(func=sweep_merge_verb)
    env = sub.add_parser("env", help="print the machine description stored with every result")
    env.set_defaults(func=show_env)


def run_verb(args) -> int:
    from optbench.pipeline import Recipe, run_recipe

    recipe = Recipe.from_toml(args.recipe, quick=args.quick)  # fails here if invalid
    if args.mlflow is not None:  # before hours of work, not after
        if args.no_measure:
            raise ConfigError("--mlflow logs the measured report; drop --no-measure, or log "
                              "later with `optbench report OUT --mlflow`")
        from optbench.tracking import require_mlflow

        require_mlflow()
    if args.resume_measurement and (args.no_measure or args.until):
        raise ConfigError("--resume-measurement resumes a measurement; drop --no-measure "
                          "and --until")
    if args.mlflow is not None and args.until:
        raise ConfigError("--mlflow logs the measured report; drop --until")
    result = run_recipe(recipe, args.out, measure=not args.no_measure,
                        search=not args.skip_search, recipe_changed=args.recipe_changed,
                        jobs=args.jobs, resume_measurement=args.resume_measurement,
                        train_device=args.train_device, until=args.until)
    searched = Path(args.out) / "search.md"
    if args.until:
        print(f"ran the steps up to {args.until}; stopped there, unmeasured")
        return 0
    if result.bench is None:
        if result.search:
            print(searched.read_text())
        print(f"ran {len(recipe.steps)} steps; no variant measured"
              + (f"; wrote {searched} and search.json" if result.search else ""))
        if args.mlflow is not None:
            print("MLflow: nothing logged (it logs report.json, which a run without measured "
                  "variants does not write)")
        return 0
    print(result.paths["md"].read_text())
    extra = [searched] if result.search else []
    print(f"wrote {', '.join(str(p) for p in [*result.paths.values(), *extra])}")
    track(args, args.out)
    return 0


def report(args) -> int:
    from optbench.report import rerender

    paths = rerender(args.dir)
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    track(args, args.dir)
    return 0


def show_env(args) -> int:
    from optbench import env

    print(json.dumps(env.capture(), indent=2))
    return 0


def sweep_verb(args) -> int:
    from optbench.sweep import load_sweep, run_sweep

    sweep = load_sweep(args.sweep)          # every trial validated before any work
    state = run_sweep(sweep, args.out, executor=args.executor, address=args.address)
    print((Path(args.out) / "merged.md").read_text())
    failed = [t for t in state["trials"].values() if t["status"] != "done"]
    print(f"{len(sweep.trials) - len(failed)} of {len(sweep.trials)} trials done"
          + (f"; {len(failed)} failed (see OUT/trials/ID/*.log)" if failed else ""))
    return 1 if failed else 0


def sweep_merge_verb(args) -> int:
    from optbench.sweep import merge_sweeps

    print(merge_sweeps(args.folders, args.out).read_text())
    return 0
