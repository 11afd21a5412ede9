"""What structured pruning leaves before any fine-tuning: a recipe's `prune-structured` step
redone on its finished input, for each channel rounding, importance and with or without
re-estimated BatchNorm statistics.

    PYTHONPATH=. .venv/bin/python scripts/pruning_start.py RECIPE OUT --step STEP \
        [--importance l1,l2,bn] [--rounding down,nearest] [--ratios 0.3,0.35] [--input NAME] \
        [--scopes layer,global] [--skip conv1,...] [--stale-stats | --no-stale-stats]

Takes the step's input (or --input: another finished step of the recipe, e.g. a scratch
student where the step's own input has not trained yet) from OUT/work (finished checkpoints
only; an unfinished one is refused, not trained), prunes it with the step's ratio (or each of
--ratios) and `round_to` (no fine-tuning, no teacher) into a temporary folder, and prints one
row per setting: MACs and parameters left, the layer cut hardest (its channels before ->
after), and validation top-1. The recipe's run is not touched. Accuracy only: it can run
beside a training.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
from pathlib import Path

from optbench.env import device_name
from optbench.errors import ConfigError
from optbench.pipeline import Recipe
from optbench.pipeline.run import finished_steps
from optbench.transforms import optimize
from optbench.transforms.prune import IMPORTANCE, channel_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--step", required=True, help="the recipe's prune-structured step")
    parser.add_argument("--importance", default=",".join(IMPORTANCE))
    parser.add_argument("--rounding", default="down,nearest")
    parser.add_argument("--ratios", default="", help="instead of the step's ratio")
    parser.add_argument("--input", default="", help="prune this step or model instead")
    parser.add_argument("--scopes", default="", help="instead of the step's scope: layer "
                        "(every layer loses the ratio) and/or global (ranked across layers)")
    parser.add_argument("--skip", default=None, help="instead of the step's skip: module names "
                        "never pruned, comma-separated (e.g. conv1, the stem)")
    parser.add_argument("--stale-stats", action=argparse.BooleanOptionalAction, default=True,
                        help="also the rows with the unpruned network's BatchNorm statistics")
    args = parser.parse_args()
    recipe = Recipe.from_toml(args.recipe)
    step = next((s for s in recipe.steps if s.name == args.step), None)
    if step is None or step.config.method != "prune-structured":
        raise ConfigError(f"{args.recipe}: --step must name a prune-structured step; its "
                          f"steps: {[(s.name, s.config.method) for s in recipe.steps]}")
    source = args.input or recipe.input_of([s.name for s in recipe.steps].index(args.step))
    _, ctx, variants = finished_steps(recipe, args.out, source)
    parent = variants[source]
    before = channel_counts(parent.model)
    ratios = [float(r) for r in args.ratios.split(",")] if args.ratios else [step.config.ratio]
    skip = step.config.skip if args.skip is None else tuple(filter(None, args.skip.split(",")))
    print(f"{device_name()}; step {args.step!r} of {args.recipe} (round_to "
          f"{step.config.round_to}) on {source!r} from {args.out}; "
          f"{len(ctx.val_data)} validation images"
          + (f"; never pruned: {', '.join(skip)}" if skip else ""))
    print("| ratio | scope | rounding | importance | BatchNorm statistics | MACs left | "
          "params left | cut hardest | val top-1 % |")
    print("|---:|---|---|---|---|---:|---:|---|---:|")
    recal = step.config.recalibrate_bn or 1024
    scopes = args.scopes.split(",") if args.scopes else [step.config.scope]
    settings = itertools.product(ratios, scopes, args.rounding.split(","),
                                 args.importance.split(","),
                                 (0, recal) if args.stale_stats else (recal,))
    with tempfile.TemporaryDirectory() as folder:
        for ratio, scope, rounding, importance, images in settings:
            config = dataclasses.replace(step.config, finetune=None, teacher="", ratio=ratio,
                                         scope=scope, rounding=rounding, importance=importance,
                                         recalibrate_bn=images, skip=skip)
            info = optimize(parent, config, ctx.for_step(
                f"start-{ratio}-{scope}-{rounding}-{importance}-{images}",
                workdir=Path(folder))).info
            after = info["channels"]
            layer = min(after, key=lambda n: after[n] / before[n])
            done = info.get("bn_recalibrated")
            stats = f"re-estimated ({done} images)" if images else "kept (stale)"
            print(f"| {ratio:g} | {scope} | {rounding} | {importance} | {stats} | "
                  f"{info['macs_after'] / info['macs_before']:.3f} | "
                  f"{info['params_after'] / info['params_before']:.3f} | "
                  f"{layer} {before[layer]} -> {after[layer]} | "
                  f"{100 * info['val_accuracy_pruned']:.2f} |", flush=True)

if __name__ == "__main__":
    main()
