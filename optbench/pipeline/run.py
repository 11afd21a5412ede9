"""Running a recipe: build the models, apply the steps in order (each a Variant with its
lineage; training steps checkpoint every epoch, and every 10 minutes inside one, in DIR/work and
resume; finished steps are listed in DIR/state.json), measure every measured variant interleaved
in one run, and add the report's stages: diagnosis, references, targets, artifacts, robustness,
other sizes, search.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from optbench.bench import FinishedProcesses, measure_variants
from optbench.errors import ConfigError
from optbench.io import atomic_write_json, safe_torch_load
from optbench.pipeline.at_size import measure_at_size
from optbench.pipeline.recipe import DataConfig, ModelConfig, Recipe
from optbench.pipeline.targets import evaluate_targets
from optbench.results import BenchResult, VariantFacts, VariantRecord, entry_label
from optbench.transforms import Context, Variant, optimize


@dataclasses.dataclass
class PipelineResult:
    variants: dict[str, Variant]
    measured: list[str]
    bench: Any = None            # BenchResult of all measured variants, interleaved
    diagnosis: list[dict] = dataclasses.field(default_factory=list)
    search: dict = dataclasses.field(default_factory=dict)   # input -> SearchResult
    paths: dict = dataclasses.field(default_factory=dict)    # report files written
    artifacts: dict = dataclasses.field(default_factory=dict)  # variant -> manifest.json


def run_recipe(recipe: Recipe, out_dir: str | os.PathLike, progress: bool = True,
               measure: bool = True, search: bool = True,
               recipe_changed: bool = False, jobs: int = 1,
               resume_measurement: bool = False, train_device: str = "cpu",
               until: str | None = None) -> PipelineResult:
    """Run the steps (training resumes from OUT/work checkpoints), measure, report.
    `recipe_changed=True` continues in a folder started by another version of the recipe.
    `jobs` > 1 trains up to that many independent training steps at once, each in a process
    of its own (pipeline/parallel.py, train_in_worker); the steps then resume from their
    finished checkpoints. `resume_measurement=True` keeps the measurement stages a saved
    OUT/report.json of this recipe finished on this machine kind and runs only the missing ones
    (measure_stages), the one cut short from the timing processes it finished.
    `train_device` ("cuda", "cuda:N") trains the training steps there (e.g. on a lent GPU;
    every epoch records its device; the variants come back to the CPU, where they are
    measured); `until` runs the steps up to and including that one and stops, unmeasured: with
    both, a GPU machine trains a teacher and hands back its checkpoint
    (train.slim_checkpoint; scripts/gpu_train.sh), and a CPU run of the same recipe in a
    folder holding it resumes from it."""
    from optbench.pipeline.parallel import SideBySide

    out = Path(out_dir)
    fingerprint = recipe.fingerprint()   # of the recipe as written
    stop = _until_index(recipe, until)
    _check_train_device(train_device, jobs)
    side_by_side = SideBySide(recipe, out, jobs, train_in_worker, progress)
    recipe, splits, ctx, variants = prepare(recipe, out, progress)
    ctx.device = train_device
    state = _State(out / "state.json", fingerprint, recipe_changed)
    measured = [*recipe.measure_models, *(s.name for s in recipe.steps if s.measure)]
    # checked before any step runs: a refusal costs nothing
    saved = saved_measurement(out, fingerprint, measured) if resume_measurement else None
    for i, step in enumerate(recipe.steps[:stop + 1]):
        side_by_side.train_from(i, recipe, done=set(variants), finished=set(state.finished))
        variants[step.name] = run_step(recipe, i, variants, ctx)
        if train_device != "cpu" and isinstance(variants[step.name].model, torch.nn.Module):
            variants[step.name].model.to("cpu")   # later steps and the measurement run here
        state.finish(step.name, variants[step.name])
    result = PipelineResult(variants=variants, measured=measured)
    if until is not None:
        return result
    if measure and measured:
        measure_stages(recipe, variants, measured, splits, out, fingerprint, result, saved,
                       resume=resume_measurement)
    if measure and search and recipe.search:
        result.search = run_search(recipe, variants, ctx, out)
    return result


def _until_index(recipe: Recipe, until: str | None) -> int:
    """The index of step `until` (the last step when None); a clear error for another name."""
    names = [s.name for s in recipe.steps]
    if until is None:
        return len(names) - 1
    if until not in names:
        raise ConfigError(f"--until {until!r}: the recipe has no step of that name; its steps "
                          f"are {', '.join(names)}")
    return names.index(until)


def _check_train_device(device: str, jobs: int) -> None:
    """cpu, or a CUDA device this machine has; training side by side (--jobs) is CPU-only."""
    if device == "cpu":
        return
    if not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"train device {device!r}: use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"train device {device!r}: this machine has no CUDA device (torch "
                          f"{torch.__version__}); train with --train-device cpu, or run on a "
                          "machine with a GPU and copy the checkpoints back "
                          "(scripts/gpu_train.sh)")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"train device {device!r}: this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s)")
    if jobs > 1:
        raise ConfigError("--jobs trains steps side by side on the CPU's cores; with "
                          f"--train-device {device} drop --jobs (one GPU trains one step at "
                          "a time)")


def measure_stages(recipe: Recipe, variants: dict[str, Variant], measured: list[str],
                   splits: dict, out: Path, fingerprint: str, result: PipelineResult,
                   saved: BenchResult | None = None, resume: bool = False) -> None:
    """The report's stages, each saved as it finishes, each recording where it ran
    (sections.stages: commit, date, command, CPU): the interleaved measurement of every
    measured variant (latency, memory, accuracy; then diagnosis, references, targets and the
    deployable artifacts), robustness, then timing at each [bench] extra size. Given `saved`
    (saved_measurement: a report of this recipe cut short, from this machine kind), the stages
    it finished are kept and only the missing ones run: a measurement cut short by the end of
    a sitting does not start again. Within a stage, each timing process (`[bench]
    processes`) is kept as it ends (bench.FinishedProcesses, OUT/work/timing/STAGE), and with
    `resume` a stage cut short reuses the processes it finished; a stage's folder is removed
    once the report holds it."""
    from optbench.diagnose import compare_to_references, diagnose
    from optbench.report import save_bench

    untimed = {s.name for s in recipe.steps if not s.timed}

    def finished(stage: str):   # each timing process kept as it ends (work/timing/STAGE)
        return FinishedProcesses(out / "work" / "timing" / stage, context=fingerprint,
                                 reuse=resume)

    held: list[Path] = []   # kept processes of finished stages: removed once saved

    def done(stage: str, kept) -> dict:
        held.append(kept.folder)
        provenance = stage_provenance()
        if any(p["reused"] for p in kept.processes):   # timed over more than one sitting
            provenance["processes"] = kept.processes
        return provenance

    if saved is None:
        kept = finished("measurement")
        bench = measure_variants([variants[n] for n in measured], recipe.bench, splits["test"],
                                 untimed=untimed, finished=kept)
        bench.sections.stages["measurement"] = done("measurement", kept)
    else:
        bench = saved
    result.bench = bench
    result.diagnosis = diagnose(bench, {n: variants[n] for n in measured})
    sections = bench.sections
    sections.variants = variant_records(variants, measured)
    sections.diagnosis = result.diagnosis
    sections.recipe_fingerprint = fingerprint
    sections.class_names = list(splits["test"].classes)
    whole = recipe.data.dataset != "synthetic" and not recipe.data.test_limit
    sections.test_split = {"examples": len(splits["test"]), "whole": whole}
    if recipe.compared_with:
        sections.references = compare_to_references(bench, recipe.compared_with)

    def save() -> None:
        # targets re-checked at every save: a run cut short says which are not measured yet
        if recipe.targets:
            sections.targets = evaluate_targets(bench, recipe.targets, bench.predictions)
            sections.targets_checked = {}   # checked by the code that measured
        result.paths = save_bench(bench, out, stem="report")
        for folder in held:   # the report holds their timing now
            shutil.rmtree(folder, ignore_errors=True)
        held.clear()

    save()  # now, so a failure in a later stage (search) loses no measurement
    result.artifacts = export_artifacts(variants, measured, bench, recipe, out / "artifacts",
                                        splits["test"], fingerprint)
    if recipe.robustness and "robustness" not in sections.stages:
        from optbench.pipeline.responsible import robustness_stage  # noqa: I001

        runtime_of = {}
        for row in bench.rows:
            runtime_of.setdefault(row.variant, row.runtime)
        for name, q in bench.first_quality().items():   # measured for accuracy only
            runtime_of.setdefault(name, q.runtime)
        sections.robustness = robustness_stage(
            variants, measured, runtime_of, splits["test"], recipe.robustness,
            threads=recipe.bench.threads)
        sections.stages["robustness"] = stage_provenance()
        save()
    for size in recipe.bench.extra_sizes:
        if f"at{size}" in sections.stages:
            continue
        kept = finished(f"at{size}")
        sections.at_sizes[size] = measure_at_size(
            recipe, variants, [n for n in measured if n not in untimed], splits, size, out,
            finished=kept)
        sections.stages[f"at{size}"] = done(f"at{size}", kept)
        save()


def stage_provenance() -> dict:
    """Where and when a report stage ran, taken at its end (env.provenance)."""
    from optbench.env import provenance

    return provenance()


def saved_measurement(out: Path, fingerprint: str, measured: list[str]):
    """OUT/report.json (and predictions.npz) as a BenchResult to resume from, after checking
    that it measured this recipe's variants on this machine kind; None where no report was
    saved yet but the first stage kept finished timing processes; a clear error otherwise."""
    from optbench.env import capture, machine_kind
    from optbench.errors import MissingInputError
    from optbench.report.store import load_predictions
    from optbench.results import load_report

    path = out / "report.json"
    if not path.is_file():
        if any((out / "work" / "timing" / "measurement").glob("process-*.json")):
            return None   # the first stage was cut short: it resumes from its kept processes
        raise MissingInputError(f"--resume-measurement: {path} does not exist, so there is no "
                                "measurement to resume; run without --resume-measurement")
    saved = load_report(path)
    sec = saved.sections
    if sec.recipe_fingerprint != fingerprint:
        raise ConfigError(f"--resume-measurement: {path} measured a different recipe "
                          f"(fingerprint {sec.recipe_fingerprint} != {fingerprint}); its "
                          "numbers cannot be kept. Run without --resume-measurement to "
                          "measure everything again")
    if set(sec.variants) != set(measured):
        raise ConfigError(f"--resume-measurement: {path} measured {sorted(sec.variants)}, this "
                          f"recipe measures {sorted(measured)}; run without "
                          "--resume-measurement")
    here, there = machine_kind(capture()), machine_kind(saved.env)
    for key in here:
        if here[key] != there[key]:
            raise ConfigError(
                f"--resume-measurement: {path} was measured on another machine kind ({key}: "
                f"{there[key]!r}, here {here[key]!r}); a report's stages must come "
                "from one kind of machine to be compared. Run without --resume-measurement "
                "(or with another --out) to measure everything here")
    if not sec.stages:   # written before stages were recorded: all it holds ran in one sitting
        _backfill_stages(sec, saved.env, path)
    if (out / "predictions.npz").is_file():
        saved.predictions = load_predictions(out / "predictions.npz")
    return saved


def _backfill_stages(sec, env: dict, path: Path) -> None:
    """Stages of a report written before they were recorded: all from the sitting its env
    describes. The measurement ended when the env was taken; the last stage saved ended when
    the file was written (its mtime); a stage in between has no recorded end."""
    import datetime as dt

    from optbench.env import provenance

    sitting = provenance(env)
    note = "from the report's environment (written before stages were recorded)"
    names = ["measurement", *(["robustness"] if sec.robustness else []),
             *(f"at{size}" for size in sorted(sec.at_sizes))]
    written = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    for i, name in enumerate(names):
        date = (env.get("date") if i == 0 else
                written.isoformat(timespec="seconds") if i == len(names) - 1 else None)
        sec.stages[name] = {**sitting, "date": date, "note": note}


def prepare(recipe: Recipe, out: Path, progress: bool = True
            ) -> tuple[Recipe, dict, Context, dict[str, Variant]]:
    """The data splits, the recipe with the data's input shape, the steps' base Context and the
    recipe's models built as Variants: what every step starts from."""
    splits = load_data(recipe.data)
    recipe = recipe.with_data(splits["test"].transform)
    ctx = Context(example_input=splits["test"].batch(0, 2), calib_data=splits["calib"],
                  train_data=splits["train"], val_data=splits["val"], workdir=out / "work",
                  progress=progress)
    variants = {name: _build(name, spec, recipe.data, len(splits["test"].classes))
                for name, spec in recipe.models.items()}
    return recipe, splits, ctx, variants


