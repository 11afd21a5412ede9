"""The bench / pipeline report, answer first: a document (report.document) built from a
BenchResult, rendered to Markdown (`render_bench`) and to one self-contained HTML page with its
plots (`render_html`).

Order: the answer (the recipe's targets or the best trade-offs, with the accuracy-vs-latency
plot), then the details, each a collapsible section in HTML.
"""

from __future__ import annotations

import re
import shlex

from optbench.diagnose import seed_matched
from optbench.report.document import (
    Bullets,
    Code,
    Document,
    Figure,
    Para,
    Section,
    Strong,
    Table,
    to_html,
    to_markdown,
)
from optbench.report.responsible import responsible_sections
from optbench.report.targets import target_blocks
from optbench.results import AtSize, BenchResult, Row, fastest_rows, seed_groups
from optbench.stats import proportion_half_width


def render_bench(result, title: str | None = None) -> str:
    """Markdown (figures are only in the HTML page)."""
    return to_markdown(build_document(BenchResult.coerce(result), title))


def render_html(result, title: str | None = None) -> str:
    """One self-contained HTML page: the same document plus plots as base64 PNGs."""
    return to_html(build_document(BenchResult.coerce(result), title, figures=True))


def build_document(result: BenchResult, title: str | None = None,
                   figures: bool = False) -> Document:
    plots = _plots(result) if figures else {}
    env = result.env
    where = ", ".join(x for x in (f"at commit {env['git_commit'][:12]}" if env.get("git_commit")
                                  else "", env.get("cpu_model") or "") if x)
    blocks = [Para(("Command: ", Code(display_command(env.get("command", "?"))),
                    f" ({where})." if where else "."))]
    blocks += _stage_blocks(result.sections.stages)
    if "--quick" in result.env.get("command", ""):
        blocks.append(Para((Strong("Quick run:"), " a small data subset and a few training "
                            "steps check the pipeline end to end; its accuracies are not "
                            "meaningful.")))
    answer = summary_blocks(result)
    if "accuracy_vs_latency" in plots:
        answer.append(plots.pop("accuracy_vs_latency"))
    blocks.append(Section("The answer", answer, open=True, highlight=True))
    blocks += seed_sections(result)
    blocks += training_sections(result)
    blocks += detail_sections(result)
    if plots:
        blocks.append(Section("Plots", list(plots.values())))
    blocks.append(Section("Environment", _environment(result.env)))
    return Document(title or f"optbench: {result.label}", blocks)


def seed_sections(result: BenchResult) -> list:
    """Steps trained with several seeds (`NAME@SEED`, recipe `seeds = [...]`): each seed's
    top-1 and their mean ± sample sd, so one lucky seed is not read as the method's effect."""
    import statistics

    groups = {}
    untimed = set(result.accuracy_only())
    for base, members in seed_groups([*(r.variant for r in result.rows),
                                      *result.first_quality()]).items():
        scored = [(seed, acc) for seed, name in members
                  if (acc := result.accuracy(name)) is not None]
        if scored:
            groups[base] = scored
    if not groups:
        return []
    rows = []
    for base, seeds in groups.items():
        accs = [a for _, a in seeds]
        spread = f" ± {statistics.stdev(accs) * 100:.2f}" if len(accs) > 1 else ""
        rows.append([base, str(len(seeds)), f"{statistics.fmean(accs) * 100:.2f}{spread}",
                     ", ".join(f"{s}: {a * 100:.2f}" for s, a in sorted(seeds))])
    timed_note = ""
    partly = {base: [seed for seed, name in members if name not in untimed]
              for base, members in seed_groups(result.first_quality()).items()
              if any(name in untimed for _, name in members)}
    if partly:
        timed_note = (" Timed: " + "; ".join(
            f"{base} seed {', '.join(map(str, seeds))}" if seeds else f"{base} none"
            for base, seeds in partly.items())
            + ". Their other seeds have no latency rows: measured for accuracy only "
            "(timed_seeds: the seeds of a step share its architecture, so a timed seed's "
            "latency stands for them), read on the runtime their step's timed seed is deployed "
            "on.")
    return [Section("Seeds", [
        Para("Top-1 (%) of every step trained with several seeds: mean ± sample standard "
             "deviation, and each seed. Targets naming a seeded step are checked per seed, "
             "seed-matched where both sides are seeded (paired tests in Targets)." + timed_note),
        Table(["step", "seeds", "top-1 mean ± sd", "per seed"], rows, align="lrrl"),
        *[Para(_seed_verdict(t)) for t in result.sections.targets
          if t.get("seeds") and t.get("measured") is not None]],
        open=True)]


