"""Benchmark one model (or .onnx file) across runtimes and batch sizes: the harness's front door.

For each runtime it loads a session (memory of the load tracked), then per batch size it times
all runtimes interleaved (ratios against the first runtime, with bootstrap CIs), tracks the peak
memory of running, and optionally measures accuracy and output agreement on a dataset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import pickle
import tempfile
import time
import weakref
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch

from optbench import env as _env
from optbench.errors import ConfigError, RuntimeUnavailableError
from optbench.measure import (
    SizeReport,
    TaskSpec,
    agreement,
    artifact_size,
    collect_logits,
    compare,
    frozen_heap,
    model_size,
    onnx_size,
    padded,
    per_class_accuracy,
    top1_accuracy,
    track_peak_memory,
)
from optbench.results import BenchConfig, BenchResult, Quality, Row, entry_label
from optbench.runtime import get_runtime

__all__ = ["BenchConfig", "BenchResult", "Entry", "Row", "bench", "bench_entries",
           "measure_variants"]

MEMORY_RUNS = 3  # forward passes inside the memory-tracked region


@dataclasses.dataclass(frozen=True)
class Entry:
    """Something to time: a variant's artifact (module or .onnx path) through one runtime."""

    variant: str
    runtime: str
    artifact: object

    @property
    def label(self) -> str:
        return entry_label(self.variant, self.runtime)

    def __reduce__(self):
        """How an entry reaches a fresh worker process (`processes` > 1, memory = "process").
        An FX GraphModule from torch.export (a PT2E int8 model) goes as a torch.export program:
        a pickled GraphModule is re-traced from its code on the other side, which runs the
        dequantize of each int8 weight once and keeps its fp32 result as a constant, so
        Inductor found no int8 pattern and the int8 model ran at fp32 speed (ResNet50 at
        224x224, batch 1, AMX Xeon: 33 ms sent by pickle, 6.7 ms as a program or unsent)."""
        program = _program_bytes(self.artifact)
        if program is not None:
            return (_entry_from_program, (self.variant, self.runtime, program))
        return (Entry, (self.variant, self.runtime, self.artifact))


# GraphModule -> its program's bytes: an entry is pickled once per timing process and per
# memory worker, and the export (about a second for a ResNet50) need run only once
_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _program_bytes(artifact) -> bytes | None:
    """A GraphModule that torch.export made (its input carries a symbolic shape), exported
    again with the same dynamic batch axis and saved to bytes; None for anything else."""
    if not isinstance(artifact, torch.fx.GraphModule):
        return None
    if artifact not in _PROGRAMS:
        _PROGRAMS[artifact] = _export_bytes(artifact)
    return _PROGRAMS[artifact]


