"""Search under an accuracy budget: try every applicable int8/bf16 back-end, measure them all in
one interleaved run on this machine, keep the fastest one that meets the budget — and keep every
candidate's figures, not just the first that passes."""

from __future__ import annotations

import dataclasses

from optbench.bench import BenchConfig, Entry, bench_entries
from optbench.config import Config
from optbench.errors import ConfigError
from optbench.transforms import Context, Variant, config_from_dict, optimize

DEFAULT_CANDIDATES = (
    {"method": "ptq-pt2e"},
    {"method": "ptq-ort-static", "calibrate_method": "minmax"},
    {"method": "ptq-ort-static", "calibrate_method": "percentile"},
    {"method": "ptq-ort-static", "calibrate_method": "entropy"},
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
    best: dict[int, dict | None]         # batch size -> the fastest candidate within budget
    bench: object


def search(model, ctx: Context, config: SearchConfig | None = None,
           bench_config: BenchConfig | None = None,
           candidates: tuple[dict, ...] = DEFAULT_CANDIDATES) -> SearchResult:
    config, bench_config = config or SearchConfig(), bench_config or BenchConfig()
    data = ctx.require("val_data", "search")
    base = Variant("fp32", model=model, lineage=("fp32",))
    variants = [base]
    for raw in candidates:
        cfg = config_from_dict(raw)
        name = "-".join(str(v) for v in raw.values())
        step = f"{ctx.step}-{name}" if ctx.step else name   # files unique per search input
        variants.append(optimize(base, cfg, ctx.for_step(step), name=name))
    entries = [Entry("fp32", "torch-eager", model)]
    for v in variants:
        entries += [Entry(v.name, rt, v.artifact_for(rt)) for rt in v.runtimes[:1]]
    result = bench_entries(entries, bench_config, eval_data=data, label="search")
    accuracy = {k: q.top1_accuracy for k, q in result.quality.items()}
    base_acc = accuracy["fp32 / torch-eager"]
    rows = [_row(r, accuracy[r.entry], base_acc, config) for r in result.rows]
    best = {}
    for bs in bench_config.batch_sizes:
        ok = [r for r in rows if r["batch_size"] == bs and r["within_budget"]
              and r["variant"] != "fp32"]
        best[bs] = min(ok, key=lambda r: r["median_s"]) if ok else None
    return SearchResult(baseline_accuracy=base_acc, candidates=rows, best=best, bench=result)


def _row(row, acc: float, base_acc: float, config: SearchConfig) -> dict:
    drop = (base_acc - acc) * 100
    return {"entry": row.entry, "variant": row.variant, "runtime": row.runtime,
            "batch_size": row.batch_size, "median_s": row.measurement.median_s,
            "speedup_vs_fp32_eager": row.speedup.speedup.estimate, "top1_accuracy": acc,
            "drop_points": drop, "within_budget": drop <= config.budget_points + 1e-9}