def _seed_verdict(t: dict) -> tuple:
    """One sentence on a difference checked over seeds: what it adds, or that it is not
    detectable, with the paired t-test over the seed-matched pairs."""
    per_seed = ", ".join(f"seed {e['seed']}: {e['points']:+.2f}" for e in t["per_seed"])
    head = f"{t['variant']} vs {t['reference']}, over {len(t['per_seed'])} seeds ({per_seed}): "
    if t.get("spread_unknown"):
        return (head, Strong("undecided"), f" (every seed {t['measured']:+.2f} points: with no "
                "spread over seeds to estimate, the paired t-test cannot be drawn; more seeds "
                "can decide it).")
    if "t_p" not in t:
        return (head + f"{t['measured']:+.2f} points (one seed: no test).",)
    lo, hi = t["ci95"]
    stats = f"mean {t['measured']:+.2f} points, 95% CI [{lo:+.2f}, {hi:+.2f}], p = {t['t_p']:.3g}"
    if t["t_p"] < 0.05:
        word = "adds" if t["measured"] > 0 else "loses"
        return (head, Strong(f"{t['variant']} {word} {abs(t['measured']):.2f} points"),
                f" ({stats}, paired t-test over seeds).")
    return (head, Strong("no detectable difference"), f" ({stats}, paired t-test over seeds).")