def run_step(recipe: Recipe, index: int, variants: dict[str, Variant], ctx: Context) -> Variant:
    """Step `index` applied to its input (and teacher) among `variants`. A training step that
    starts from a recipe model built from scratch starts from that model built under its
    training seed: each seed of a step is a replicate with its own initial weights (and
    seed-matched steps, e.g. a scratch and a distilled student, share theirs)."""
    step = recipe.steps[index]
    source = recipe.input_of(index)
    parent = variants[source]
    seed = getattr(getattr(step.config, "train", None), "seed", None)
    spec = recipe.models.get(source)
    if seed is not None and spec is not None and _from_scratch(spec):
        parent = _build(source, spec, recipe.data, spec.num_classes, seed=seed)
    teacher = getattr(step.config, "teacher", None)
    # the teacher's variant: its module runs on the torch runtimes, its ONNX file on onnxruntime
    step_ctx = ctx.for_step(step.name, teacher=variants[teacher] if teacher else None)
    return optimize(parent, step.config, step_ctx, name=step.name)


def finished_steps(recipe: Recipe, out: Path, name: str, progress: bool = False
                   ) -> tuple[Recipe, Context, dict[str, Variant]]:
    """Step `name` and the steps it needs, rebuilt from a run's finished checkpoints in
    OUT/work, never training: a step whose training has not finished is refused (let the
    recipe's run finish it). `name` may also be one of the recipe's models (built, nothing to
    rebuild). For scripts that study a finished run; returns the prepared recipe, the base
    Context and every variant built."""
    from optbench.pipeline.parallel import needed_steps
    from optbench.train import TrainConfig

    names = [step.name for step in recipe.steps]
    if name not in names and name not in recipe.models:
        raise ConfigError(f"the recipe has no step or model {name!r}; its steps: {names}, its "
                          f"models: {list(recipe.models)}")
    prepared, _, ctx, variants = prepare(recipe, out, progress=progress)
    if name in recipe.models:
        return prepared, ctx, variants
    for i in needed_steps(prepared, names.index(name)):
        step = prepared.steps[i]
        train = getattr(step.config, getattr(step.config, "training_field", ""), None)
        if isinstance(train, TrainConfig):   # written by the method as ctx.file() names it
            ckpt = out / "work" / f"{step.name}-{step.config.checkpoint_suffix}"
            history = safe_torch_load(ckpt)["history"] if ckpt.is_file() else []
            if len(history) < train.epochs:
                raise ConfigError(f"{ckpt}: {len(history)} of {train.epochs} epochs finished; "
                                  "let the recipe's run finish the step first")
        variants[step.name] = run_step(prepared, i, variants, ctx)
    return prepared, ctx, variants


