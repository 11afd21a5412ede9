"""Sweeps: a grid of recipe variations, each an ordinary recipe run in its own folder, run by an
executor (`local`: one after another; `ray`: on a Ray cluster), resumable, merged into one table.

    # sweep.toml
    [sweep]
    recipes = ["recipes/quick_resnet18.toml"]   # one axis: the base recipes
    executor = "local"                          # or "ray" (pip install 'optbench[ray]')
    machine_kind = "epyc-2core"                 # a label for where the timing ran
    retries = 1                                 # re-runs of a failed trial
    budget_points = 1.0                         # accuracy budget of each trial's pick
    [grid]                                      # dotted recipe keys -> values, all combinations
    "models.net.arch" = ["resnet18", "mobilenet_v2"]
    "bench.batch_sizes" = [[1], [8]]

    optbench sweep sweep.toml --out runs/sweep [--executor ray --address auto]

Each trial runs in a fresh process (`python -m optbench.sweep TRIAL_DIR`; one process building
many variants of one architecture would hit Dynamo's recompile limit). On Ray a trial runs in two
tasks: its steps (training, export) on one CPU, which may share a node, then its measurement on
a task that holds every CPU of a node (timing trials never share a node), with the thread count
set explicitly by the recipe's [bench] threads. Each trial's report records the node's CPU model
and ISA flags; the merged table never divides timings of different trials.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from optbench.config import read_toml
from optbench.errors import ConfigError, MissingInputError, OptbenchError
from optbench.io import atomic_write_json, atomic_write_text

EXECUTORS = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class Trial:
    id: str
    recipe: str                  # the base recipe file
    overrides: dict              # dotted key -> value
    data: dict                   # the recipe with the overrides applied

    @property
    def label(self) -> str:
        parts = [Path(self.recipe).stem] + [f"{k.rsplit('.', 1)[-1]}={_short(v)}"
                                            for k, v in self.overrides.items()]
        return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class Sweep:
    trials: tuple[Trial, ...]
    executor: str = "local"
    machine_kind: str = "local"
    retries: int = 1
    budget_points: float = 1.0
    quick: bool = False


def _short(v) -> str:
    return json.dumps(v, separators=(",", ":")) if not isinstance(v, str) else v


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and expand a sweep file; every trial's recipe is validated before any work."""
    from optbench.pipeline.recipe import Recipe, apply_quick

    path = Path(path)
    raw = read_toml(path, "sweep file")
    unknown = sorted(set(raw) - {"sweep", "grid"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; a sweep has [sweep] and [grid]")
    head = dict(raw.get("sweep", {}))
    known = {"recipes", "executor", "machine_kind", "retries", "budget_points", "quick"}
    if set(head) - known:
        raise ConfigError(f"{path} [sweep]: unknown key(s) {sorted(set(head) - known)}; "
                          f"allowed: {sorted(known)}")
    recipes = head.get("recipes")
    if not isinstance(recipes, list) or not recipes:
        raise ConfigError(f"{path} [sweep]: recipes = [\"recipes/x.toml\", ...] is required")
    executor = head.get("executor", "local")
    if executor not in EXECUTORS:
        raise ConfigError(f"{path} [sweep]: executor must be one of {list(EXECUTORS)}, got "
                          f"{executor!r}")
    grid = raw.get("grid", {})
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path} [grid] {key!r}: give a non-empty list of values")
    quick = bool(head.get("quick", False))
    trials = []
    for recipe_file in recipes:
        recipe_path = (path.parent / recipe_file) if not Path(recipe_file).is_absolute() \
            else Path(recipe_file)
        if not recipe_path.is_file():
            recipe_path = Path(recipe_file)
        if not recipe_path.is_file():
            raise MissingInputError(f"{path}: recipe {recipe_file} not found")
        base = read_toml(recipe_path, "recipe")
        overlay = base.pop("quick", None)
        if quick:
            if overlay is None:
                raise ConfigError(f"{recipe_path} has no [quick] section for quick = true")
            base = apply_quick(base, overlay, str(recipe_path))
        for combo in itertools.product(*grid.values()) if grid else [()]:
            overrides = dict(zip(grid, combo, strict=True))
            data = copy.deepcopy(base)
            for key, value in overrides.items():
                _set(data, key, value, f"{path} [grid] {key!r}")
            # the id names the trial's whole recipe, so an edited base recipe makes new trials
            # (a resumed sweep never skips a trial because an older recipe finished it)
            digest = hashlib.sha256(json.dumps([str(recipe_path), data], sort_keys=True,
                                               default=str).encode()).hexdigest()[:10]
            trial = Trial(f"t{len(trials):03d}-{digest}", str(recipe_path), overrides, data)
            Recipe.from_dict(data, source=f"trial {trial.label}")   # validate now
            trials.append(trial)
    return Sweep(tuple(trials), executor=executor,
                 machine_kind=str(head.get("machine_kind", "local")),
                 retries=int(head.get("retries", 1)),
                 budget_points=float(head.get("budget_points", 1.0)), quick=quick)


def _set(data: dict, dotted: str, value, where: str) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            raise ConfigError(f"{where}: the recipe has no table {key!r} on the way to "
                              f"{dotted!r}")
        node = node[key]
    node[keys[-1]] = value


# -- running ------------------------------------------------------------------------------------
def run_sweep(sweep: Sweep, out: str | os.PathLike, executor: str | None = None,
              address: str | None = None) -> dict:
    """Run every unfinished trial, then write the merged report. Returns the sweep state."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "sweep.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"trials": {}}
    for t in sweep.trials:
        folder = out / "trials" / t.id
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "trial.json", {"id": t.id, "label": t.label,
                                                  "recipe": t.recipe, "overrides": t.overrides,
                                                  "data": t.data})
        state["trials"].setdefault(t.id, {"label": t.label, "status": "pending",
                                          "attempts": 0})
    todo = [t for t in sweep.trials if state["trials"][t.id]["status"] != "done"]
    executor = executor or sweep.executor
    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    state["executor"], state["machine_kind"] = executor, sweep.machine_kind

    def record(trial_id: str, result: dict) -> None:
        entry = state["trials"][trial_id]
        result.pop("attempts", None)
        entry.update(result)
        # every start of the trial's first phase, counted in its folder: this sees the
        # retries Ray makes on its own after a worker died, which the driver never hears of
        entry["attempts"] = trial_starts(out / "trials" / trial_id)
        atomic_write_json(state_path, state)

    started = time.perf_counter()
    if executor == "local":
        for t in todo:
            record(t.id, _with_retries(lambda t=t: _run_trial(out / "trials" / t.id),
                                       sweep.retries))
    else:
        _run_on_ray(todo, out, sweep.retries, address, record)
    state["wall_s"] = time.perf_counter() - started
    state["ran"] = len(todo)
    atomic_write_json(state_path, state)
    write_merged(sweep, out, state)
    return state


def _with_retries(fn, retries: int) -> dict:
    attempts, result = 0, {}
    for _ in range(retries + 1):
        attempts += 1
        result = fn()
        if result["status"] == "done":
            break
    return {**result, "attempts": attempts}


def _run_trial(folder: Path, phase: str = "all", threads: int = 0) -> dict:
    """One trial (or one phase of it: steps, measure) in a fresh Python process."""
    import platform

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH")]))}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    nice = _normal_priority()
    start = time.perf_counter()
    with open(folder / "starts.jsonl", "a") as log:   # one line per start, see trial_starts
        log.write(json.dumps({"phase": phase, "node": platform.node(), "pid": os.getpid(),
                              "time": time.time()}) + "\n")
    proc = subprocess.run([sys.executable, "-m", "optbench.sweep", str(folder), phase],
                          capture_output=True, text=True, env=env)
    atomic_write_text(folder / f"{phase}.log", proc.stdout[-20000:] + proc.stderr[-20000:])
    result = {"seconds": time.perf_counter() - start, "node": platform.node(), "nice": nice}
    if proc.returncode == 0:
        return {**result, "status": "done" if phase in ("all", "measure") else "steps-done"}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
    return {**result, "status": "failed", "error": tail[0][:500],
            "returncode": proc.returncode}


def trial_starts(folder: Path) -> int:
    """How many times the trial's first phase (all, or steps) was started, by any executor."""
    path = folder / "starts.jsonl"
    if not path.is_file():
        return 0
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(1 for entry in lines if entry["phase"] in ("all", "steps"))


def _normal_priority() -> int:
    """Ray starts its workers at nice 15: a trial run there loses the CPU to anything else on
    the node (here a background training made a 20 s trial take 5 minutes). Back to 0 where
    allowed; the niceness the trial ran at is returned and reported either way."""
    nice = os.nice(0)
    if nice > 0:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
            nice = 0
        except PermissionError:
            pass
    return nice


def _run_on_ray(trials: list[Trial], out: Path, retries: int, address: str | None,
                record) -> None:
    try:
        import ray
    except ImportError:
        raise MissingInputError("the ray executor needs Ray: pip install 'optbench[ray]'"
                                ) from None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=1, max_retries=retries)
    def steps(folder: str) -> dict:
        return _run_trial(Path(folder), "steps")

    def measure_task(cpus: float):
        @ray.remote(num_cpus=cpus, max_retries=retries)
        def measure(folder: str) -> dict:
            return _run_trial(Path(folder), "measure", threads=int(cpus))
        return measure

    # a timing task asks for every CPU of the smallest node, so it holds a whole node
    sizes = sorted({n["Resources"].get("CPU", 1.0) for n in ray.nodes() if n.get("Alive")})
    node_cpus = sizes[0]
    if len(sizes) > 1:   # then it holds a small node whole but may share a bigger one
        import warnings

        warnings.warn(f"Ray nodes of different sizes ({sizes} CPUs): a timing task asks for "
                      f"{node_cpus:g} CPUs and may share a bigger node with another; run one "
                      "sweep per machine kind (nodes of one size)", stacklevel=2)
    measure = measure_task(node_cpus)
    pending = {steps.remote(str(out / "trials" / t.id)): (t, "steps", 0) for t in trials}
    steps_seconds: dict[str, float] = {}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ref = done[0]
        trial, phase, attempt = pending.pop(ref)
        try:
            result = ray.get(ref)
        except Exception as exc:   # the task's worker died past Ray's own retries
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
        folder = str(out / "trials" / trial.id)
        if result["status"] == "failed" and attempt < retries:
            task = steps if phase == "steps" else measure
            pending[task.remote(folder)] = (trial, phase, attempt + 1)
            continue
        if phase == "steps" and result["status"] == "steps-done":
            steps_seconds[trial.id] = result.get("seconds", 0.0)
            pending[measure.remote(folder)] = (trial, "measure", 0)
            continue
        if "seconds" in result:   # the trial's time: its steps task plus its measurement task
            result["seconds"] += steps_seconds.get(trial.id, 0.0)
        record(trial.id, {**result, "attempts": attempt + 1})