def training_sections(result: BenchResult) -> list:
    """Every step that trained in this run: epochs, the last validation top-1 and how long it
    took (wall time of training and validation, from the per-epoch records)."""
    from optbench.report.plots import training_histories

    rows, compiled = [], False   # compiled: some epoch ran with train.compile
    for name, hist in training_histories(result).items():
        facts = result.sections.variants[name].facts
        compiled = compiled or any(h.get("compiled") for h in hist)
        seconds = [h["seconds"] for h in hist if "seconds" in h]
        cpu = [h for h in hist if "cpu_seconds" in h]
        clips = [h for h in hist if "clipped_steps" in h]
        last = next((h for h in reversed(hist) if "val_accuracy" in h), None)
        config = facts.other.get("config") or {}
        teacher = config.get("teacher")
        runtime = config.get("teacher_runtime") or (config.get("kd") or {}).get("teacher_runtime")
        on = ", on onnxruntime" if runtime == "onnxruntime" else ""   # e.g. its int8 file
        how = facts.method + (f" (teacher: {teacher}{on})" if teacher else "")
        threads = sorted({h["threads"] for h in hist if "threads" in h})
        where = list(dict.fromkeys(f"{h['device']}, {h.get('precision', 'fp32')}"
                                   + (", compiled" if h.get("compiled") else "")
                                   for h in hist if "device" in h))
        where += [f"weights kept as {h['weights_stored_as']} (train.slim_checkpoint)"
                  for h in hist[-1:] if "weights_stored_as" in h]
        rows.append([name, how, str(len(hist)),
                     _val_top1(last),
                     f"{sum(seconds) / 60:.1f}" if len(seconds) == len(hist) else "—",
                     _recorded(cpu, hist, lambda r: f"{sum(h['cpu_seconds'] for h in r) / 60:.1f}"),
                     "/".join(map(str, threads)) or "—",
                     _recorded(clips, hist, lambda r: f"{sum(h['clipped_steps'] for h in r)} "
                               f"({max(h['max_grad_norm'] for h in r):.1f})"),
                     _recorded([h for h in hist if "device" in h], hist,
                               lambda _r, where=where: "; ".join(where))])
    if not rows:
        return []
    header = ["step", "method", "epochs", "last val top-1 (%)", "wall minutes", "CPU minutes",
              "threads", "steps clipped (largest gradient norm)", "trained on"]
    # optional columns, shown when they say something: threads when the runs differ (steps
    # trained side by side with --jobs), clipping when some run clipped
    threads = len({r[6] for r in rows} - {"—"}) > 1
    clipping = any(r[7] != "—" for r in rows)
    trained_on = any(r[8] != "—" for r in rows)
    keep = [i for i in range(len(header))
            if (i != 6 or threads) and (i != 7 or clipping) and (i != 8 or trained_on)]
    header, rows = [header[i] for i in keep], [[r[i] for i in keep] for r in rows]
    return [Section("Training runs", [
        Para("Each step that trained here: its epochs, the validation top-1 after the last one "
             "(the validation split, not the test set; ± its 95% CI on that split's size, "
             "where recorded: validation splits are small, so compare steps on the test set "
             "and its paired tests, not here), and the time of training plus "
             "validation summed over its epochs: wall minutes (pauses and other work on the "
             "machine included) and the process's CPU minutes (all threads; a pause costs "
             "none; ≥ where some epochs ran before CPU time was recorded). — where the "
             "checkpoints predate the record. The Plots section has the per-epoch curves."
             + (" Trained on: the device of each epoch (CPU model and its int8/bf16 class, or "
                "the GPU) and the training precision"
                + (', "compiled" where train.compile was on' if compiled else "")
                + "; ≥ where some epochs ran before this was recorded." if trained_on else "")
             + (" Steps clipped: steps whose global gradient norm exceeded the step's "
                "grad_clip_norm (clipped to it), and the largest norm seen before clipping; ≥ "
                "where some epochs ran before this was recorded." if clipping else "")
             + (" Threads: the intra-op threads of the process that trained each epoch; steps "
                "trained side by side (optbench run --jobs) ran in processes of their own at "
                "the same time, so their wall minutes overlap." if threads else "")),
        Table(header, rows, align="ll" + "r" * (len(header) - 2))])]


def _val_top1(record: dict | None) -> str:
    """An epoch's validation top-1 in %, ± its 95% CI half-width where the epoch recorded the
    split's size (a difference between two steps within it is not evidence)."""
    if record is None:
        return "—"
    acc, n = record["val_accuracy"], record.get("val_examples")
    return f"{acc * 100:.2f}" + (f" ± {proportion_half_width(acc, n) * 100:.2f}" if n else "")


def _recorded(records: list[dict], hist: list[dict], text) -> str:
    """text(records) for the epochs that recorded a figure: — when none did, ≥ when only some
    did (the rest ran before it was recorded)."""
    if not records:
        return "—"
    return ("" if len(records) == len(hist) else "≥ ") + text(records)


# -- the answer --------------------------------------------------------------------------------
def summary_blocks(result: BenchResult) -> list:
    """What a reader came for. With targets: each variant the targets name, against its
    reference, and the verdicts. With references: the variants on the accuracy/latency Pareto
    front against the first reference. Otherwise (one model, several runtimes): the fastest
    runtime per batch size, with the speed-up's CI deciding faster / slower / undecided."""
    sec = result.sections
    if sec.targets:
        return _target_summary(result)
    if sec.references:
        return _reference_summary(result)
    return _runtime_summary(result)


