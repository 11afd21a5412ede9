"""Recipes: the TOML schema of a pipeline (data, models, steps, [bench], [search],
references, [robustness], [[targets]]), parsed into frozen configs and validated as a whole
before any work starts; `fingerprint()` names a recipe's training-relevant content (a results
folder refuses a run of another recipe).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from optbench.bench import BenchConfig
from optbench.config import Config, check_choice, read_toml
from optbench.errors import ConfigError
from optbench.pipeline.responsible import RobustnessSpec
from optbench.pipeline.targets import TargetSpec
from optbench.results import SEED_SEPARATOR
from optbench.transforms import config_from_dict, config_to_dict
from optbench.transforms.distill import teacher_runtime


@dataclasses.dataclass(frozen=True)
class DataConfig(Config):
    dataset: str = "fashion-mnist"      # fashion-mnist | npz | image-folder | python | synthetic
    image_size: int = 0                 # 0 = the data's own (fashion-mnist, synthetic: 32)
    channels: int = 0                   # 0 = the data's own: 3 for colour, 1 for grey
    train_limit: int = 0                # 0 = all
    val_limit: int = 1000
    test_limit: int = 0
    calib_limit: int = 512
    data_dir: str = ""   # fashion-mnist: its folder; npz: the .npz file; image-folder: its root
    entry: str = ""      # python: package.module:function returning the Dataset(s)
    skip_corrupt: bool = False          # image-folder: skip unreadable files (listed) or fail
    mean: tuple[float, ...] = ()        # normalization; () = computed from the training split
    std: tuple[float, ...] = ()         # (one value, or one per colour channel)
    seed: int = 0

    def __post_init__(self):
        check_choice("DataConfig", "dataset", self.dataset,
                     ("fashion-mnist", "npz", "image-folder", "python", "synthetic"))
        if self.dataset == "npz" and not self.data_dir:
            raise ConfigError("[data] dataset = \"npz\" needs data_dir = \"path/to/file.npz\" "
                              "(arrays x and y, or x_train, y_train, x_test, y_test)")
        if self.dataset == "image-folder" and not self.data_dir:
            raise ConfigError("[data] dataset = \"image-folder\" needs data_dir = \"folder\" "
                              "(one sub-folder of images per class, or train/ and test/ "
                              "holding those)")
        if self.dataset == "python" and ":" not in self.entry:
            raise ConfigError("[data] dataset = \"python\" needs entry = "
                              "\"package.module:function\" (a function returning a torch "
                              "Dataset of (image, label), or a (train, val, test) triple)")
        if self.entry and self.dataset != "python":
            raise ConfigError(f"[data] entry is for dataset = \"python\"; dataset is "
                              f"{self.dataset!r}")
        if self.skip_corrupt and self.dataset != "image-folder":
            raise ConfigError("[data] skip_corrupt applies to dataset = \"image-folder\"")
        check_choice("DataConfig", "channels", self.channels, (0, 1, 3))
        if len(self.mean) != len(self.std) or len(self.mean) not in (0, 1, 3):
            raise ConfigError(f"[data] mean and std are given together, one value each or one "
                              f"per colour channel; got mean {list(self.mean)}, std "
                              f"{list(self.std)}")
        if any(v <= 0 for v in self.std):
            raise ConfigError(f"[data] std must be > 0, got {list(self.std)}")
        if self.image_size < 0:
            raise ConfigError(f"[data] image_size must be > 0 (or 0 for the data's own size), "
                              f"got {self.image_size}")

    @property
    def default_size(self) -> int:
        """image_size, or what the built-in datasets use when it is left out."""
        return self.image_size or (32 if self.dataset in ("fashion-mnist", "synthetic") else 0)


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    # a zoo name, torchvision:<name>, timm:<name>, python:<package.module>:<function>, or
    # onnx:<path.onnx> (a starting point for the methods that work on ONNX)
    arch: str = "resnet18"
    num_classes: int = 10
    small_input: bool = False           # = stem "small"
    stem: str = ""                      # imagenet | small | small-pool (optbench.models)
    weights: str = ""                   # torchvision weights name, e.g. DEFAULT ("" = none)
    checkpoint: str = ""                # a state dict / optbench checkpoint (weights_only)

    def __post_init__(self):
        from optbench.models import ZOO, resolve_stem

        if ":" not in self.arch:
            check_choice("ModelConfig", "arch", self.arch, ZOO)
        resolve_stem(self.stem, self.small_input)
        if self.arch.startswith("onnx:") and (self.checkpoint or self.weights or self.stem
                                              or self.small_input):
            raise ConfigError("an onnx: model is used as it is; checkpoint, weights and stem "
                              "apply to torch models")


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
    # measured for accuracy only, not timed: a seed left out of its step's timed_seeds (the
    # seeds of one step share an architecture, so one seed's latency stands for all). How a
    # step is timed is a measurement setting, like [bench]: not part of to_dict, so not of
    # the fingerprint that finished training is kept under
    timed: bool = True

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
    bench_shape_from_data: bool = True  # [bench] input_shape left out: it follows the data

    @property
    def compared_with(self) -> tuple[str, ...]:
        """What the report compares every variant with: `references`, then each target's
        reference not among them (so the answer shows the trade-off of every target's pair)."""
        return tuple(dict.fromkeys([*self.references,
                                    *(t.reference for t in self.targets if t.reference)]))

    @classmethod
    def from_toml(cls, path: str | os.PathLike, quick: bool = False) -> Recipe:
        """Read a recipe; quick=True applies its [quick] overrides (smaller data, fewer steps)."""
        path = Path(path)
        data = read_toml(path, "recipe")
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
        raws, seeded = expand_seeds(data.get("steps", []), next(iter(models)), source)
        steps = tuple(_step(raw, i, source) for i, raw in enumerate(raws))
        recipe = cls(data=_parse(DataConfig, data.get("data", {}), f"{source} [data]"),
                     models=models, steps=steps,
                     bench=_bench(data.get("bench", {}), data.get("data", {}), source),
                     measure_models=tuple(data.get("measure_models", ())),
                     search=(_parse(SearchSpec, _seeded_search(data["search"], seeded),
                                    f"{source} [search]") if "search" in data else None),
                     references=tuple(n for ref in data.get("references", ())
                                      for n in _per_seed(ref, seeded)),
                     robustness=(_parse(RobustnessSpec, data["robustness"],
                                        f"{source} [robustness]")
                                 if "robustness" in data else None),
                     targets=tuple(_parse(TargetSpec, raw, f"{source} [[targets]] #{i + 1}")
                                   for i, raw in enumerate(_seeded_targets(
                                       data.get("targets", []), seeded,
                                       {s.name for s in steps if not s.timed}))),
                     bench_shape_from_data="input_shape" not in data.get("bench", {}))
        recipe.validate(source)
        return recipe

    def validate(self, source: str = "recipe") -> None:
        from optbench.transforms.base import onnx_methods

        known = set(self.models)
        # ONNX starting points, and everything made from them, are files, not torch modules
        files = {n for n, m in self.models.items() if m.arch.startswith("onnx:")}
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
            method = type(step.config).method
            if source_name in files and not getattr(step.config, "takes_onnx", False):
                raise ConfigError(f"{source}: step {step.name!r} ({method}) needs a torch model, "
                                  f"but its input {source_name!r} is an ONNX file; on ONNX "
                                  f"use {', '.join(onnx_methods())}, or start from the torch "
                                  "model (a zoo name, torchvision:, timm: or python:)")
            if teacher in files and teacher_runtime(step.config) != "onnxruntime":
                raise ConfigError(f"{source}: step {step.name!r} names teacher {teacher!r}, an "
                                  "ONNX file; run it with teacher_runtime = \"onnxruntime\" "
                                  "(kd.teacher_runtime on pruning and QAT), or name a torch "
                                  "model as the teacher")
            if source_name in files:
                files.add(step.name)
            known.add(step.name)
            previous = step.name
        for name in self.measure_models:
            if name not in self.models:
                raise ConfigError(f"{source}: measure_models names {name!r}, not a model")
        measured = {*self.measure_models, *(s.name for s in self.steps if s.measure)}
        untimed = {s.name for s in self.steps if s.measure and not s.timed}
        if measured and measured <= untimed:
            raise ConfigError(f"{source}: every measured variant is left untimed (timed_seeds "
                              "or timed = false); time at least one, the speed-ups' baseline")
        for i, target in enumerate(self.targets):
            slow = [n for n in (target.variant, target.reference) if n in untimed]
            if target.metric == "speedup" and slow:
                raise ConfigError(f"{source}: [[targets]] #{i + 1} is a speed-up of {slow[0]!r}, "
                                  "which is measured for accuracy only (not in its step's "
                                  "timed_seeds); name a timed seed or add it to timed_seeds")
        for name in self.references:
            if name not in measured:
                raise ConfigError(f"{source}: references names {name!r}, which is not a measured "
                                  f"variant: {sorted(measured)}")
        for i, target in enumerate(self.targets):
            for name in filter(None, (target.variant, target.reference)):
                if target.seeds and f"{name}{SEED_SEPARATOR}{target.seeds[0]}" in measured:
                    continue   # checked over the seeds: NAME@SEED
                if name not in measured:
                    raise ConfigError(f"{source}: [[targets]] #{i + 1} names {name!r}, which is "
                                      f"not a measured variant: {sorted(measured)}")
        for name in self.search.inputs if self.search else ():
            if name not in known:
                raise ConfigError(f"{source}: [search] inputs names {name!r}, which is not a "
                                  f"model or step: {sorted(known)}")

    def with_data(self, transform) -> Recipe:
        """This recipe with the loaded data's size and channels (an ImageTransform) where it left
        them out, and [bench] input_shape following them unless it was given."""
        data = dataclasses.replace(self.data, image_size=self.data.image_size or transform.size,
                                   channels=self.data.channels or transform.channels)
        bench = self.bench
        if self.bench_shape_from_data:
            bench = dataclasses.replace(bench, input_shape=(data.channels, data.image_size,
                                                            data.image_size))
        return dataclasses.replace(self, data=data, bench=bench)

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
    every training config inside the steps (train = {...}, finetune = {...}); [quick] seeds
    replaces every step's seeds list (fewer replicates for a smoke run)."""
    sections = ("data", "bench", "robustness")
    unknown = sorted(set(quick) - {*sections, "train", "seeds"})
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in [quick]; allowed: "
                          f"{', '.join(sections)}, train, seeds")
    out = {**data}
    for section in sections:
        if section in quick and (section in data or section != "robustness"):
            out[section] = {**data.get(section, {}), **quick[section]}
    if "train" in quick:
        out["steps"] = [{k: ({**v, **quick["train"]} if k in ("train", "finetune") and
                             isinstance(v, dict) else v) for k, v in step.items()}
                        for step in data.get("steps", [])]
    if "seeds" in quick:
        out["steps"] = [{**step, "seeds": quick["seeds"]} if "seeds" in step else step
                        for step in out.get("steps", data.get("steps", []))]
    return out


