"""Search under an accuracy budget: try every applicable int8/bf16 back-end, measure them all in
one interleaved run on this machine, keep the fastest one that meets the budget — and keep every
candidate's figures, not just the first that passes.

A candidate whose speed-up CI over the fastest one contains 1.0 is tied with it: the timing
cannot tell them apart, so among tied candidates the most accurate one is picked. Candidates
that cannot run here (OpenVINO not installed, bf16 on a CPU without bf16 instructions) are
listed as skipped, with the reason.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from optbench.bench import BenchConfig, Entry, bench_entries
from optbench.config import Config
from optbench.errors import ConfigError, RuntimeUnavailableError
from optbench.isa import cpu_features
from optbench.transforms import Context, Variant, config_from_dict, optimize

DEFAULT_CANDIDATES = (
    {"method": "ptq-pt2e"},
    {"method": "ptq-ort-static", "calibrate_method": "minmax"},
    {"method": "ptq-ort-static", "calibrate_method": "percentile"},
    {"method": "ptq-ort-static", "calibrate_method": "entropy"},
    {"method": "ptq-nncf"},
    {"method": "ptq-nncf", "calibrate_method": "minmax"},
    {"method": "reduced-precision", "dtype": "bfloat16"},
)


@dataclasses.dataclass(frozen=True)
class SearchConfig(Config):
    budget_points: float = 0.5          # allowed top-1 drop, in percentage points, on val data

    def __post_init__(self):
        if self.budget_points < 0:
            raise ConfigError(f"SearchConfig.budget_points must be >= 0, got {self.budget_points}")


@dataclasses.dataclass
class SearchResult:
    baseline_accuracy: float
    candidates: list[dict]               # every candidate x runtime x batch, with its figures
    best: dict[int, dict | None]   # batch size -> the pick (fastest within budget; see pick)
    bench: object
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)   # candidate -> why


def search(model, ctx: Context, config: SearchConfig | None = None,
           bench_config: BenchConfig | None = None,
           candidates: tuple[dict, ...] = DEFAULT_CANDIDATES) -> SearchResult:
    config, bench_config = config or SearchConfig(), bench_config or BenchConfig()
    data = ctx.require("val_data", "search")
    base = Variant("fp32", model=model, lineage=("fp32",))
    variants, skipped = [base], {}
    for raw in candidates:
        cfg = config_from_dict(raw)
        name = "-".join(str(v) for v in raw.values())
        step = f"{ctx.step}-{name}" if ctx.step else name   # files unique per search input
        reason = _cannot_run_here(raw)
        if reason:
            skipped[name] = reason
            continue
        try:
            variants.append(optimize(base, cfg, ctx.for_step(step), name=name))
        except RuntimeUnavailableError as exc:     # e.g. OpenVINO/NNCF not installed
            skipped[name] = str(exc)
    entries = [Entry("fp32", "torch-eager", model)]
    for v in variants:
        entries += [Entry(v.name, rt, v.artifact_for(rt)) for rt in v.runtimes[:1]]
    result = bench_entries(entries, bench_config, eval_data=data, label="search")
    accuracy = {k: q.top1_accuracy for k, q in result.quality.items()}
    base_acc = accuracy["fp32 / torch-eager"]
    rows = [_row(r, accuracy[r.entry], base_acc, config) for r in result.rows]
    measured = {(r.entry, r.batch_size): r.measurement for r in result.rows}
    best = {bs: pick([r for r in rows if r["batch_size"] == bs], measured,
                     result.predictions)
            for bs in bench_config.batch_sizes}
    return SearchResult(baseline_accuracy=base_acc, candidates=rows, best=best, bench=result,
                        skipped=skipped)


def pick(rows: list[dict], measured: dict, predictions: dict | None = None,
         alpha: float = 0.05) -> dict | None:
    """The fastest candidate within budget. When others' speed-up CIs over it contain 1.0
    (tied on speed), a tied candidate replaces it only if it is *significantly* more accurate:
    exact McNemar test on the paired per-example predictions, p < alpha. Without predictions, or
    with a difference the test cannot tell from chance, the fastest stays (an untested 2.3-point
    edge on a random-weight model once chose the slower path). Rows: one batch size's
    candidates; `measured`: (entry, batch) -> Measurement, for the paired/process CI between
    two rows; `predictions`: entry -> top-1 class per example, plus "labels"."""
    from optbench.measure.compare import ratio_between
    from optbench.stats import paired_accuracy

    ok = [r for r in rows if r["within_budget"] and r["variant"] != "fp32"]
    if not ok:
        return None
    fastest = min(ok, key=lambda r: r["median_s"])
    tied = [fastest]
    for r in ok:
        if r is fastest:
            continue
        pair = {"a": measured[(fastest["entry"], fastest["batch_size"])],
                "b": measured[(r["entry"], r["batch_size"])]}
        ci = ratio_between("b", "a", pair).speedup      # > 1: b is faster than a
        if ci.low <= 1.0 <= ci.high:
            tied.append(r)

    def better_p(r) -> float | None:     # McNemar p of r against the fastest, if r is better
        preds = predictions or {}
        if r is fastest or r["top1_accuracy"] <= fastest["top1_accuracy"] or not (
                r["entry"] in preds and fastest["entry"] in preds and "labels" in preds):
            return None
        truth = np.asarray(preds["labels"])
        return paired_accuracy(np.asarray(preds[r["entry"]]) == truth,
                               np.asarray(preds[fastest["entry"]]) == truth).p_value

    tests = {r["entry"]: better_p(r) for r in tied}
    better = [r for r in tied if tests[r["entry"]] is not None and tests[r["entry"]] < alpha]
    chosen = max(better, key=lambda r: (r["top1_accuracy"], -r["median_s"])) if better \
        else fastest
    untested = [r["entry"] for r in tied if r is not fastest
                and r["top1_accuracy"] > fastest["top1_accuracy"] and tests[r["entry"]] is None]
    return {**chosen, "tied_with": [r["entry"] for r in tied if r is not chosen],
            "accuracy_tests": {k: v for k, v in tests.items() if v is not None},
            "accuracy_untested": untested,
            "decided_by": ("speed" if len(tied) == 1 else
                           "accuracy (tied on speed; McNemar p = "
                           f"{tests[chosen['entry']]:.3g})" if chosen is not fastest else
                           "speed (tied on speed; no tied candidate significantly more "
                           "accurate)")}


def _cannot_run_here(raw: dict) -> str | None:
    if raw.get("method") == "reduced-precision" and raw.get("dtype", "bfloat16") == "bfloat16":
        cpu = cpu_features()
        if cpu.x86 and not (cpu.avx512_bf16 or cpu.amx_bf16):
            return (f"this {cpu.kind} CPU has no AVX512-BF16 or AMX: bf16 would be emulated "
                    "(slow), so it is not a candidate here")
    return None


def _row(row, acc: float, base_acc: float, config: SearchConfig) -> dict:
    drop = (base_acc - acc) * 100
    return {"entry": row.entry, "variant": row.variant, "runtime": row.runtime,
            "batch_size": row.batch_size, "median_s": row.measurement.median_s,
            "speedup_vs_fp32_eager": row.speedup.speedup.estimate, "top1_accuracy": acc,
            "drop_points": drop, "within_budget": drop <= config.budget_points + 1e-9}