def _target_summary(result: BenchResult) -> list:
    rows = []
    for variant in dict.fromkeys(t["variant"] for t in result.sections.targets):
        targets = [t for t in result.sections.targets if t["variant"] == variant]
        reference = targets[0]["reference"]
        ref = _reference_row(result, variant, reference, 1)
        verdicts = [t.get("verdict") or ("not measured" if t["measured"] is None
                                         else "met" if t["met"] else "missed") for t in targets]
        counts = {v: verdicts.count(v) for v in ("missed", "undecided", "met", "not measured")
                  if v in verdicts}
        text = ", ".join(f"{v} {n}" for v, n in counts.items()) + f" of {len(targets)}"
        verdict = Strong(text) if "missed" in counts else text
        rows.append([variant, reference, *_trade_cells(ref), verdict])
    return [Para("The variants the recipe's targets are about, each against its reference "
                 "(batch 1, fastest runtime of each, training input size), and how the targets "
                 "came out; the Targets table below gives each one with its CI."),
            Table(["variant", "vs", "speed-up", "size ratio", "top-1 Δ (points)", "targets"],
                  rows, align="llrrrl"),
            Section("Targets", [*_rechecked(result.sections.targets_checked),
                                *target_blocks(result.sections.targets)], open=True, level=3)]


def _rechecked(where: dict) -> list:
    """Said above the targets `optbench report` checked again with newer code."""
    if not where:
        return []
    return [Para(("Checked again by ", Code(display_command(where.get("command") or "?")),
                  f" at commit {(where.get('git_commit') or '?')[:12]}"
                  + (" (uncommitted changes)" if where.get("git_dirty") else "")
                  + f" on {where.get('date') or 'an unrecorded date'}, from the stored "
                  "measurements and predictions: the code that measured them (see the stages "
                  "and the environment) had checked them differently."))]


def _reference_summary(result: BenchResult) -> list:
    reference = result.sections.references[0]["reference"]
    best = {v: row for (v, b), row in fastest_rows(result.rows).items() if b == 1}
    points = {v: (row.median_s, result.accuracy(v)) for v, row in best.items()
              if result.accuracy(v) is not None}
    from optbench.report.plots import pareto_front

    names = list(points)
    front = [names[i] for i in pareto_front([points[n] for n in names])]
    front.sort(key=lambda n: points[n][0])
    rows = [[v, *_trade_cells(_reference_row(result, v, reference, 1))] for v in front]
    out = [Para(f"The variants no other variant beats on both accuracy and batch-1 latency "
                f"(the Pareto front), fastest first, against {reference} (fastest runtime of "
                "each, training input size)."),
           Table(["variant", "speed-up", "size ratio", "top-1 Δ (points)"], rows)]
    if front:
        out.append(Para(f"Fastest on the front: {front[0]}; most accurate: {front[-1]}. Pick "
                        "by the accuracy you can give up."))
    return out


def _reference_row(result: BenchResult, variant: str, reference: str, batch: int):
    return next((c for c in result.sections.references if c["variant"] == variant
                 and c["reference"] == reference and c["batch_size"] == batch), None)


def _trade_cells(c: dict | None) -> list[str]:
    if c is None:
        return ["—", "—", "—"]
    return [f"{c['speedup']:.2f}x ({c['runtime']})",
            f"{c['size_ratio']:.2f}x" if c["size_ratio"] else "—",
            f"{c['accuracy_delta_points']:+.2f}" if c["accuracy_delta_points"] is not None
            else "—"]


def _runtime_summary(result: BenchResult) -> list:
    rows = []
    for batch in result.batch_sizes:
        at = [r for r in result.rows if r.batch_size == batch]
        best = min(at, key=lambda r: r.median_s)
        ci = best.speedup.speedup
        verdict = ("the baseline itself" if best is at[0]   # entries run baseline first
                   else "faster" if ci.low > 1 else "slower" if ci.high < 1 else "undecided")
        q = result.quality.get(best.entry)
        rows.append([str(batch), best.entry, f"{best.median_s * 1e3:.3f}",
                     f"{ci.estimate:.2f}x [{ci.low:.2f}, {ci.high:.2f}]", verdict,
                     f"{q.top1_accuracy:.4f}" if q else "—"])
    baseline = result.rows[0].speedup.baseline if result.rows else "?"
    return [Para(f"The fastest entry at each batch size against the baseline {baseline}, timed "
                 "interleaved in the same run. Undecided: the speed-up's 95% CI contains 1."),
            Table(["batch", "fastest", "median ms", "speed-up [95% CI]", "verdict", "top-1"],
                  rows, align="rlrrlr")]


