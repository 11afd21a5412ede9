"""Pipelines of named steps, read from TOML recipes (DESIGN rule 2).

A recipe names its data, its starting models and its steps. Each step applies one registered
method to an earlier step's (or a model's) output; every step's output is a Variant with its
lineage, so the report can show each step's effect. The whole recipe is validated before any
work starts. Steps that train checkpoint every epoch in DIR/work, so a re-run after a crash or
Ctrl-C resumes; finished steps are listed in DIR/state.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tomllib
from pathlib import Path
from typing import Any

from optbench.bench import BenchConfig, Entry, bench_entries
from optbench.config import Config, check_choice
from optbench.errors import ConfigError, MissingInputError
from optbench.io import atomic_write_json
from optbench.responsible import RobustnessSpec
from optbench.targets import TargetSpec, evaluate_targets
from optbench.transforms.base import Context, Variant, config_from_dict, config_to_dict, optimize


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    dataset: str = "fashion-mnist"      # fashion-mnist | synthetic
    image_size: int = 32
    channels: int = 1
    train_limit: int = 0                # 0 = all
    val_limit: int = 1000
    test_limit: int = 0
    calib_limit: int = 512
    data_dir: str = ""
    seed: int = 0

    def __post_init__(self):
        check_choice("DataConfig", "dataset", self.dataset, ("fashion-mnist", "synthetic"))
        check_choice("DataConfig", "channels", self.channels, (1, 3))


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    arch: str = "resnet18"
    num_classes: int = 10
    small_input: bool = False
    weights: str = ""                   # torchvision weights name, e.g. DEFAULT ("" = none)

    def __post_init__(self):
        from optbench.models import ZOO

        check_choice("ModelConfig", "arch", self.arch, ZOO)


@dataclasses.dataclass(frozen=True)
class SearchSpec(Config):
    """[search]: for each input, try every int8/bf16 back-end, keep the fastest within budget."""

    inputs: tuple[str, ...] = ()
    budget_points: float = 0.5


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    config: Config
    input: str = ""                     # an earlier step or a model; default: the previous step
    measure: bool = True

    def to_dict(self) -> dict:
        return {"name": self.name, "input": self.input, "measure": self.measure,
                **config_to_dict(self.config)}


@dataclasses.dataclass(frozen=True)
class Recipe:
    data: DataConfig
    models: dict[str, ModelConfig]
    steps: tuple[Step, ...]
    bench: BenchConfig
    measure_models: tuple[str, ...] = ()
    search: SearchSpec | None = None
    references: tuple[str, ...] = ()    # variants every other is compared with in the report
    robustness: RobustnessSpec | None = None   # robust accuracy of every measured variant
    targets: tuple[TargetSpec, ...] = ()       # checked after measuring; shown in the report

    @classmethod
    def from_toml(cls, path: str | os.PathLike, quick: bool = False) -> Recipe:
        """Read a recipe; quick=True applies its [quick] overrides (smaller data, fewer steps)."""
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"recipe not found: {path}")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        overrides = data.pop("quick", None)
        if quick:
            if overrides is None:
                raise ConfigError(f"{path} has no [quick] section; run it without --quick")
            data = apply_quick(data, overrides, str(path))
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "recipe") -> Recipe:
        unknown = sorted(set(data) - {"data", "models", "steps", "bench", "measure_models",
                                      "search", "references", "robustness", "targets"})
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; allowed: data, models, "
                              "steps, bench, measure_models, search, references, robustness, "
                              "targets")
        models = {name: _parse(ModelConfig, spec, f"{source} [models.{name}]")
                  for name, spec in data.get("models", {}).items()}
        if not models:
            raise ConfigError(f"{source}: needs at least one [models.NAME] table")
        steps = tuple(_step(raw, i, source) for i, raw in enumerate(data.get("steps", [])))
        recipe = cls(data=_parse(DataConfig, data.get("data", {}), f"{source} [data]"),
                     models=models, steps=steps,
                     bench=_bench(data.get("bench", {}), data.get("data", {}), source),
                     measure_models=tuple(data.get("measure_models", ())),
                     search=(_parse(SearchSpec, data["search"], f"{source} [search]")
                             if "search" in data else None),
                     references=tuple(data.get("references", ())),
                     robustness=(_parse(RobustnessSpec, data["robustness"],
                                        f"{source} [robustness]")
                                 if "robustness" in data else None),
                     targets=tuple(_parse(TargetSpec, raw, f"{source} [[targets]] #{i + 1}")
                                   for i, raw in enumerate(data.get("targets", []))))
        recipe.validate(source)
        return recipe

    def validate(self, source: str = "recipe") -> None:
        known = set(self.models)
        previous = next(iter(self.models))
        for step in self.steps:
            if step.name in known:
                raise ConfigError(f"{source}: step name {step.name!r} is used twice")
            source_name = step.input or previous
            if source_name not in known:
                raise ConfigError(f"{source}: step {step.name!r} takes input {source_name!r}, "
                                  "which is not a model or an earlier step; known: "
                                  f"{sorted(known)}")
            teacher = getattr(step.config, "teacher", "")
            if teacher and teacher not in known:
                raise ConfigError(f"{source}: step {step.name!r} names teacher {teacher!r}; "
                                  f"it must be a model or an earlier step: {sorted(known)}")
            known.add(step.name)
            previous = step.name
        for name in self.measure_models:
            if name not in self.models:
                raise ConfigError(f"{source}: measure_models names {name!r}, not a model")
        measured = {*self.measure_models, *(s.name for s in self.steps if s.measure)}
        for name in self.references:
            if name not in measured:
                raise ConfigError(f"{source}: references names {name!r}, which is not a measured "
                                  f"variant: {sorted(measured)}")
        for i, target in enumerate(self.targets):
            for name in (target.variant, target.reference):
                if name not in measured:
                    raise ConfigError(f"{source}: [[targets]] #{i + 1} names {name!r}, which is "
                                      f"not a measured variant: {sorted(measured)}")
        for name in self.search.inputs if self.search else ():
            if name not in known:
                raise ConfigError(f"{source}: [search] inputs names {name!r}, which is not a "
                                  f"model or step: {sorted(known)}")

    def input_of(self, index: int) -> str:
        step = self.steps[index]
        return step.input or (self.steps[index - 1].name if index else next(iter(self.models)))

    def fingerprint(self) -> str:
        blob = json.dumps({"data": self.data.to_dict(), "steps": [s.to_dict() for s in self.steps],
                           "models": {k: v.to_dict() for k, v in self.models.items()}},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def apply_quick(data: dict, quick: dict, source: str) -> dict:
    """[quick] data/bench/robustness tables override those sections; [quick] train overrides
    every training config inside the steps (train = {...}, finetune = {...})."""
    sections = ("data", "bench", "robustness")
    unknown = sorted(set(quick) - {*sections, "train"})
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in [quick]; allowed: "
                          f"{', '.join(sections)}, train")
    out = {**data}
    for section in sections:
        if section in quick and (section in data or section != "robustness"):
            out[section] = {**data.get(section, {}), **quick[section]}
    if "train" in quick:
        out["steps"] = [{k: ({**v, **quick["train"]} if k in ("train", "finetune") and
                             isinstance(v, dict) else v) for k, v in step.items()}
                        for step in data.get("steps", [])]
    return out


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
               measure: bool = True, search: bool = True) -> PipelineResult:
    out = Path(out_dir)
    splits = load_data(recipe.data)
    ctx = Context(example_input=splits["test"].batch(0, 2), calib_data=splits["calib"],
                  train_data=splits["train"], val_data=splits["val"], workdir=out / "work",
                  progress=progress)
    variants = {name: Variant(name, model=_build(spec, recipe.data.channels), lineage=(name,))
                for name, spec in recipe.models.items()}
    state = _State(out / "state.json", recipe.fingerprint())
    for i, step in enumerate(recipe.steps):
        parent = variants[recipe.input_of(i)]
        teacher = getattr(step.config, "teacher", None)
        ctx.teacher = variants[teacher].model if teacher else None
        ctx.step = step.name
        variants[step.name] = optimize(parent, step.config, ctx, name=step.name)
        state.finish(step.name, variants[step.name])
    measured = [*recipe.measure_models, *(s.name for s in recipe.steps if s.measure)]
    result = PipelineResult(variants=variants, measured=measured)
    if measure and measured:
        result.bench = measure_variants([variants[n] for n in measured], recipe.bench,
                                        splits["test"])
        from optbench.diagnose import diagnose

        result.diagnosis = diagnose(result.bench.to_dict(), {n: variants[n] for n in measured})
        result.bench.extra.update(variant_summary(variants, measured), diagnosis=result.diagnosis,
                                  recipe_fingerprint=recipe.fingerprint(),
                                  class_names=list(splits["test"].classes))
        if recipe.references:
            result.bench.extra["references"] = compare_to_references(result.bench.to_dict(),
                                                                     recipe.references)
        from optbench.report import save_bench

        def save() -> None:
            # targets re-checked at every save: a run cut short says which are not measured yet
            if recipe.targets:
                result.bench.extra["targets"] = evaluate_targets(
                    result.bench.to_dict(), recipe.targets, result.bench.predictions)
            result.paths = save_bench(result.bench, out, stem="report")

        save()  # now, so a failure in a later stage (search) loses no measurement
        result.artifacts = export_artifacts(variants, measured, result.bench.to_dict(), recipe,
                                            out / "artifacts", splits["test"].classes)
        if recipe.robustness:
            from optbench.responsible import robustness_stage  # noqa: I001

            runtime_of = {}
            for row in result.bench.rows:
                runtime_of.setdefault(row.variant, row.runtime)
            result.bench.extra["robustness"] = robustness_stage(
                variants, measured, runtime_of, splits["test"], recipe.robustness,
                threads=recipe.bench.threads)
            save()
        for size in recipe.bench.extra_sizes:
            from optbench.at_size import measure_at_size

            result.bench.extra.setdefault("at_sizes", {})[str(size)] = measure_at_size(
                recipe, variants, measured, splits, size, out)
            save()
    if measure and search and recipe.search:
        result.search = run_search(recipe, variants, ctx, out)
    return result


def export_artifacts(variants: dict[str, Variant], measured: list[str], bench: dict,
                     recipe: Recipe, out: Path, class_names: tuple[str, ...]) -> dict[str, Path]:
    """A deployable artifact (ONNX file + manifest with checksums and the measured figures) for
    every measured variant that is an ONNX graph: what `optbench serve` loads."""
    from optbench.artifact import save_artifact
    from optbench.data import ImageTransform

    d = recipe.data
    transform = ImageTransform(size=d.image_size, channels=d.channels)
    paths = {}
    for name in measured:
        v = variants[name]
        if v.onnx_path is None:
            continue
        paths[name] = save_artifact(
            out / name, name=name, onnx_path=v.onnx_path,
            input_shape=(d.channels, d.image_size, d.image_size), transform=transform,
            class_names=class_names, lineage=v.lineage, metrics=variant_figures(bench, name),
            version=recipe.fingerprint(), int8=v.info.get("int8_mode"))
    return paths


def variant_figures(bench: dict, name: str) -> dict:
    """The report's figures for one variant: accuracy, latency per runtime and batch, size."""
    quality = {e: q for e, q in bench.get("quality", {}).items() if e.startswith(name + " / ")}
    rows = [r for r in bench["rows"] if r["variant"] == name]
    return {
        "top1_accuracy": max((q["top1_accuracy"] for q in quality.values()), default=None),
        "latency_median_s": {f"{r['runtime']}/batch{r['batch_size']}":
                             r["measurement"]["stats"]["median_s"] for r in rows},
        "size_bytes": bench.get("sizes", {}).get(name, {}).get("file_bytes"),
        "measured_on": bench.get("env", {}).get("cpu_model"),
    }