def _die_with_parent() -> None:
    """Linux: this trial is killed when the process that started it dies (a Ray worker killed
    for memory, a lost node), instead of running on orphaned beside the retry that Ray starts
    in the same folder."""
    import ctypes
    import signal

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)       # PR_SET_PDEATHSIG
    except (OSError, AttributeError):       # not Linux: nothing to set
        return
    if os.getppid() != parent:              # it died before prctl took effect
        os._exit(1)


def _trial_main(folder: str, phase: str) -> int:
    """`python -m optbench.sweep TRIAL_DIR PHASE`: run one trial's recipe in this process."""
    from optbench.pipeline.recipe import Recipe
    from optbench.pipeline.run import run_recipe

    _die_with_parent()
    folder = Path(folder)
    spec = json.loads((folder / "trial.json").read_text())
    recipe = Recipe.from_dict(spec["data"], source=f"trial {spec['label']}")
    run_recipe(recipe, folder / "run", progress=False, measure=phase != "steps",
               recipe_changed=False)
    return 0


# -- the merged report --------------------------------------------------------------------------
def trial_pick(report_path: Path, budget_points: float) -> dict | None:
    """A trial's answer: the fastest variant (any runtime) at its smallest batch whose top-1 is
    within budget of the trial's most accurate variant."""
    from optbench.results import fastest_rows, load_report

    if not report_path.is_file():
        return None
    report = load_report(report_path)
    accs = {v: report.accuracy(v) for v in dict.fromkeys(r.variant for r in report.rows)}
    accs = {v: a for v, a in accs.items() if a is not None}
    if not accs:
        return None
    best_acc = max(accs.values())
    batch = min(report.batch_sizes)
    rows = [r for (v, b), r in fastest_rows(report.rows).items()
            if b == batch and v in accs and (best_acc - accs[v]) * 100 <= budget_points]
    pick = min(rows, key=lambda r: r.median_s)
    env = report.env
    return {"variant": pick.variant, "runtime": pick.runtime, "batch_size": batch,
            "median_ms": pick.median_s * 1e3, "top1": accs[pick.variant],
            "best_top1": best_acc, "cpu": env.get("cpu_model"),
            "isa": [k for k, v in (env.get("isa") or {}).items() if v]}