# -- details -----------------------------------------------------------------------------------
def detail_sections(result: BenchResult) -> list:
    sec = result.sections
    out = []
    if sec.references:
        shown = _seed_matched(result, sec.references)
        out.append(Section("Against the references", [
            Para("Each variant's fastest runtime against each reference's fastest, same batch "
                 "size. Size ratio = reference bytes / variant bytes; accuracy in points."
                 + (_SEED_MATCHED if len(shown) < len(sec.references) else "")),
            _references_table(shown)]))
    out.append(Section("Latency, memory and speed-up", [
        Para(f"Input shape {tuple(result.config.input_shape)}, device {result.config.device}, "
             f"threads {_threads(result)}. Latencies are per call (one batch); speed-up is the "
             "first runtime's median divided by this one's, measured interleaved in the same "
             "run, with a 95% bootstrap CI."),
        _latency_table(result.rows), *_warnings(result.rows)]))
    if result.quality:
        out.append(Section("Accuracy and agreement", [_quality_table(result)]))
    out.append(Section("Size", [_size_table(result)]))
    if sec.training:
        out.append(Section("Training", _training(sec.training)))
    for size, at in sorted(sec.at_sizes.items()):
        out.append(Section(f"Latency at {size}x{size}", _at_size(result, size, at)))
    if sec.variants:
        out.append(Section("Variants", [_variants_table(result)]))
    if sec.diagnosis is not None:
        out.append(Section("Diagnosis: variants not faster than their parent",
                           _diagnosis(sec.diagnosis)))
    out += responsible_sections(result)
    notes = []
    if result.skipped:
        notes += [Para("Skipped runtimes:"),
                  Bullets([f"{name}: {why}" for name, why in result.skipped.items()])]
    if sec.warnings:
        notes += [Para("Model warnings:"), Bullets(list(sec.warnings))]
    if notes:
        out.append(Section("Skipped and warnings", notes, open=True))
    return out


def _threads(result: BenchResult):
    return result.rows[0].measurement.spec.threads if result.rows else "?"


def _latency_table(rows: list[Row]) -> Table:
    processes = any(r.measurement.processes > 1 for r in rows)
    first_call = any(r.first_call_memory is not None for r in rows)
    cells = []
    for r in rows:
        m, sp = r.measurement, r.speedup.speedup
        cells.append([r.entry, str(r.batch_size), f"{m.median_s * 1e3:.3f}",
                      f"{m.p90_s * 1e3:.3f}", f"{m.p99_s * 1e3:.3f}", f"{m.iqr_s * 1e3:.3f}",
                      f"{m.throughput_items_s:.1f}",
                      f"{sp.estimate:.2f}x [{sp.low:.2f}, {sp.high:.2f}]",
                      f"{r.memory_bytes / 2**20:.1f}", f"{r.load_s:.1f}"])
        if first_call:
            f = r.first_call_memory
            cells[-1].append(f"{f.peak_delta_bytes / 2**20:.1f}" if f else "—")
        if processes:
            spread = m.between_process_spread
            cells[-1].append(f"{m.processes}" + (f" ({spread:.1%})" if spread is not None
                                                  else ""))
    note = ("memory = resident memory added by loading the variant plus the peak added while "
            "running it (exact kernel high-water mark, VmHWM), "
            + ("each entry in a fresh process of its own (its weights included); first call = "
               "the peak its first call at this shape added (compilation, autotuning), apart "
               "from the steady-state runs." if first_call else
               "in one process, after the entries loaded before it (a module's weights, "
               "already in memory, are not counted; `memory = \"process\"` attributes them)."))
    if processes:
        note += (" processes = fresh worker processes the row was timed in, pooled; in "
                 "brackets the spread of their medians, (max - min) / median. Speed-up CIs "
                 "treat the processes as the units (a t-interval over the per-process ratios), "
                 "so they include run-to-run variation.")
    return Table(["variant / runtime", "batch", "median ms", "p90 ms", "p99 ms", "IQR ms",
                  "items/s", "speed-up [95% CI]", "memory MiB", "load s",
                  *(["first call MiB"] if first_call else []),
                  *(["processes (spread)"] if processes else [])], cells,
                 align="lrrrrrrlrr" + "r" * (first_call + processes), note=note)