def train_in_worker(recipe: Recipe, out: str, name: str, threads: int) -> dict:
    """In a fresh process (run --jobs): build what step `name` needs, run it (its checkpoints
    land in OUT/work) and return its last epoch's record."""
    from optbench.pipeline.parallel import needed_steps

    torch.set_num_threads(threads)
    prepared, _, ctx, variants = prepare(recipe, Path(out), progress=False)
    index = next(i for i, step in enumerate(prepared.steps) if step.name == name)
    for i in needed_steps(prepared, index):
        variants[prepared.steps[i].name] = run_step(prepared, i, variants, ctx)
    history = variants[name].info.get("history") or [{}]
    return history[-1]


def export_artifacts(variants: dict[str, Variant], measured: list[str], bench: BenchResult,
                     recipe: Recipe, out: Path, test_data, version: str) -> dict[str, Path]:
    """A deployable artifact (ONNX file or OpenVINO IR + manifest with checksums and the
    measured figures) for every measured variant that is one: what `optbench serve` loads.
    The manifest carries the data's transform (size, channels, colour, normalization) and class
    names, so the server prepares uploads as the model was trained."""
    from optbench.artifact import FORMATS, save_artifact

    d = recipe.data
    transform, class_names = test_data.transform, tuple(test_data.classes)
    paths = {}
    for name in measured:
        v = variants[name]
        if v.onnx_path is None and v.ir_path is None:
            continue
        files = {"ir_path": v.ir_path} if v.ir_path else {"onnx_path": v.onnx_path}
        paths[name] = save_artifact(
            out / name, name=name, **files,
            input_shape=(d.channels, d.image_size, d.image_size), transform=transform,
            class_names=class_names, lineage=v.lineage,
            metrics=variant_figures(bench, name, FORMATS["openvino-ir" if v.ir_path else "onnx"]),
            version=version, int8=v.facts.int8_mode)
    return paths


