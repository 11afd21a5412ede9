"""Latency of a pipeline's variants at another input size (e.g. 224x224 for networks trained at
32x32). The same networks accept any size, but some artifacts are fixed to the size they were
made at, so each variant is brought to the new size the way it was made:

- fp32 modules (trained, distilled, pruned) run at any size as they are;
- post-training steps (PTQ, ONNX export, reduced precision) are re-applied to their parent at the
  new size, calibrating on the same calibration images resized;
- steps that train an int8 graph (QAT) cannot be re-derived without training: skipped, with why.

Accuracy is not measured here: it belongs to the training scale.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from optbench.results import AtSize
from optbench.transforms import Context, Variant, optimize

REAPPLIED = ("ptq-pt2e", "ptq-ort-static", "ptq-ort-dynamic", "export-onnx", "reduced-precision")


def variants_at_size(recipe, variants: dict[str, Variant], measured: list[str], splits: dict,
                     size: int, workdir: Path) -> tuple[list[Variant], dict[str, str]]:
    from optbench.data import take_subset

    tf = dataclasses.replace(splits["test"].transform, size=size)   # the data's normalization

    def resized(ds, limit):
        return take_subset(ds, limit).with_transform(tf)

    ctx = Context(example_input=tf(splits["test"].images[:2]),
                  calib_data=resized(splits["calib"], len(splits["calib"])),
                  val_data=resized(splits["val"], 128), workdir=workdir, progress=False)
    steps = {s.name: s for s in recipe.steps}
    out, skipped = [], {}
    for name in measured:
        v = variants[name]
        step = steps.get(name)
        if v.model is not None and not v.facts.int8:
            out.append(v)
        elif step is not None and type(step.config).method in REAPPLIED:
            parent = variants[recipe.input_of(recipe.steps.index(step))]
            out.append(optimize(parent, step.config, ctx.for_step(f"{name}-at{size}"),
                                name=name))
        else:
            method = type(step.config).method if step else "a model"
            skipped[name] = (f"made by {method}, which trains an int8 graph fixed to the training "
                             f"input size; re-deriving it at {size}x{size} would mean training "
                             "again")
    return out, skipped


def measure_at_size(recipe, variants, measured, splits, size: int, out: Path,
                    finished=None) -> AtSize:
    """The measured variants timed at size x size (`finished`: bench.FinishedProcesses)."""
    from optbench.bench import measure_variants
    from optbench.diagnose import compare_to_references

    resized, skipped = variants_at_size(recipe, variants, measured, splits, size,
                                        out / "work" / f"at{size}")
    config = dataclasses.replace(recipe.bench, input_shape=(recipe.data.channels, size, size),
                                 batch_sizes=recipe.bench.extra_batch_sizes)
    bench = measure_variants(resized, config, eval_data=None, finished=finished)
    refs = [r for r in recipe.compared_with if r in {v.name for v in resized}]
    return AtSize(size=size, rows=bench.rows, sizes=bench.sizes, skipped=skipped,
                  references=compare_to_references(bench, tuple(refs)),
                  config=config.to_dict())