def _warnings(rows: list[Row], where: str = "") -> list:
    """Every row's measurement and speed-up warnings (few samples, high spread, wide CI)."""
    warnings = [f"{r.entry} @ batch {r.batch_size}: {w}" for r in rows for w in r.warnings]
    return [Para(f"Measurement warnings{where}:"), Bullets(warnings)] if warnings else []


def _quality_table(result: BenchResult) -> Table:
    rows = []
    for name, q in result.quality.items():
        a = q.agreement or {}
        rows.append([name, f"{q.top1_accuracy:.4f}", str(q.n),
                     f"{a['top1_agreement']:.4f}" if a else "—",
                     f"{a['max_abs_diff']:.2e}" if a else "—", q.agreement_with or "—"])
    return Table(["variant / runtime", "top-1 accuracy", "n", "top-1 agreement",
                  "max abs diff", "vs"], rows, align="lrrrrl")


def _size_table(result: BenchResult) -> Table:
    rows = []
    for name, s in result.sizes.items():
        dtypes = ", ".join(f"{k}: {v / 1e6:.2f} MB" for k, v in s.dtype_bytes.items())
        rows.append([f"{name} ({s.format})", f"{s.file_bytes / 1e6:.2f}",
                     f"{s.gzip_bytes / 1e6:.2f}", f"{s.parameters:,}",
                     f"{s.nonzero_parameters:,}", dtypes])
    return Table(["artifact", "file MB", "gzip MB", "parameters", "non-zero", "dtypes"], rows,
                 align="lrrrrl")


_SEED_MATCHED = (" A reference trained with several seeds is shown seed-matched: a variant of "
                 "seed k (its own, or its lineage's) against the reference's seed k, any other "
                 "variant against its first seed (report.json keeps every pair).")


def _seed_matched(result: BenchResult, comparisons: list[dict]) -> list[dict]:
    return seed_matched(comparisons, {name: v.lineage
                                      for name, v in result.sections.variants.items()})


def _references_table(comparisons: list[dict]) -> Table:
    rows = [[f"{c['variant']} ({c['runtime']})",
             f"{c['reference']} ({c['reference_runtime']})", str(c["batch_size"]),
             f"{c['speedup']:.2f}x", *_trade_cells(c)[1:]] for c in comparisons]
    return Table(["variant", "vs", "batch", "speed-up", "size ratio", "top-1 Δ (points)"],
                 rows, align="llrrrr")


def _at_size(result: BenchResult, size: int, at: AtSize) -> list:
    out = [Para(f"The same networks timed on {size}x{size} inputs (interleaved, in one run). "
                "fp32 modules run as they are; post-training steps (PTQ, ONNX export) were "
                f"re-applied to their parent at {size}x{size}, calibrated on the same images "
                "resized. Accuracy belongs to the training scale and is not measured here."),
           _latency_table(at.rows)]
    if at.references:
        out.append(_references_table(_seed_matched(result, at.references)))
    if at.skipped:
        out.append(Bullets([f"{name}: not timed at {size}x{size}: {why}"
                            for name, why in at.skipped.items()]))
    return out + _warnings(at.rows, f" at {size}x{size}")