def variant_figures(bench: BenchResult, name: str, runtime: str) -> dict:
    """The report's figures for one variant: accuracy on `runtime` (the one its artifact is
    served on; the variant's own accuracy where that runtime was not evaluated), latency per
    runtime and batch, size."""
    served = bench.quality.get(entry_label(name, runtime))
    return {
        "top1_accuracy": served.top1_accuracy if served else bench.accuracy(name),
        "latency_median_s": {f"{r.runtime}/batch{r.batch_size}": r.median_s
                             for r in bench.rows if r.variant == name},
        "size_bytes": bench.size_bytes(name),
        "measured_on": bench.env.get("cpu_model"),
    }


def run_search(recipe: Recipe, variants: dict, ctx: Context, out: Path) -> dict:
    """Budgeted search for each [search] input; writes search.json and search.md."""
    from optbench.search import SearchConfig, search

    results, summary = {}, {}
    for name in recipe.search.inputs:
        res = search(variants[name].model, ctx.for_step(f"search-{name}"),
                     SearchConfig(recipe.search.budget_points), recipe.bench)
        results[name] = res
        summary[name] = {"baseline_accuracy": res.baseline_accuracy,
                         "budget_points": recipe.search.budget_points,
                         "best": {str(k): v for k, v in res.best.items()},
                         "candidates": res.candidates, "skipped": res.skipped,
                         "env": res.bench.env}
    atomic_write_json(out / "search.json", summary)
    from optbench.io import atomic_write_text
    from optbench.report.render import render_search

    atomic_write_text(out / "search.md", render_search(summary))
    return results