def run_search(recipe: Recipe, variants: dict, ctx: Context, out: Path) -> dict:
    """Budgeted search for each [search] input; writes search.json and search.md."""
    from optbench.search import SearchConfig, search

    results, summary = {}, {}
    for name in recipe.search.inputs:
        ctx.step = f"search-{name}"
        res = search(variants[name].model, ctx, SearchConfig(recipe.search.budget_points),
                     recipe.bench)
        results[name] = res
        summary[name] = {"baseline_accuracy": res.baseline_accuracy,
                         "budget_points": recipe.search.budget_points,
                         "best": {str(k): v for k, v in res.best.items()},
                         "candidates": res.candidates, "env": res.bench.env}
    atomic_write_json(out / "search.json", summary)
    from optbench.io import atomic_write_text
    from optbench.report.markdown import render_search

    atomic_write_text(out / "search.md", render_search(summary))
    return results


def measure_variants(variants: list[Variant], config: BenchConfig, eval_data):
    """All variants, each through its runtimes (those in config.runtimes when it lists any),
    timed interleaved in one run; the first entry is the baseline."""
    from optbench.measure import artifact_size

    entries, first_entry = [], {}
    for v in variants:
        runtimes = [r for r in v.runtimes if r in config.runtimes] or [v.runtimes[0]]
        entries += [Entry(v.name, rt, v.artifact_for(rt)) for rt in runtimes]
        first_entry[v.name] = entries[-len(runtimes)].label
    # each variant's outputs are compared with its nearest measured ancestor's
    agreement_with = {}
    for v in variants:
        parent = next((n for n in reversed(v.lineage[:-1]) if n in first_entry), v.name)
        for e in entries:
            if e.variant == v.name:
                agreement_with[e.label] = first_entry[parent]
    result = bench_entries(entries, config, eval_data=eval_data, label="pipeline",
                           agreement_with=agreement_with)
    result.sizes = {v.name: artifact_size(v.onnx_path if v.onnx_path else v.model)
                    for v in variants}
    return result