def _export_bytes(artifact: torch.fx.GraphModule) -> bytes | None:
    inputs = [n.meta.get("val") for n in artifact.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor):
        return None
    example = torch.zeros(2, *(int(d) for d in inputs[0].shape[1:]), dtype=inputs[0].dtype)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        program = torch.export.export(artifact, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:   # sent by pickle then, as before: say what it may cost
        import warnings

        warnings.warn(f"could not send a GraphModule to the worker process as a torch.export "
                      f"program ({str(exc).splitlines()[0][:200]}); it goes by pickle, which "
                      "re-traces it and can leave an int8 model timed at fp32 speed",
                      stacklevel=2)
        return None
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def _entry_from_program(variant: str, runtime: str, program: bytes) -> Entry:
    # a fresh process has not registered the quantize/dequantize ops the program calls
    # (torchao's pt2e module does), and torch.export.load cannot read it without them
    with contextlib.suppress(ImportError):
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401

    # bytes our own parent process made in memory (as trusted as the pickle that carries
    # them); a file from elsewhere is never loaded this way (torch.export.load unpickles)
    module = torch.export.load(io.BytesIO(program)).module(check_guards=False)
    return Entry(variant, runtime, module)


def bench(model, config: BenchConfig | None = None, *, label: str | None = None,
          eval_data=None, workdir: str | os.PathLike | None = None) -> BenchResult:
    """Measure `model` (an nn.Module or a path to an .onnx file) on each of config.runtimes."""
    config = config or BenchConfig()
    name = label or (Path(model).stem if isinstance(model, (str, os.PathLike))
                     else type(model).__name__)
    with tempfile.TemporaryDirectory(prefix="optbench-") as tmp:
        artifacts, sizes, skipped = _artifacts(model, config, Path(workdir or tmp))
        entries = [Entry(name, rt, artifact) for rt, artifact in artifacts.items()]
        result = bench_entries(entries, config, eval_data=eval_data, label=name)
    result.sizes, result.skipped = {**sizes, **result.sizes}, {**skipped, **result.skipped}
    if isinstance(model, (str, os.PathLike)):
        result.sections.warnings = int8_warnings(Path(model))
    return result


def int8_warnings(onnx_path: Path) -> list[str]:
    """For an int8 ONNX file made elsewhere: whether its weight format can saturate on this
    CPU (optbench.isa), read from the graph itself."""
    from optbench.isa import cpu_features, onnx_int8_mode, portability_warning

    warning = portability_warning(onnx_int8_mode(onnx_path), cpu_features())
    return [warning] if warning else []


def bench_entries(entries: list[Entry], config: BenchConfig, *, eval_data=None,
                  label: str = "comparison",
                  agreement_with: dict[str, str] | None = None,
                  untimed: frozenset[str] = frozenset(),
                  finished: FinishedProcesses | None = None) -> BenchResult:
    """Time every entry interleaved, per batch size; the first timed entry is the speed-up
    baseline. Output agreement is measured against agreement_with[entry label] (default: the
    first). Entries labelled in `untimed` are evaluated (accuracy, agreement) but neither timed
    nor memory-tracked: they have no rows. `finished` keeps the timing processes
    (`processes` > 1) as each ends, and reuses those a run cut short finished
    (FinishedProcesses)."""
    previous = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with frozen_heap():   # many memory regions: each collects only what was made since
            threads = torch.get_num_threads()
            skipped: dict[str, str] = {}
            sessions, loads = _load_sessions(entries, config, threads, skipped)
            timed = {e: s for e, s in sessions.items() if e.label not in untimed}
            if not timed:
                raise ConfigError("every entry that loaded is untimed (accuracy only); time at "
                                  "least one, the speed-ups' baseline")
            pooled = (time_in_processes(list(timed), config, threads, skipped, finished)
                      if config.processes > 1 else {})
            rows = [row for bs in config.batch_sizes
                    for row in _time_batch(timed, loads, bs, config, threads, skipped,
                                           pooled.get(bs))]
            if config.memory == "process":
                _memory_from_processes(rows, list(timed), config, threads)
            quality, predictions = (_quality(sessions, eval_data, config, agreement_with or {},
                                             untimed)
                                    if eval_data is not None else ({}, {}))
    finally:  # the caller's thread setting, as it was
        torch.set_num_threads(previous)
    return BenchResult(label=label, config=config, env=_env.capture(), sizes={}, rows=rows,
                       quality=quality, skipped=skipped, predictions=predictions)


def _artifacts(model, config: BenchConfig, folder: Path):
    """What each runtime needs: the module itself, or an ONNX file (exported when needed)."""
    is_path = isinstance(model, (str, os.PathLike))
    if is_path and not str(model).endswith(".onnx"):
        raise ConfigError(f"bench takes an nn.Module or an .onnx path, got {model!r}; load "
                          "checkpoints with optbench.cli's bench verb or optbench.models first")
    needs = {name: get_runtime(name).accepts for name in config.runtimes}
    artifacts: dict[str, object] = {}
    sizes: dict[str, SizeReport] = {}
    skipped: dict[str, str] = {}
    if not is_path:
        sizes["torch"] = model_size(model)
    onnx_path = Path(model) if is_path else None
    if onnx_path is None and "onnx" in needs.values():   # OpenVINO converts the module itself
        from optbench.transforms.export import export_onnx  # bench sits above transforms

        example = torch.randn(max(2, max(config.batch_sizes)), *config.input_shape)
        onnx_path = export_onnx(model, example, folder / "model.onnx")
    if onnx_path is not None:
        sizes["onnx"] = onnx_size(onnx_path)
    for name, kind in needs.items():
        if kind == "module" and is_path:
            skipped[name] = "needs an nn.Module; an .onnx file was given"
        else:
            artifacts[name] = {"onnx": onnx_path, "openvino": onnx_path or model}.get(kind, model)
    return artifacts, sizes, skipped


def _load_example(runtime, config: BenchConfig) -> torch.Tensor:
    """The example a runtime loads with. A runtime that compiles one program per input shape
    (torch-compile: dynamic=False) gets the first timed batch size, so its load-time compile is
    the one that batch size runs; the others get at least 2 rows (a batch of 1 could let a
    converter fix the batch axis)."""
    first = config.batch_sizes[0]
    rows = first if getattr(runtime, "compiles_per_shape", False) else max(2, first)
    return torch.randn(rows, *config.input_shape)


def _load_sessions(entries: list[Entry], config: BenchConfig, threads: int, skipped: dict):
    sessions, loads = {}, {}
    for entry in entries:
        runtime = get_runtime(entry.runtime)
        if not runtime.available(config.device):
            skipped[entry.label] = f"not available for device {config.device!r} on this machine"
            continue
        t0 = time.perf_counter()
        try:
            with track_peak_memory(config.device) as mem:
                session = runtime.load(entry.artifact, example=_load_example(runtime, config),
                                       device=config.device, threads=threads)
        except RuntimeUnavailableError as exc:  # e.g. a compile that would run eager
            skipped[entry.label] = str(exc)
            continue
        sessions[entry] = session
        loads[entry] = (mem, time.perf_counter() - t0)
    if not sessions:
        raise ConfigError(f"nothing could run here: {skipped}")
    return sessions, loads


def _batch(config: BenchConfig, batch_size: int) -> torch.Tensor:
    """The input every entry is timed on at this batch size (the same in every process)."""
    gen = torch.Generator().manual_seed(batch_size)
    return torch.randn(batch_size, *config.input_shape, generator=gen)


def _spec(entry: Entry, config: BenchConfig, batch_size: int, threads: int) -> TaskSpec:
    return TaskSpec(label=entry.label, runtime=entry.runtime, device=config.device,
                    batch_size=batch_size, input_shape=tuple(config.input_shape), threads=threads)


def _time_batch(sessions: dict, loads: dict, batch_size: int, config: BenchConfig,
                threads: int, skipped: dict, pooled=None) -> list[Row]:
    """Memory and (unless `pooled`, the comparison made in fresh processes) timing of every
    loaded entry at one batch size."""
    from optbench.runtime.torch import dynamo_counts, run_compiled

    batch = _batch(config, batch_size)
    fns, specs, run_mem, compiles = {}, {}, {}, {}
    for entry, session in list(sessions.items()):
        prepared = session.prepare(batch)
        before = dynamo_counts()
        try:  # first call at this shape (compile/recompile) outside memory/timer
            run_compiled(session, prepared)
        except RuntimeUnavailableError as exc:
            skipped[f"{entry.label} @ batch {batch_size}"] = str(exc)
            continue
        if getattr(session, "compile_stats", None) is not None:
            compiles[entry] = {"at_load": session.compile_stats, "this_batch": {
                k: v - before[k] for k, v in dynamo_counts().items()}}
        with track_peak_memory(config.device) as mem:
            for _ in range(MEMORY_RUNS):
                session.run(prepared)
        run_mem[entry] = mem
        fns[entry.label] = _bind(session, prepared)
        specs[entry.label] = _spec(entry, config, batch_size, threads)
    if pooled is not None:
        for label in [k for k in fns if k not in pooled.measurements]:
            skipped.setdefault(f"{label} @ batch {batch_size}", "not timed in the worker "
                               "processes (see the other skipped entries)")
            del fns[label]
    if not fns:
        return []
    result = pooled if pooled is not None else compare(fns, config=config.timer(), specs=specs,
                                                      device=config.device)
    return [Row(variant=e.variant, runtime=e.runtime, batch_size=batch_size,
                measurement=result.measurements[e.label], speedup=result.ratios[e.label],
                load_memory=loads[e][0], run_memory=run_mem[e], load_s=loads[e][1],
                compile_stats=compiles.get(e))
            for e in sessions if e.label in fns]


@dataclasses.dataclass
class FinishedProcesses:
    """Where `time_in_processes` keeps each finished worker process's timing (JSON, written
    atomically as the process ends), so a timing cut short (the end of a sitting, a crash)
    resumes from the processes it finished. A kept process is reused only when `reuse` is set
    and it timed the same entries with the same settings and threads, on the same kind of
    machine with the same allocator and package versions (`context`: what else must match,
    e.g. a recipe's fingerprint; optbench's own commit is not matched, only recorded in each
    process's provenance); without `reuse`
    the folder is emptied first, so a fresh run never pools an old one. `processes` collects
    each process's provenance (commit, date, reused or not)."""

    folder: Path
    context: str = ""
    reuse: bool = False
    processes: list = dataclasses.field(default_factory=list)

    def key(self, entries: list[Entry], config: BenchConfig, threads: int) -> str:
        import hashlib
        import json

        env = _env.capture()
        blob = {"entries": [e.label for e in entries], "config": config.to_dict(),
                "threads": threads, "context": self.context, **_env.machine_kind(env),
                "allocator": env.get("allocator"), "packages": env.get("packages")}
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]

    def load(self, process: int, key: str):
        """A kept process's ({batch size: Comparison}, {label: why skipped}), or None."""
        import json

        from optbench.measure.compare import Comparison
        from optbench.measure.measurement import Measurement

        path = self.folder / f"process-{process}.json"
        if not self.reuse or not path.is_file():
            return None
        data = json.loads(path.read_text())
        if data.get("key") != key:
            return None
        comparisons = {int(bs): Comparison(
            measurements={k: Measurement.from_dict(m) for k, m in c["measurements"].items()},
            ratios={}, baseline=c["baseline"]) for bs, c in data["comparisons"].items()}
        self.processes.append({**data["provenance"], "process": process, "reused": True})
        return comparisons, data["skipped"]

    def save(self, process: int, key: str, comparisons: dict, skipped: dict) -> None:
        from optbench.io import atomic_write_json

        provenance = _env.provenance()
        atomic_write_json(self.folder / f"process-{process}.json", {
            "key": key, "provenance": provenance, "skipped": skipped,
            "comparisons": {str(bs): {"baseline": c.baseline, "measurements": {
                k: m.to_dict() for k, m in c.measurements.items()}}
                for bs, c in comparisons.items()}})
        self.processes.append({**provenance, "process": process, "reused": False})

    def clear(self) -> None:
        for path in self.folder.glob("process-*.json"):
            path.unlink()