def expand_seeds(raws: list[dict], first_model: str, source: str
                 ) -> tuple[list[dict], dict[str, tuple[int, ...]]]:
    """Steps with `seeds = [0, 1, 2]` become one step per seed, `NAME@SEED`, each training
    with that seed (its own data order and augmentation draws, its own initial weights when it
    starts from a recipe model: pipeline.run.run_step; its own checkpoint, so each resumes on
    its own). A later step whose input
    or teacher names a seeded step runs once per seed on the seed-matched model (`NAME@SEED`
    too, training with that seed if it trains); naming `NAME@1` takes that one seed. Returns
    the expanded steps and, per seeded base name, its seeds."""
    out, seeded = [], {}
    previous = first_model
    for i, raw in enumerate(raws):
        raw = dict(raw)
        where = f"{source} [[steps]] #{i + 1} ({raw.get('name', '?')!r})"
        seeds = raw.pop("seeds", None)
        timed_seeds = raw.pop("timed_seeds", None)
        name = raw.get("name", "")
        input_name = raw.get("input") or previous
        sources = [input_name, *([raw["teacher"]] if raw.get("teacher") else [])]
        inherited = {seeded[src] for src in sources if src in seeded}
        if seeds is not None:
            if (not isinstance(seeds, list) or not seeds
                    or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)
                    or len(set(seeds)) != len(seeds)):
                raise ConfigError(f"{where}: seeds must be a list of distinct integers, e.g. "
                                  f"seeds = [0, 1, 2]; got {seeds!r}")
            if "train" not in _config_fields(raw):
                raise ConfigError(f"{where}: seeds need a training step (method train, distill "
                                  f"or qat-pt2e); method {raw.get('method')!r} trains nothing")
            mine = tuple(seeds)
        elif inherited:
            mine = next(iter(inherited))
        else:
            if timed_seeds is not None:
                raise ConfigError(f"{where}: timed_seeds chooses which seeds of a seeded step "
                                  "are timed; this step has no seeds (add seeds = [...])")
            out.append(raw)
            previous = name
            continue
        if timed_seeds is not None and "timed" in raw:
            raise ConfigError(f"{where}: give timed_seeds (which seeds are timed) or timed "
                              "(every seed or none), not both")
        timed = _timed_seeds(timed_seeds, mine, where)
        if len(inherited) > 1 or (inherited and not set(mine) <= set(next(iter(inherited)))):
            raise ConfigError(f"{where}: its inputs were trained with seeds "
                              f"{sorted(map(list, inherited))}, which do not match {list(mine)}; "
                              "seed-matched steps need the same seeds (or name one, NAME@SEED)")
        for seed in mine:
            copy = {**raw, "name": f"{name}{SEED_SEPARATOR}{seed}", "input": input_name}
            for key in ("input", "teacher"):
                if copy.get(key) in seeded:
                    copy[key] = f"{copy[key]}{SEED_SEPARATOR}{seed}"
            if "train" in _config_fields(raw):   # each seed's chain is its own replicate
                copy["train"] = {**raw.get("train", {}), "seed": seed}
            if seed not in timed:
                copy["timed"] = False
            out.append(copy)
        seeded[name] = mine
        previous = name
    return out, seeded