def compare_to_references(result: dict, references: tuple[str, ...]) -> list[dict]:
    """Each variant's best runtime against each reference's best, per batch size: speed-up,
    size ratio (reference bytes / variant bytes) and top-1 difference in points."""
    from optbench.diagnose import best_accuracies, fastest_rows, row_median

    best = fastest_rows(result["rows"])
    accuracy, sizes = best_accuracies(result.get("quality", {})).get, result.get("sizes", {})

    out = []
    for (variant, batch), row in best.items():
        for ref in references:
            ref_row = best.get((ref, batch))
            if ref_row is None or ref == variant:
                continue
            acc, ref_acc = accuracy(variant), accuracy(ref)
            out.append({
                "variant": variant, "reference": ref, "batch_size": batch,
                "runtime": row["runtime"], "reference_runtime": ref_row["runtime"],
                "speedup": row_median(ref_row) / row_median(row),
                "size_ratio": (sizes[ref]["file_bytes"] / sizes[variant]["file_bytes"]
                               if ref in sizes and variant in sizes else None),
                "accuracy_delta_points": (None if acc is None or ref_acc is None
                                          else (acc - ref_acc) * 100)})
    return out


def variant_summary(variants: dict[str, Variant], measured: list[str]) -> dict:
    return {"variants": {n: {"lineage": list(variants[n].lineage), "runtimes":
                             list(variants[n].runtimes), "info": _jsonable(variants[n].info)}
                         for n in measured}}