def write_merged(sweep: Sweep, out: Path, state: dict) -> None:
    """merged.json, merged.csv, merged.md and merged.html: every trial with its status and pick,
    and the best pick per model and batch size."""
    rows = []
    for t in sweep.trials:
        entry = state["trials"][t.id]
        pick = trial_pick(out / "trials" / t.id / "run" / "report.json", sweep.budget_points)
        rows.append({"id": t.id, "label": t.label, "model": _model_of(t.data),
                     "status": entry["status"], "attempts": entry.get("attempts", 0),
                     "node": entry.get("node"), "nice": entry.get("nice"),
                     "seconds": entry.get("seconds"), "error": entry.get("error"),
                     "pick": pick})
    merged = {"machine_kind": sweep.machine_kind, "executor": state.get("executor"),
              "budget_points": sweep.budget_points, "wall_s": state.get("wall_s"),
              "trials": rows}
    atomic_write_json(out / "merged.json", merged)
    write_merged_files([merged], out, "merged")


def merge_sweeps(folders: list[str | os.PathLike], out: str | os.PathLike) -> Path:
    """One report over sweeps run on different machine kinds (each folder's merged.json):
    `optbench sweep-merge DIR... --out OUT`. Returns the Markdown file."""
    payloads = []
    for folder in folders:
        path = Path(folder) / "merged.json"
        if not path.is_file():
            raise MissingInputError(f"{path} not found: merge folders that `optbench sweep` "
                                    "wrote (each has merged.json)")
        payloads.append(json.loads(path.read_text()))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "sweeps.json", {"sweeps": payloads})
    return write_merged_files(payloads, out, "sweeps")