def _timed_seeds(timed_seeds, seeds: tuple[int, ...], where: str) -> tuple[int, ...]:
    """The seeds of a seeded step that are timed (all unless timed_seeds names some); the
    others are measured for accuracy only."""
    if timed_seeds is None:
        return seeds
    if (not isinstance(timed_seeds, list) or not timed_seeds
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in timed_seeds)):
        raise ConfigError(f"{where}: timed_seeds must be a non-empty list of the step's seeds, "
                          f"e.g. timed_seeds = [{seeds[0]}]; got {timed_seeds!r}")
    unknown = [x for x in timed_seeds if x not in seeds]
    if unknown:
        raise ConfigError(f"{where}: timed_seeds {unknown} are not among the step's seeds "
                          f"{list(seeds)} (with --quick, [quick] seeds replaces them); name "
                          "seeds the step trains")
    return tuple(timed_seeds)


def _config_fields(raw: dict) -> set[str]:
    from optbench.transforms.base import _METHODS

    cls = _METHODS.get(raw.get("method"))
    return {f.name for f in dataclasses.fields(cls)} if cls else set()


def _per_seed(name: str, seeded: dict) -> list[str]:
    return ([f"{name}{SEED_SEPARATOR}{s}" for s in seeded[name]] if name in seeded else [name])