def load_data(config: DataConfig) -> dict:
    from optbench.data import ImageTransform, load_fashion_mnist, synthetic_dataset, take_subset

    if config.dataset == "synthetic":
        full = synthetic_dataset(n=2048, size=config.image_size, seed=config.seed)
        split = {"train": full.subset(range(0, 1536)), "val": full.subset(range(1536, 1792)),
                 "test": full.subset(range(1792, 2048))}
    else:
        tf = ImageTransform(size=config.image_size, channels=config.channels)
        kw = dict(root=config.data_dir or None, transform=tf, seed=config.seed)
        split = {"train": load_fashion_mnist("train", limit=config.train_limit or None, **kw),
                 "val": load_fashion_mnist("val", limit=config.val_limit or None, **kw),
                 "test": load_fashion_mnist("test", limit=config.test_limit or None, **kw)}
    split["calib"] = take_subset(split["train"], config.calib_limit or None, config.seed + 7)
    return split


class _State:
    """DIR/state.json: which steps finished, for which recipe (its fingerprint)."""

    def __init__(self, path: Path, fingerprint: str):
        self.path, self.fingerprint = path, fingerprint
        old = json.loads(path.read_text()) if path.is_file() else {}
        if old and old.get("fingerprint") != fingerprint:
            raise ConfigError(f"{path.parent} holds a run of a different recipe (fingerprint "
                              f"{old.get('fingerprint')} != {fingerprint}); use another --out "
                              "folder or delete it to start afresh")
        self.data = old or {"fingerprint": fingerprint, "finished": {}}

    def finish(self, name: str, variant: Variant) -> None:
        self.data["finished"][name] = {"lineage": list(variant.lineage)}
        atomic_write_json(self.path, self.data)


def _build(spec: ModelConfig, channels: int):
    from optbench.models import build_model

    return build_model(spec.arch, num_classes=spec.num_classes, in_channels=channels,
                       weights=spec.weights or None, small_input=spec.small_input)


def _parse(cls, raw: dict, where: str):
    try:
        return cls.from_dict(raw)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _step(raw: dict, index: int, source: str) -> Step:
    raw = dict(raw)
    where = f"{source} [[steps]] #{index + 1}"
    name = raw.pop("name", None)
    if not name:
        raise ConfigError(f"{where}: every step needs a name")
    meta = {k: raw.pop(k) for k in ("input", "measure") if k in raw}
    try:
        config = config_from_dict(raw)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{where} ({name!r}): {exc}") from None
    return Step(name=name, config=config, **meta)


def _bench(raw: dict, data: dict, source: str) -> BenchConfig:
    raw = dict(raw)
    size = data.get("image_size", DataConfig.image_size)
    raw.setdefault("input_shape", [data.get("channels", DataConfig.channels), size, size])
    return _parse(BenchConfig, raw, f"{source} [bench]")



def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
