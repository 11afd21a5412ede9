"""The results model: what a bench or pipeline run measured, as types.

A `BenchResult` holds rows keyed by (variant, runtime, batch size, input size), each with its
`Measurement` and speed-up; accuracy per entry (`Quality`); sizes; and the pipeline's named
`Sections` (variants and their facts, references, targets, diagnosis, robustness, other input
sizes, training). Everything that reads a report (renderers, plots, targets, tracking, the
diagnosis) reads these types, not string keys of a dict.

JSON stays the storage format (report.json, result.json). `to_dict` writes version 2;
`BenchResult.from_dict` also reads version 1 files (sections under "extra"), so every committed
report still loads.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from optbench.config import Config, check_choice, check_positive
from optbench.errors import ConfigError
from optbench.measure import Measurement, MemoryMeasurement, Ratio, SizeReport, TimerConfig
from optbench.stats import Interval

REPORT_VERSION = 2


@dataclasses.dataclass(frozen=True)
class BenchConfig(Config):
    runtimes: tuple[str, ...] = ("torch-eager", "torch-compile", "onnxruntime")
    batch_sizes: tuple[int, ...] = (1, 8)
    input_shape: tuple[int, ...] = (3, 224, 224)
    device: str = "cpu"
    threads: int = 0                 # 0 = leave torch's default; the value used is recorded
    min_time_s: float = 1.0
    max_time_s: float = 10.0
    target_rel_spread: float = 0.05
    eval_batch_size: int = 256     # the quality pass; torch-compile: a timed batch size (bench)
    extra_sizes: tuple[int, ...] = ()       # pipelines: also time every variant at SxS inputs
    extra_batch_sizes: tuple[int, ...] = (1,)
    processes: int = 1   # > 1: time in that many fresh worker processes, pooled (pyperf-like)
    # "process": each entry's memory in a fresh process of its own (exact attribution, first
    # call reported apart); "shared": in this process, after the entries loaded before it
    memory: str = "shared"

    def __post_init__(self):
        if not self.runtimes:
            raise ConfigError("BenchConfig.runtimes must name at least one runtime")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"BenchConfig.batch_sizes must be >= 1, got {self.batch_sizes}")
        if len(self.input_shape) < 1 or min(self.input_shape) < 1:
            raise ConfigError("BenchConfig.input_shape is one example's shape without the batch "
                              f"axis, e.g. (3, 224, 224); got {self.input_shape}")
        check_positive("BenchConfig", max_time_s=self.max_time_s,
                       eval_batch_size=self.eval_batch_size, processes=self.processes)
        check_choice("BenchConfig", "device", self.device.split(":")[0], ("cpu", "cuda"))
        check_choice("BenchConfig", "memory", self.memory, ("shared", "process"))

    def timer(self) -> TimerConfig:
        return TimerConfig(min_time_s=min(self.min_time_s, self.max_time_s),
                           max_time_s=self.max_time_s, target_rel_spread=self.target_rel_spread)


def entry_label(variant: str, runtime: str) -> str:
    """How an entry (a variant through a runtime) is named in tables and stored keys."""
    return f"{variant} / {runtime}"


@dataclasses.dataclass(frozen=True)
class RowKey:
    variant: str
    runtime: str
    batch_size: int
    size: int | None    # the input's last dimension (H = W for images); None if unknown


@dataclasses.dataclass
class Row:
    """One entry (a variant through a runtime) at one batch size."""

    variant: str
    runtime: str
    batch_size: int
    measurement: Measurement
    speedup: Ratio
    load_memory: MemoryMeasurement
    run_memory: MemoryMeasurement
    load_s: float
    compile_stats: dict | None = None   # torch-compile: Dynamo's counts at load, this batch
    # memory = "process": the first call at this shape (compilation, autotuning, allocator
    # warm-up), apart from the steady-state run_memory
    first_call_memory: MemoryMeasurement | None = None

    @property
    def entry(self) -> str:
        return entry_label(self.variant, self.runtime)

    @property
    def key(self) -> RowKey:
        shape = self.measurement.spec.input_shape
        return RowKey(self.variant, self.runtime, self.batch_size, shape[-1] if shape else None)

    @property
    def median_s(self) -> float:
        return self.measurement.median_s

    @property
    def memory_bytes(self) -> int:
        """What this variant adds to the process: loading it plus the peak of running it."""
        return self.load_memory.peak_delta_bytes + self.run_memory.peak_delta_bytes

    @property
    def warnings(self) -> list[str]:
        """The measurement's and the speed-up's warnings (few samples, spread, wide CI)."""
        return [*self.measurement.warnings, *self.speedup.warnings]

    def to_dict(self) -> dict:
        return {"entry": self.entry, "variant": self.variant, "runtime": self.runtime,
                "batch_size": self.batch_size,
                "measurement": self.measurement.to_dict(), "speedup": self.speedup.to_dict(),
                "load_memory": self.load_memory.to_dict(), "run_memory": self.run_memory.to_dict(),
                "memory_bytes": self.memory_bytes, "load_s": self.load_s,
                **({"compile": self.compile_stats} if self.compile_stats else {}),
                **({"first_call_memory": self.first_call_memory.to_dict()}
                   if self.first_call_memory else {})}

    @classmethod
    def from_dict(cls, data: dict, variant: str = "") -> Row:
        """`variant`: for the earliest stored rows, which did not name theirs (a one-model
        bench: the result's label)."""
        return cls(variant=data.get("variant", variant), runtime=data["runtime"],
                   batch_size=data["batch_size"],
                   measurement=_stored_measurement(data["measurement"]),
                   speedup=_ratio(data["speedup"]), load_memory=_memory(data["load_memory"]),
                   run_memory=_memory(data["run_memory"]), load_s=data["load_s"],
                   compile_stats=data.get("compile"),
                   first_call_memory=(_memory(data["first_call_memory"])
                                      if data.get("first_call_memory") else None))


def _stored_measurement(data: dict) -> Measurement:
    """A Measurement with the statistics it was reported with (not recomputed), so an old
    report renders the figures it was published with."""
    m = Measurement.from_dict(data)
    for name, value in data.get("stats", {}).items():
        if name.endswith("_s") and name != "throughput_items_s":
            m.__dict__[name] = value   # fills the cached_property
    return m


def _ratio(data: dict) -> Ratio:
    return Ratio(variant=data["variant"], baseline=data["baseline"],
                 speedup=Interval(**data["speedup"]), warnings=tuple(data.get("warnings", ())))


def _memory(data: dict) -> MemoryMeasurement:
    fields = {f.name for f in dataclasses.fields(MemoryMeasurement)}
    return MemoryMeasurement(**{k: v for k, v in data.items() if k in fields})


def _size(data: dict) -> SizeReport:
    fields = {f.name for f in dataclasses.fields(SizeReport)}
    return SizeReport(**{k: v for k, v in data.items() if k in fields})


@dataclasses.dataclass
class Quality:
    """Accuracy of one entry on the eval data, and its agreement with a reference entry."""

    variant: str
    runtime: str
    top1_accuracy: float
    n: int
    per_class_accuracy: list[float] | None = None
    agreement_with: str = ""            # entry label
    agreement: dict | None = None       # measure.quality.Agreement as a dict
    paired: dict | None = None          # measure.quality.paired_comparison against it

    @property
    def entry(self) -> str:
        return entry_label(self.variant, self.runtime)

    def to_dict(self) -> dict:
        out = {"top1_accuracy": self.top1_accuracy, "n": self.n}
        for name in ("per_class_accuracy", "agreement", "paired"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.agreement_with:
            out["agreement_with"] = self.agreement_with
        return out

    @classmethod
    def from_dict(cls, variant: str, runtime: str, data: dict) -> Quality:
        return cls(variant=variant, runtime=runtime, top1_accuracy=data["top1_accuracy"],
                   n=data["n"], per_class_accuracy=data.get("per_class_accuracy"),
                   agreement_with=data.get("agreement_with", ""),
                   agreement=data.get("agreement"), paired=data.get("paired"))


@dataclasses.dataclass(frozen=True)
class VariantFacts:
    """What a method recorded about the variant it made: the facts the diagnosis, the report
    and the artifact read. Method-specific figures (training history, settings, backend) stay
    in `other`, as written."""

    method: str = ""
    int8: bool = False
    int8_mode: dict | None = None       # optbench.isa.Int8Mode as a dict: format and why
    int8_guard: dict | None = None      # the accuracy guard's figures
    dynamic: bool = False               # activations quantized at run time
    activation_type: str | None = None  # ORT static: "uint8" or "int8"
    dtype: str | None = None            # reduced precision: "bfloat16" / "float16"
    ops: dict = dataclasses.field(default_factory=dict)       # op counts of the graph
    channels: dict = dataclasses.field(default_factory=dict)  # conv name -> out channels
    unstructured_sparsity: bool = False   # zeros in dense weights (no speed-up)
    warnings: tuple[str, ...] = ()
    note: str | None = None
    other: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_info(cls, info: dict | None) -> VariantFacts:
        info = dict(info or {})
        names = [f.name for f in dataclasses.fields(cls) if f.name != "other"]
        known = {k: info.pop(k) for k in names if k in info}
        if "warnings" in known:
            known["warnings"] = tuple(known["warnings"])
        return cls(**known, other=info)

    def to_info(self) -> dict:
        """The info dict it was read from (the stored form)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if f.name != "other" and value != default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return {**out, **self.other}


@dataclasses.dataclass
class VariantRecord:
    """A measured variant: where it came from, what it runs on, what its method recorded."""

    lineage: tuple[str, ...]
    runtimes: tuple[str, ...]
    facts: VariantFacts

    def to_dict(self) -> dict:
        return {"lineage": list(self.lineage), "runtimes": list(self.runtimes),
                "info": self.facts.to_info()}

    @classmethod
    def from_dict(cls, data: dict) -> VariantRecord:
        return cls(lineage=tuple(data["lineage"]), runtimes=tuple(data.get("runtimes", ())),
                   facts=VariantFacts.from_info(data.get("info")))


@dataclasses.dataclass
class AtSize:
    """The same variants timed at another input size (pipeline.at_size)."""

    size: int
    rows: list[Row]
    sizes: dict[str, SizeReport] = dataclasses.field(default_factory=dict)
    references: list[dict] = dataclasses.field(default_factory=list)
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)
    config: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"size": self.size, "rows": [r.to_dict() for r in self.rows],
                "sizes": {k: v.to_dict() for k, v in self.sizes.items()},
                "skipped": self.skipped, "references": self.references, "config": self.config}

    @classmethod
    def from_dict(cls, data: dict, size: int | None = None) -> AtSize:
        return cls(size=int(data.get("size", size)),
                   rows=[Row.from_dict(r) for r in data.get("rows", [])],
                   sizes={k: _size(v) for k, v in data.get("sizes", {}).items()},
                   references=list(data.get("references", [])),
                   skipped=dict(data.get("skipped", {})), config=dict(data.get("config", {})))


@dataclasses.dataclass
class Training:
    """How the measured model was trained (the demo): settings, per-epoch history, data."""

    history: list[dict] = dataclasses.field(default_factory=list)
    train_examples: int | None = None
    test_examples: int | None = None
    eval_accuracy_eager: float | None = None
    settings: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Sections:
    """What a pipeline adds to the measurements, each section named."""

    variants: dict[str, VariantRecord] = dataclasses.field(default_factory=dict)
    references: list[dict] = dataclasses.field(default_factory=list)   # diagnose
    targets: list[dict] = dataclasses.field(default_factory=list)      # pipeline.targets
    diagnosis: list[dict] | None = None     # None: not diagnosed; []: nothing to say
    robustness: dict = dataclasses.field(default_factory=dict)         # pipeline.responsible
    at_sizes: dict[int, AtSize] = dataclasses.field(default_factory=dict)
    training: Training | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)      # about the model file
    recipe_fingerprint: str | None = None
    class_names: list[str] | None = None
    # the test split accuracy was measured on: examples, and whole = every test image the data
    # has (no test_limit subset, not synthetic): then more test images cannot narrow a CI
    test_split: dict = dataclasses.field(default_factory=dict)
    # stage ("measurement", "robustness", "at224") -> where it ran: git_commit, git_dirty,
    # date, command, cpu_model (pipeline.run.measure_stages; a resumed report mixes sittings)
    stages: dict[str, dict] = dataclasses.field(default_factory=dict)
    # where `optbench report` checked the targets again with newer code (env.provenance), when
    # its verdicts or breakdowns differ from those the measuring run stored; {}: as measured
    targets_checked: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {
            "variants": {k: v.to_dict() for k, v in self.variants.items()},
            "references": self.references, "targets": self.targets,
            "diagnosis": self.diagnosis, "robustness": self.robustness,
            "at_sizes": {str(k): v.to_dict() for k, v in self.at_sizes.items()},
            "training": dataclasses.asdict(self.training) if self.training else None,
            "warnings": self.warnings, "recipe_fingerprint": self.recipe_fingerprint,
            "class_names": self.class_names, "test_split": self.test_split,
            "stages": self.stages, "targets_checked": self.targets_checked}
        # empty sections are left out, but an empty diagnosis says "every variant was faster"
        return {k: v for k, v in out.items()
                if v is not None and (k == "diagnosis" or v not in ({}, []))}

    @classmethod
    def from_dict(cls, data: dict) -> Sections:
        training = data.get("training")
        return cls(
            variants={k: VariantRecord.from_dict(v) for k, v in data.get("variants", {}).items()},
            references=list(data.get("references", [])), targets=list(data.get("targets", [])),
            diagnosis=data.get("diagnosis"), robustness=dict(data.get("robustness", {})),
            at_sizes={int(k): AtSize.from_dict(v, int(k))
                      for k, v in data.get("at_sizes", {}).items()},
            training=Training(**training) if training else None,
            warnings=list(data.get("warnings", [])),
            recipe_fingerprint=data.get("recipe_fingerprint"),
            class_names=data.get("class_names"), test_split=dict(data.get("test_split", {})),
            stages=dict(data.get("stages", {})),
            targets_checked=dict(data.get("targets_checked", {})))

    @classmethod
    def from_v1_extra(cls, extra: dict) -> Sections:
        """Version 1 kept the sections in one dict, "extra", with the demo's training keys
        at its top level."""
        data = {k: v for k, v in extra.items() if k in {f.name for f in dataclasses.fields(cls)}}
        if "train_history" in extra:
            data["training"] = {"history": extra["train_history"],
                                "train_examples": extra.get("train_examples"),
                                "test_examples": extra.get("test_examples"),
                                "eval_accuracy_eager": extra.get("eval_accuracy_eager"),
                                "settings": extra.get("demo", {})}
        return cls.from_dict(data)


@dataclasses.dataclass
class BenchResult:
    """Everything one bench or pipeline run measured."""

    label: str
    config: BenchConfig
    env: dict
    sizes: dict[str, SizeReport]
    rows: list[Row]
    quality: dict[str, Quality] = dataclasses.field(default_factory=dict)  # entry label ->
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)
    sections: Sections = dataclasses.field(default_factory=Sections)
    # entry label -> per-example top-1 class on the eval data, plus "labels": the truth; kept
    # out of to_dict (written to predictions.npz beside the report by save_bench)
    predictions: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"version": REPORT_VERSION, "label": self.label, "config": self.config.to_dict(),
                "env": self.env, "sizes": {k: v.to_dict() for k, v in self.sizes.items()},
                "rows": [r.to_dict() for r in self.rows],
                "quality": {k: q.to_dict() for k, q in self.quality.items()},
                "skipped": self.skipped, "sections": self.sections.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> BenchResult:
        missing = [k for k in ("label", "config", "env", "rows") if k not in data]
        if missing:
            raise ConfigError(f"not an optbench report: no {', '.join(missing)}; pass the "
                              "report.json / result.json that optbench run, bench or demo wrote")
        version = data.get("version", 1)
        if version > REPORT_VERSION:
            raise ConfigError(f"this report has format version {version}; this optbench reads "
                              f"up to {REPORT_VERSION}: upgrade optbench to read it")
        rows = [Row.from_dict(r, data["label"]) for r in data["rows"]]
        runtimes = {r.get("entry", r["runtime"]): (row.variant, row.runtime)
                    for r, row in zip(data["rows"], rows, strict=True)}
        quality = {}   # keyed by entry label (the earliest files keyed it by runtime)
        for label, q in data.get("quality", {}).items():
            variant, runtime = runtimes.get(label) or label.split(" / ", 1)
            q = Quality.from_dict(variant, runtime, q)
            if q.agreement_with in runtimes:
                q.agreement_with = entry_label(*runtimes[q.agreement_with])
            quality[q.entry] = q
        sections = (Sections.from_dict(data.get("sections", {})) if version >= 2
                    else Sections.from_v1_extra(data.get("extra", {})))
        return cls(label=data["label"], config=_config(data["config"]), env=data["env"],
                   sizes={k: _size(v) for k, v in data.get("sizes", {}).items()}, rows=rows,
                   quality=quality, skipped=dict(data.get("skipped", {})), sections=sections)

    @classmethod
    def coerce(cls, result) -> BenchResult:
        """A BenchResult from itself or its dict (any stored version)."""
        return result if isinstance(result, cls) else cls.from_dict(result)

    # -- questions every reader asks ----------------------------------------------------------
    @property
    def batch_sizes(self) -> list[int]:
        return sorted({r.batch_size for r in self.rows})

    def accuracy(self, variant: str) -> float | None:
        """A variant's top-1 on the runtime it runs fastest on (`deployed_quality`)."""
        q = self.deployed_quality().get(variant)
        return q.top1_accuracy if q else None

    def deployed_quality(self) -> dict[str, Quality]:
        """variant -> the evaluated entry of the runtime it runs fastest on, at its smallest
        timed batch size and the training input size: the runtime a user would deploy it on,
        so a variant's accuracy and its speed come from one runtime (one int8 file can score
        differently on two runtimes). A seed measured for accuracy only (NAME@SEED, not
        timed) is read on the runtime its step's first timed seed deploys on. A variant whose
        runtime was not evaluated, or that was not timed, gets its first evaluated entry."""
        first = self.first_quality()
        fastest = fastest_rows(self.rows)
        smallest: dict[str, int] = {}
        for variant, batch in fastest:
            smallest[variant] = min(batch, smallest.get(variant, batch))
        runtime = {v: fastest[(v, b)].runtime for v, b in smallest.items()}
        step_runtime: dict[str, str] = {}
        for variant, rt in runtime.items():
            step_runtime.setdefault(split_seed(variant)[0], rt)
        out = {}
        for variant, q in first.items():
            base, seed = split_seed(variant)
            rt = runtime.get(variant) or (step_runtime.get(base) if seed is not None else None)
            out[variant] = self.quality.get(entry_label(variant, rt), q) if rt else q
        return out

    def accuracy_only(self) -> list[str]:
        """The variants evaluated but not timed (seeds left out of their step's timed_seeds)."""
        timed = {r.variant for r in self.rows}
        return [v for v in self.first_quality() if v not in timed]

    def first_quality(self) -> dict[str, Quality]:
        """variant -> its first evaluated entry (the one the report reads per-class figures
        from)."""
        out: dict[str, Quality] = {}
        for q in self.quality.values():
            out.setdefault(q.variant, q)
        return out

    def size_bytes(self, variant: str) -> int | None:
        return self.sizes[variant].file_bytes if variant in self.sizes else None


SEED_SEPARATOR = "@"   # a step trained with several seeds runs once per seed, as NAME@SEED


def split_seed(name: str) -> tuple[str, int | None]:
    """`NAME@SEED` (one seed's replicate of a seeded step: pipeline.recipe.expand_seeds) ->
    (NAME, SEED); any other variant name -> (name, None)."""
    base, sep, seed = name.rpartition(SEED_SEPARATOR)
    if sep and base and seed.lstrip("-").isdigit():
        return base, int(seed)
    return name, None


def lineage_seed(lineage) -> int | None:
    """The seed of a variant: that of the nearest seeded step in its lineage (oldest first,
    the variant last), walking back from the variant; None where no step in it is seeded."""
    for name in reversed(tuple(lineage)):
        seed = split_seed(name)[1]
        if seed is not None:
            return seed
    return None


def seed_groups(names) -> dict[str, list[tuple[int, str]]]:
    """The seeded steps among `names` (repeats ignored): NAME -> [(SEED, NAME@SEED), ...] by
    seed, in the order the steps first appear."""
    groups: dict[str, list[tuple[int, str]]] = {}
    for name in dict.fromkeys(names):
        base, seed = split_seed(name)
        if seed is not None:
            groups.setdefault(base, []).append((seed, name))
    return {base: sorted(members) for base, members in groups.items()}


def fastest_rows(rows: list[Row]) -> dict[tuple[str, int], Row]:
    """(variant, batch size) -> the row of its fastest runtime."""
    best: dict[tuple[str, int], Row] = {}
    for row in rows:
        key = (row.variant, row.batch_size)
        if key not in best or row.median_s < best[key].median_s:
            best[key] = row
    return best


def _config(data: dict) -> BenchConfig:
    """A stored bench config; fields this version no longer has are dropped."""
    names = {f.name for f in dataclasses.fields(BenchConfig)}
    return BenchConfig.from_dict({k: v for k, v in data.items() if k in names})


def load_report(path: str | os.PathLike) -> BenchResult:
    """A report.json / result.json of any stored version."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        from optbench.errors import MissingInputError

        raise MissingInputError(f"{p} not found; run `optbench run`, `optbench bench` or "
                                "`optbench demo` with --out pointing at its folder first"
                                ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p} is not valid JSON ({exc}); regenerate it") from None
    return BenchResult.from_dict(data)