def _model_of(recipe: dict) -> str:
    return ", ".join(str(m.get("arch", "?")) for m in recipe.get("models", {}).values())


def best_per_model(trials: list[dict]) -> list[dict]:
    """Per model and batch size, the fastest pick among the trials whose pick is within the
    trials' own budgets of that group's most accurate pick. Its latency and the others' come
    from different trials (different runs, maybe nodes): the choice is by median, not a ratio."""
    groups: dict[tuple, list[dict]] = {}
    for t in trials:
        if t["status"] == "done" and t.get("pick"):
            groups.setdefault((t["model"], t["pick"]["batch_size"]), []).append(t)
    best = []
    for (model, batch), members in sorted(groups.items()):
        top = max(m["pick"]["top1"] for m in members)
        within = [m for m in members
                  if (top - m["pick"]["top1"]) * 100 <= m.get("budget_points", 1.0)]
        winner = min(within, key=lambda m: m["pick"]["median_ms"])
        best.append({"model": model, "batch_size": batch, "trial": winner["label"],
                     "of": len(members), **winner["pick"]})
    return best


def write_merged_files(payloads: list[dict], out: Path, stem: str) -> Path:
    """The merged report through the report code (one document, Markdown and HTML) and a CSV of
    every trial, grouped by machine kind."""
    import csv
    import io

    from optbench.report.document import Document, Para, Section, Table, to_html, to_markdown

    blocks: list = [Para(
        "Each trial's pick: the fastest variant at its smallest batch size within the accuracy "
        "budget of the trial's most accurate variant. Latencies of different trials come from "
        "different runs (on a cluster, possibly different nodes of one kind: see CPU); they are "
        "compared as medians, never divided into ratios. Machine kinds are never compared with "
        "each other.")]
    csv_rows = []
    for payload in payloads:
        kind, budget = payload.get("machine_kind"), payload.get("budget_points", 1.0)
        trials = [{**t, "budget_points": budget} for t in payload["trials"]]
        best = best_per_model(trials)
        done = sum(t["status"] == "done" for t in trials)
        wall = payload.get("wall_s")
        blocks.append(Section(f"{kind}: best per model ({payload.get('executor')} executor)", [
            Para(f"{done} of {len(trials)} trials done"
                 + (f"; {wall:.0f} s of wall time in the last run" if wall else "") + "."),
            Table(["model", "batch", "pick", "runtime", "median ms", "top-1 %", "from trial",
                   "trials", "CPU"],
                  [[b["model"], str(b["batch_size"]), b["variant"], b["runtime"],
                    f"{b['median_ms']:.3f}", f"{b['top1'] * 100:.2f}", b["trial"], str(b["of"]),
                    b["cpu"] or "?"] for b in best], align="llllrrllr"[:9])],
            open=True, highlight=True))
        table = []
        for t in trials:
            p = t.get("pick") or {}
            status = t["status"] + (f" ({t.get('error')})" if t["status"] == "failed" else "")
            if t.get("nice"):
                status += f" (ran at nice {t['nice']}: its timing competed at low priority)"
            table.append([t["label"], status, str(t["attempts"]), p.get("variant", "—"),
                          p.get("runtime", "—"), str(p.get("batch_size", "—")),
                          f"{p['median_ms']:.3f}" if p else "—",
                          f"{p['top1'] * 100:.2f}" if p else "—", p.get("cpu") or "—",
                          f"{t['seconds']:.0f}" if t.get("seconds") else "—"])
            csv_rows.append({"machine_kind": kind, "executor": payload.get("executor"),
                             "trial": t["label"], "model": t["model"], "status": t["status"],
                             "attempts": t["attempts"], "node": t.get("node"),
                             "seconds": t.get("seconds"), "pick": p.get("variant"),
                             "runtime": p.get("runtime"), "batch_size": p.get("batch_size"),
                             "median_ms": p.get("median_ms"), "top1": p.get("top1"),
                             "cpu": p.get("cpu"), "isa": " ".join(p.get("isa", []))})
        blocks.append(Section(f"{kind}: every trial", [
            Table(["trial", "status", "attempts", "pick", "runtime", "batch", "median ms",
                   "top-1 %", "CPU", "seconds"], table, align="llrlllrrlr")], open=True))
    kinds = sorted({str(p.get("machine_kind")) for p in payloads})
    doc = Document(f"Sweep: {sum(len(p['trials']) for p in payloads)} trials on "
                   f"{', '.join(kinds)}", blocks)
    atomic_write_text(out / f"{stem}.html", to_html(doc))
    buffer = io.StringIO()
    if csv_rows:
        writer = csv.DictWriter(buffer, fieldnames=list(csv_rows[0]))
        writer.writeheader()
        writer.writerows(csv_rows)
    atomic_write_text(out / f"{stem}.csv", buffer.getvalue())
    md = out / f"{stem}.md"
    atomic_write_text(md, to_markdown(doc))
    return md


if __name__ == "__main__":
    try:
        sys.exit(_trial_main(*sys.argv[1:3]))
    except OptbenchError as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        sys.exit(2)