def _variants_table(result: BenchResult) -> Table:
    rows = []
    for name, v in result.sections.variants.items():
        f = v.facts
        notes = "; ".join([*f.warnings, *([f.note] if f.note else []), *int8_notes(f)])
        rows.append([name, " → ".join(v.lineage), ", ".join(v.runtimes), notes])
    return Table(["variant", "lineage", "runtimes", "notes"], rows, align="llll")


def int8_notes(facts) -> list[str]:
    """An int8 variant's number format (and why) and its accuracy guard's figures."""
    out = []
    if facts.int8_mode:
        out.append(f"int8 format {facts.int8_mode['mode']} ({facts.int8_mode['reason']})")
    guard = facts.int8_guard or {}
    if guard.get("parent_constant"):
        out.append("guard: not judged, the parent gave the same logits for every "
                   f"calibration input (untrained?) ({guard['runtime']})")
    elif guard.get("parent_undecided"):
        out.append("guard: not judged, the parent barely prefers any class (median top-1 "
                   f"probability {guard['parent_top1_prob']:.2f}; untrained?) "
                   f"({guard['runtime']})")
    elif "top1_agreement" in guard:
        out.append(f"guard: {guard['top1_agreement']:.1%} top-1 agreement with the parent on "
                   f"{guard['examples']} calibration examples ({guard['runtime']})")
    return out


def _diagnosis(findings: list[dict]) -> list:
    if not findings:
        return [Para("Every variant was at least 5% faster than its parent.")]
    return [Bullets([(Strong(f"{d['variant']} / {d['runtime']} @ batch {d['batch_size']}"),
                      f": {d['speedup']:.2f}x vs {d['parent']} / {d['parent_runtime']}. "
                      + " ".join(d["reasons"])) for d in findings])]


def _training(t) -> list:
    epochs = "; ".join(f"epoch {h['epoch']}: loss {h['train_loss']:.3f}" for h in t.history)
    return [Para(f"Trained on {t.train_examples or '?'} real Fashion-MNIST training images, "
                 f"tested on {t.test_examples or '?'} test images. {epochs}.")]


def _environment(env: dict) -> list:
    isa = ", ".join(k for k, v in env.get("isa", {}).items() if v) or "none detected"
    pk = env.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in pk.items() if v)
    features = env.get("cpu_features") or {}
    int8 = (f"; int8 class: {features['kind']} (VNNI: {'yes' if features['vnni'] else 'no'})"
            if features else "")
    return [Bullets([
        f"CPU: {env.get('cpu_model')} ({env.get('logical_cpus')} logical CPUs); ISA: {isa}"
        + int8,
        f"torch threads: {env.get('torch_threads')}; allocator: {env.get('allocator')}",
        f"Python {env.get('python')}; {versions}",
        f"CUDA: {env.get('cuda') or 'none'}",
        f"git commit: {env.get('git_commit')}"
        + (" (uncommitted changes)" if env.get("git_dirty") else "")
        + f"; date: {env.get('date')}"])]


def _stage_blocks(stages: dict[str, dict]) -> list:
    """Where each stage ran, when the report's stages come from more than one sitting (a
    measurement resumed with --resume-measurement)."""
    sittings = {(st.get("git_commit"), st.get("command")) for st in stages.values()}
    split = {name: st["processes"] for name, st in stages.items() if st.get("processes")}
    if len(sittings) < 2 and not split:
        return []
    lines = [(Strong(name), f": at commit {(st.get('git_commit') or '?')[:12]}"
              + (" (uncommitted changes)" if st.get("git_dirty") else "")
              + f", finished {st.get('date') or 'at an unrecorded time'}, ",
              Code(display_command(st.get("command", "?"))),
              *([_process_text(split[name])] if name in split else []))
             for name, st in stages.items()]
    ratios = ("each stage's ratios come from one sitting" if not split else
              "a stage resumed from the timing processes an earlier sitting finished pools "
              "them: its CIs treat each fresh process as a unit either way")
    many = f"{len(sittings)} sittings" if len(sittings) > 1 else "more than one sitting"
    return [Para(f"Measured in {many} on the same machine kind ({ratios}):"),
            Bullets(lines)]