def variant_records(variants: dict[str, Variant], measured: list[str]
                    ) -> dict[str, VariantRecord]:
    return {n: VariantRecord(lineage=variants[n].lineage, runtimes=variants[n].runtimes,
                             facts=VariantFacts.from_info(_jsonable(variants[n].info)))
            for n in measured}


def load_data(config: DataConfig) -> dict:
    from optbench.data import (
        ImageTransform,
        load_fashion_mnist,
        load_image_folder,
        load_npz,
        load_python_dataset,
        synthetic_dataset,
        take_subset,
    )

    size = config.default_size or None
    if config.dataset == "synthetic":
        tf = ImageTransform(size=size, channels=config.channels or 1, mean=0.3, std=0.35)
        full = synthetic_dataset(n=2048, size=size, seed=config.seed, transform=tf)
        split = {"train": full.subset(range(0, 1536)), "val": full.subset(range(1536, 1792)),
                 "test": full.subset(range(1792, 2048))}
    elif config.dataset in ("npz", "image-folder", "python"):
        common = dict(size=size, channels=config.channels, seed=config.seed)
        if config.dataset == "npz":
            split = load_npz(config.data_dir, **common)
        elif config.dataset == "image-folder":
            split = load_image_folder(config.data_dir, skip_corrupt=config.skip_corrupt, **common)
        else:
            split = load_python_dataset(config.entry, **common)
        limits = {"train": config.train_limit, "val": config.val_limit,
                  "test": config.test_limit}
        split = {name: take_subset(ds, limits[name] or None, config.seed)
                 for name, ds in split.items()}
    else:
        tf = ImageTransform(size=size, channels=config.channels or 1)
        kw = dict(root=config.data_dir or None, transform=tf, seed=config.seed)
        split = {"train": load_fashion_mnist("train", limit=config.train_limit or None, **kw),
                 "val": load_fashion_mnist("val", limit=config.val_limit or None, **kw),
                 "test": load_fashion_mnist("test", limit=config.test_limit or None, **kw)}
    if config.mean:   # normalization given: it replaces the computed (or built-in) one
        tf = split["train"].transform
        if len(config.mean) not in (1, 3 if tf.rgb else 1):
            raise ConfigError(f"[data] mean has {len(config.mean)} values; the images are "
                              f"{'colour: give 1 or 3' if tf.rgb else 'grey: give 1'}")
        tf = dataclasses.replace(tf, mean=config.mean, std=config.std)
        split = {k: ds.with_transform(tf) for k, ds in split.items()}
    split["calib"] = take_subset(split["train"], config.calib_limit or None, config.seed + 7)
    return split