def time_in_processes(entries: list[Entry], config: BenchConfig, threads: int,
                      skipped: dict, finished: FinishedProcesses | None = None) -> dict:
    """Time every entry at every batch size in `config.processes` fresh processes, one after
    the other (spawned: nothing inherited but the environment, so allocator state, memory
    layout and compiled code start anew each time), and pool them: batch size -> Comparison.
    Each worker loads (and compiles) its own sessions; the artifacts reach it by pickle, as
    in-memory objects of this process (no file is unpickled). With `finished`, each process
    is kept as it ends and the processes a run cut short had finished are reused."""
    from optbench.measure.compare import pool

    one = dataclasses.replace(config, processes=1)
    key = finished.key(entries, one, threads) if finished else ""
    if finished and not finished.reuse:
        finished.clear()
    runs: list[dict] = []
    for process in range(1, config.processes + 1):
        kept = finished.load(process, key) if finished else None
        if kept is None:
            comparisons, failed = _in_fresh_process(
                f"processes = {config.processes}", "processes = 1", _timing_worker, entries,
                one, threads)
            if finished:
                finished.save(process, key, comparisons, failed)
        else:
            comparisons, failed = kept
        for label, why in failed.items():
            skipped.setdefault(label, f"in worker process {process}: {why}")
        runs.append(comparisons)
    return {bs: pool([r[bs] for r in runs if bs in r], one.timer())
            for bs in config.batch_sizes if any(bs in r for r in runs)}