def _seeded_targets(raws: list[dict], seeded: dict, untimed: set[str]) -> list[dict]:
    """A target naming seeded steps becomes one target per seed: seed-matched when both sides
    are seeded, each seed against the single model otherwise (a speed-up target: per timed
    seed, those of timed_seeds). An accuracy target over two or more seeds is also checked
    once over all of them (the mean, with a paired t-test)."""
    out = []
    for raw in raws:
        variant, reference = raw.get("variant", ""), raw.get("reference", "")
        seeds = seeded.get(variant) or seeded.get(reference)
        if not seeds:
            out.append(raw)
            continue
        per_seed = [{**raw, **{key: f"{raw[key]}{SEED_SEPARATOR}{seed}"
                               for key in ("variant", "reference") if raw.get(key) in seeded}}
                    for seed in seeds]
        if raw.get("metric") == "speedup":   # the seeds timed_seeds left out have no latency
            timed = [t for t in per_seed if not {t.get("variant"), t.get("reference")} & untimed]
            per_seed = timed or per_seed   # none timed: validate says so
        out += per_seed
        if raw.get("metric") == "accuracy_delta_points" and len(seeds) > 1:
            out.append({**raw, "seeds": list(seeds)})
    return out


def _seeded_search(raw: dict, seeded: dict) -> dict:
    inputs = raw.get("inputs", ())
    return {**raw, "inputs": [n for name in inputs for n in _per_seed(name, seeded)]}


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
    meta = {k: raw.pop(k) for k in ("input", "measure", "timed") if k in raw}
    if not isinstance(meta.get("timed", True), bool):
        raise ConfigError(f"{where} ({name!r}): timed must be true or false (false: measured "
                          f"for accuracy only, not timed); got {meta['timed']!r}")
    try:
        config = config_from_dict(raw)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{where} ({name!r}): {exc}") from None
    return Step(name=name, config=config, **meta)


def _bench(raw: dict, data: dict, source: str) -> BenchConfig:
    raw = dict(raw)
    # a placeholder where the data decide (0): Recipe.with_data sets it once they are loaded
    size = data.get("image_size") or 32
    raw.setdefault("input_shape", [data.get("channels") or 1, size, size])
    return _parse(BenchConfig, raw, f"{source} [bench]")