class _State:
    """DIR/state.json: which steps finished, for which recipe (its fingerprint)."""

    def __init__(self, path: Path, fingerprint: str, changed_ok: bool = False):
        self.path, self.fingerprint = path, fingerprint
        old = json.loads(path.read_text()) if path.is_file() else {}
        if old and old.get("fingerprint") != fingerprint:
            if not changed_ok:
                raise ConfigError(
                    f"{path.parent} holds a run of a different recipe (fingerprint "
                    f"{old.get('fingerprint')} != {fingerprint}). If it is an earlier version "
                    "of this recipe, add --recipe-changed to keep its finished training "
                    "(checkpoints whose training settings still match resume; the others "
                    "refuse and say so); otherwise use another --out folder")
            old = {"fingerprint": fingerprint, "finished": {},
                   "earlier_fingerprints": [*old.get("earlier_fingerprints", []),
                                            old.get("fingerprint")]}
        self.data = old or {"fingerprint": fingerprint, "finished": {}}

    @property
    def finished(self) -> dict:
        return self.data["finished"]

    def finish(self, name: str, variant: Variant) -> None:
        self.data["finished"][name] = {"lineage": list(variant.lineage)}
        atomic_write_json(self.path, self.data)


def _from_scratch(spec: ModelConfig) -> bool:
    """A recipe model whose weights are its initialization (no checkpoint, weights or ONNX)."""
    return not (spec.checkpoint or spec.weights or spec.arch.startswith("onnx:"))


def _build(name: str, spec: ModelConfig, data: DataConfig, num_classes: int,
           seed: int = 0) -> Variant:
    """A model of the recipe as a Variant: built (initialized under `seed`, whatever the
    process did before; loaded from its checkpoint if it has one), or an .onnx starting point
    (onnx:PATH) for the methods that work on ONNX."""
    if spec.arch.startswith("onnx:"):
        path = onnx_start(spec.arch.removeprefix("onnx:"), name, data, num_classes)
        return Variant(name, onnx_path=path, runtimes=("onnxruntime",), lineage=(name,),
                       info={"source": "onnx"})
    from optbench.models import build_model, load_model

    kwargs = dict(num_classes=spec.num_classes, in_channels=data.channels,
                  weights=spec.weights or None, small_input=spec.small_input,
                  stem=spec.stem)
    with torch.random.fork_rng(devices=[]):   # the caller's random state stays as it was
        torch.manual_seed(seed)
        if spec.checkpoint:   # a trained starting point, loaded with weights_only=True
            model = load_model(spec.arch, checkpoint=spec.checkpoint, **kwargs)
        else:
            model = build_model(spec.arch, **kwargs)
    return Variant(name, model=model, lineage=(name,))


def onnx_start(path: str, name: str, data: DataConfig, num_classes: int) -> Path:
    """Check that an .onnx starting point fits the data: one input (N, C, H, W) whose C (and H,
    W where fixed) match, and outputs no fewer than the data's classes."""
    import onnx

    from optbench.errors import MissingInputError

    file = Path(path)
    if not file.is_file():
        raise MissingInputError(f"[models.{name}] arch = \"onnx:{path}\": file not found")
    try:
        graph = onnx.load(str(file), load_external_data=False).graph
    except Exception as exc:  # protobuf decode errors have no common base
        raise ConfigError(f"[models.{name}] {file} is not a readable ONNX model "
                          f"({type(exc).__name__}: {exc})") from None
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ConfigError(f"[models.{name}] {file} has {len(inputs)} inputs; optbench feeds one "
                          "image batch (N, C, H, W)")

    def dims(value_info):
        return [d.dim_value or None for d in value_info.type.tensor_type.shape.dim]

    shape = dims(inputs[0])
    want = [None, data.channels, data.image_size, data.image_size]
    if len(shape) != 4 or any(s is not None and s != w for s, w in zip(shape[1:], want[1:],
                                                                         strict=True)):
        raise ConfigError(f"[models.{name}] {file} takes input {shape} but the data are "
                          f"{want[1:]} (C, H, W); set [data] channels/image_size to match, or "
                          "export the model for this input")
    out = dims(graph.output[0]) if graph.output else []
    if out and out[-1] is not None and out[-1] < num_classes:
        raise ConfigError(f"[models.{name}] {file} outputs {out[-1]} scores but the data have "
                          f"{num_classes} classes")
    return file


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