def _memory_from_processes(rows: list[Row], entries: list[Entry], config: BenchConfig,
                           threads: int) -> None:
    """memory = "process": replace each row's memory figures by those of a fresh process that
    loads only this entry (exact attribution: nothing else was ever loaded there)."""
    figures = {}
    for entry in entries:   # plain pickle bytes: multiprocessing would pass tensors as shared
        # memory, which the worker's first read would count as its load
        figures.update(_in_fresh_process('memory = "process"', 'memory = "shared"',
                                         _memory_worker, _pickled(entry), config, threads))
    for row in rows:
        if (row.entry, row.batch_size) in figures:
            row.load_memory, row.first_call_memory, row.run_memory = figures[
                (row.entry, row.batch_size)]


def _in_fresh_process(setting: str, instead: str, fn, *args):
    """fn(*args) in a newly spawned process (nothing inherited but the environment); its
    result. A model that cannot be sent there is a ConfigError naming the setting."""
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as executor:
        try:
            return executor.submit(fn, *args).result()
        except (TypeError, AttributeError, pickle.PicklingError) as exc:
            raise ConfigError(f"{setting} sends each model to a fresh worker process, and one "
                              f"could not be sent: {exc}; use {instead} for it") from None


def _pickled(entry: Entry) -> bytes:
    try:
        return pickle.dumps(entry)
    except (TypeError, AttributeError, pickle.PicklingError) as exc:
        raise ConfigError(f'memory = "process" sends each model to a fresh worker process, and '
                          f'{entry.label} could not be sent: {exc}; use memory = "shared"'
                          ) from None