def _process_text(processes: list[dict]) -> str:
    return "; its timing processes: " + ", ".join(
        f"{p['process']} at {(p.get('git_commit') or '?')[:12]}, ended {p.get('date') or '?'}"
        + (" (kept from an earlier sitting)" if p.get("reused") else "") for p in processes)


def display_command(command: str) -> str:
    """The command as a reader would type it in the project: the venv's interpreter as
    `python`, paths inside the project relative to it, other absolute paths shortened to
    their last two parts."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out = []
    for w in words:
        if w.startswith("/"):
            if "/.venv/bin/" in w or w.rsplit("/", 1)[-1].startswith("python"):
                w = w.rsplit("/", 1)[-1]
            else:
                for top in ("recipes/", "results/", "runs/", "scripts/", "benchmarks/"):
                    if f"/{top}" in w:
                        w = top + w.split(f"/{top}", 1)[1]
                        break
                else:
                    w = "…/" + "/".join(w.rstrip("/").split("/")[-2:])
        out.append(w if re.fullmatch(r"[\w@%+=:,./…-]+", w) else shlex.quote(w))
    return " ".join(out)


def _plots(result: BenchResult) -> dict[str, Figure]:
    from optbench.report.plots import ALL

    out = {}
    for name, plot in ALL.items():
        png = plot(result)
        if png:
            out[name] = Figure(name, png)
    return out


def _tie_note(best: dict) -> str:
    tied = best.get("tied_with") or []
    if not tied:
        return ""
    how = best.get("decided_by") or "picked as the most accurate"   # older search.json
    return f"; tied on speed with {', '.join(tied)}: decided by {how}"


def render_search(summary: dict) -> str:
    """search.json -> Markdown: every candidate's figures and the pick per batch size."""
    blocks = []
    for name, res in summary.items():
        rows = [[c["entry"], str(c["batch_size"]), f"{c['median_s'] * 1e3:.3f}",
                 f"{c['speedup_vs_fp32_eager']:.2f}x", f"{c['top1_accuracy']:.4f}",
                 f"{c['drop_points']:+.2f}", "yes" if c["within_budget"] else "no"]
                for c in res["candidates"]]
        picks = [(f"batch {batch}: ",
                  (Strong(best["entry"]), f" ({best['median_s'] * 1e3:.3f} ms, "
                   f"{best['speedup_vs_fp32_eager']:.2f}x){_tie_note(best)}")
                  if best else "none within budget")
                 for batch, best in res["best"].items()]
        skipped = [f"{cand}: {why}" for cand, why in res.get("skipped", {}).items()]
        blocks.append(Section(name, [
            Para(f"fp32 top-1 on the validation split: {res['baseline_accuracy']:.4f}; budget: "
                 f"at most {res['budget_points']} points lower." + (
                     " The pick is the fastest within budget; candidates whose speed-up CI over "
                     "it contains 1.0 are tied with it, and a tied one replaces it only if it is "
                     "significantly more accurate (McNemar p < 0.05 on the paired "
                     "predictions)." if any(b and "decided_by" in b for b in res["best"].values())
                     else "")),
            Table(["candidate / runtime", "batch", "median ms", "speed-up vs fp32 eager",
                   "top-1", "drop (points)", "within budget"], rows, align="lrrrrrl"),
            Bullets(picks),
            *([Para("Not candidates on this machine:"), Bullets(skipped)] if skipped else [])],
            open=True))
    return to_markdown(Document("Search under an accuracy budget", blocks))