def _memory_worker(payload: bytes, config: BenchConfig, threads: int) -> dict:
    """In a fresh process that holds nothing else: the memory of loading one entry (the
    runtime's own copy of a module's weights, an ONNX file's session), then per batch size of
    its first call at that shape and of MEMORY_RUNS steady-state calls. No memory freed by an
    earlier entry can be reused here, so a load is never counted below its weights."""
    from optbench.runtime.torch import run_compiled

    torch.set_num_threads(threads)
    entry = pickle.loads(payload)   # noqa: S301 - bytes our own parent process made in memory
    del payload
    runtime = get_runtime(entry.runtime)
    with track_peak_memory(config.device) as load:
        session = runtime.load(entry.artifact, example=_load_example(runtime, config),
                               device=config.device, threads=threads)
    out = {}
    for bs in config.batch_sizes:
        prepared = session.prepare(_batch(config, bs))
        try:
            with track_peak_memory(config.device) as first:
                run_compiled(session, prepared)
        except RuntimeUnavailableError:
            continue   # the timing pass says why
        with track_peak_memory(config.device) as run:
            for _ in range(MEMORY_RUNS):
                session.run(prepared)
        out[(entry.label, bs)] = (load, first, run)
    return out


def _timing_worker(entries: list[Entry], config: BenchConfig, threads: int):
    """In a fresh process: load every entry, then per batch size one warm call at the shape
    and the interleaved comparison. Returns ({batch size: Comparison}, {label: why skipped})."""
    from optbench.runtime.torch import run_compiled

    torch.set_num_threads(threads)
    skipped: dict[str, str] = {}
    sessions, _ = _load_sessions(entries, config, threads, skipped)
    out = {}
    for bs in config.batch_sizes:
        batch = _batch(config, bs)
        fns, specs = {}, {}
        for entry, session in sessions.items():
            prepared = session.prepare(batch)
            try:
                run_compiled(session, prepared)
            except RuntimeUnavailableError as exc:
                skipped[f"{entry.label} @ batch {bs}"] = str(exc)
                continue
            fns[entry.label] = _bind(session, prepared)
            specs[entry.label] = _spec(entry, config, bs, threads)
        if fns:
            out[bs] = compare(fns, config=config.timer(), specs=specs, device=config.device)
    return out, skipped


def _bind(session, prepared):
    return lambda: session.run(prepared)


def _eval_rows(runtime, config: BenchConfig, timed: bool = True) -> int:
    """The batch size the quality pass runs at: eval_batch_size, except for a runtime that
    compiles one program per input shape (torch-compile), which evaluates at a batch size it
    was already timed (and so compiled) at: the largest timed one up to eval_batch_size, else
    the smallest; an untimed entry, at the one it was loaded (compiled) at, the first. Another
    shape would be one more compile (measured: 20-27 s for MobileNetV2 at 32x32, one thread of
    a 2-core AVX2 EPYC that a training job shared); examples are independent in eval mode, so
    the logits are those of the deployed program at a deployed batch size."""
    if not getattr(runtime, "compiles_per_shape", False):
        return config.eval_batch_size
    if not timed:
        return config.batch_sizes[0]
    fitting = [bs for bs in config.batch_sizes if bs <= config.eval_batch_size]
    return max(fitting) if fitting else min(config.batch_sizes)


def _quality(sessions: dict, eval_data, config: BenchConfig, agreement_with: dict[str, str],
             untimed: frozenset[str] = frozenset()) -> tuple[dict[str, Quality], dict]:
    from optbench.data import make_loader
    from optbench.measure.quality import paired_comparison

    logits = {}
    for entry, session in sessions.items():
        def predict(images, s=session):
            return s.to_numpy(s.run(s.prepare(images)))
        # one batch shape: a short last batch would recompile a torch-compile session
        rows = _eval_rows(get_runtime(entry.runtime), config, entry.label not in untimed)
        logits[entry.label], labels = collect_logits(padded(predict, rows),
                                                     make_loader(eval_data, rows))
    first = next(iter(logits))
    out = {}
    for name, values in logits.items():
        reference = agreement_with.get(name, first)
        reference = reference if reference in logits else first
        entry = next(e for e in sessions if e.label == name)
        out[name] = Quality(
            variant=entry.variant, runtime=entry.runtime,
            top1_accuracy=top1_accuracy(values, labels), n=len(labels),
            per_class_accuracy=per_class_accuracy(labels, values.argmax(1),
                                                  values.shape[1]).tolist(),
            agreement_with=reference, agreement=agreement(logits[reference], values).to_dict(),
            paired=paired_comparison(logits[reference].argmax(1), values.argmax(1), labels,
                                     values.shape[1]))
    predictions = {name: values.argmax(1).astype(np.int16) for name, values in logits.items()}
    return out, {**predictions, "labels": np.asarray(labels, np.int16)}


def measure_variants(variants: list, config: BenchConfig, eval_data,
                     untimed: Collection[str] = (),
                     finished: FinishedProcesses | None = None) -> BenchResult:
    """All variants, each through its runtimes (those in config.runtimes when it lists any),
    timed interleaved in one run; the first timed entry is the baseline. Each variant (a
    transforms.base.Variant) is compared for output agreement with its nearest measured
    ancestor. The variants named in `untimed` are evaluated on each runtime but not timed
    (accuracy only: e.g. the other seeds of a step whose first seed is timed; their accuracy
    is read on the runtime the timed seed deploys on, BenchResult.deployed_quality); with no
    eval_data they are left out. `finished`: as in bench_entries."""

    untimed = set(untimed)
    if eval_data is None:   # nothing to measure for them
        variants, untimed = [v for v in variants if v.name not in untimed], set()
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
                           agreement_with=agreement_with,
                           untimed=frozenset(e.label for e in entries if e.variant in untimed),
                           finished=finished)
    result.sizes = {v.name: artifact_size(v.ir_path or v.onnx_path or v.model)
                    for v in variants}
    return result
