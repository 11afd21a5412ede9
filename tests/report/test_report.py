import re

import pytest
import torch

from optbench.bench import BenchConfig, bench
from optbench.report import render_html
from optbench.report.plots import pareto_front


def test_pareto_front_known_answer():
    # (latency, accuracy): b dominates c (faster and more accurate); a and b trade off
    points = [(1.0, 0.80), (2.0, 0.90), (3.0, 0.85), (0.5, 0.70), (2.0, 0.89)]
    assert pareto_front(points) == [0, 1, 3]


@pytest.fixture(scope="module")
def result(synthetic):
    from conftest import TinyNet

    torch.manual_seed(0)
    config = BenchConfig(runtimes=("torch-eager", "onnxruntime"), batch_sizes=(1, 4),
                         input_shape=(1, 16, 16), min_time_s=0.05, max_time_s=0.3)
    return bench(TinyNet().eval(), config, label="tiny", eval_data=synthetic).to_dict()


def test_html_report_is_self_contained_with_all_plots(result):
    page = render_html(result)
    assert page.startswith("<!doctype html>")
    images = re.findall(r'<img alt="(\w+)" id="plot-\w+" src="data:image/png;base64,', page)
    assert images == ["accuracy_vs_latency", "size_per_variant", "latency_distributions",
                      "throughput_vs_batch"]
    assert not re.search(r'(src|href)="https?://', page)
    assert "<table" in page and "tiny / onnxruntime" in page


def test_save_bench_writes_readable_files(result, tmp_path):
    from optbench.report import save_bench

    paths = save_bench(result, tmp_path)
    assert set(paths) == {"json", "csv", "md", "html"}
    assert all(p.stat().st_mode & 0o044 for p in paths.values())  # group/other can read


def test_predictions_are_saved_beside_the_report_and_load_without_pickle(synthetic, tmp_path):
    from conftest import TinyNet

    from optbench.report import save_bench
    from optbench.report.store import load_predictions

    torch.manual_seed(0)
    config = BenchConfig(runtimes=("torch-eager", "onnxruntime"), batch_sizes=(1,),
                         input_shape=(1, 16, 16), min_time_s=0.02, max_time_s=0.1)
    res = bench(TinyNet().eval(), config, label="tiny", eval_data=synthetic)
    paths = save_bench(res, tmp_path, html=False)
    loaded = load_predictions(paths["predictions"])
    assert set(loaded) == {"tiny / torch-eager", "tiny / onnxruntime", "labels"}
    assert len(loaded["labels"]) == len(synthetic) and loaded["labels"].dtype.kind == "i"
    quality = res.quality["tiny / onnxruntime"]
    top1 = (loaded["tiny / onnxruntime"] == loaded["labels"]).mean()
    assert quality.top1_accuracy == pytest.approx(top1)
    eager_ok = loaded["tiny / torch-eager"] == loaded["labels"]
    ort_ok = loaded["tiny / onnxruntime"] == loaded["labels"]
    paired = quality.paired   # against the first entry, eager
    assert paired["a_only"] == int((eager_ok & ~ort_ok).sum())
    assert paired["b_only"] == int((~eager_ok & ort_ok).sum())


def test_who_pays_says_which_class_changes_are_significant():
    from optbench.report.responsible import paired_text

    paired = {"delta": {"estimate": -0.01, "low": -0.02, "high": 0.0}, "p_value": 0.04,
              "a_only": 30, "b_only": 20,
              "per_class": [{"delta": -0.05, "p_holm": 0.01}, None,
                            {"delta": 0.01, "p_holm": 0.6}]}
    text = paired_text(paired, ["shirt", "bag", "coat"])
    assert "-1.00 points (95% CI -2.00 to +0.00; McNemar p = 0.04" in text
    assert "significant class changes: shirt -5.0 (Holm p = 0.01)" in text and "coat" not in text
    paired["per_class"][0]["p_holm"] = 0.2
    assert "no class change is significant" in paired_text(paired, ["shirt", "bag", "coat"])


def test_warnings_of_the_other_size_pass_reach_the_markdown(result):
    import copy

    from optbench.report import render_bench

    data = copy.deepcopy(result)
    row = copy.deepcopy(data["rows"][0])
    row["measurement"]["warnings"] = ["few samples: 8 < 20 (max_time_s reached)"]
    data["sections"]["at_sizes"] = {"224": {"rows": [row]}}
    text = render_bench(data)
    assert "Measurement warnings at 224x224:" in text
    assert f"- {row['entry']} @ batch {row['batch_size']}: few samples: 8 < 20" in text


def test_training_runs_table_curves_and_the_verdict_over_seeds():
    """Each training step's epochs, last validation top-1, wall and CPU minutes; the per-epoch
    curves; and the plain sentence on a difference checked over seeds."""
    from results_factory import result as make
    from results_factory import row

    from optbench.report.document import to_markdown
    from optbench.report.plots import training_curves
    from optbench.report.render import build_document

    def hist(accs, cpu_from=0, clipped=None):
        return [{"epoch": i + 1, "train_loss": 1.0, "val_accuracy": a, "seconds": 30.0,
                 **({"cpu_seconds": 54.0} if i >= cpu_from else {}),
                 **({"clipped_steps": clipped[i], "max_grad_norm": 3.0 + i}
                    if clipped and clipped[i] is not None else {})}
                for i, a in enumerate(accs)]

    variants = {
        "teacher": {"lineage": ["r50", "teacher"], "runtimes": [],
                    "info": {"method": "train",
                             "history": hist([0.9, 0.93], cpu_from=1, clipped=[None, 7])}},
        "kd@0": {"lineage": ["m", "kd@0"], "runtimes": [],
                 "info": {"method": "distill", "config": {"teacher": "teacher"},
                          "history": hist([0.88, 0.91, 0.92])}},
        "pruned": {"lineage": ["m", "kd@0", "pruned"], "runtimes": [],
                   "info": {"method": "prune-structured", "finetune": hist([0.9])}},
        "int8": {"lineage": ["m", "int8"], "runtimes": [], "info": {"method": "ptq-pt2e"}},
        "kd-int8": {"lineage": ["m", "kd-int8"], "runtimes": [],
                    "info": {"method": "distill", "config": {
                        "teacher": "teacher-int8", "teacher_runtime": "onnxruntime"},
                        "history": [{**hist([0.9])[0], "val_examples": 2000}]}}}
    target = {"target": "kd vs scratch", "variant": "kd", "reference": "scratch",
              "metric": "accuracy_delta_points", "at_least": 0.5, "seeds": [0, 1, 2],
              "measured": 1.1, "met": True, "short_by": 0.0, "verdict": "met",
              "ci95": [0.85, 1.35], "t_p": 0.004,
              "per_seed": [{"seed": s, "points": p} for s, p in ((0, 1.2), (1, 1.0), (2, 1.1))]}
    res = make(rows=[row(f"kd@{s}", "torch-eager", 0.01) for s in (0, 1)],
               quality={f"kd@{s} / torch-eager": {"top1_accuracy": 0.9, "n": 10}
                        for s in (0, 1)},
               sections={"variants": variants, "targets": [target]})
    md = to_markdown(build_document(res))
    assert "| kd@0 | distill (teacher: teacher) | 3 | 92.00 | 1.5 | 2.7 | — |" in md
    assert "| pruned | prune-structured | 1 | 90.00 | 0.5 | 0.9 | — |" in md
    # an epoch from before CPU time and clip counts were recorded: the sums are lower bounds,
    # and say so
    assert "| teacher | train | 2 | 93.00 | 1.0 | ≥ 0.9 | ≥ 7 (4.0) |" in md
    assert "steps clipped (largest gradient norm)" in md
    assert "| int8 | ptq" not in md
    # the split's size recorded: the 95% CI of 90% on 2000 images is ±1.31 points
    assert "| kd-int8 | distill (teacher: teacher-int8, on onnxruntime) | 1 | 90.00 ± 1.31 |" in md
    assert "**kd adds 1.10 points**" in md and "p = 0.004" in md
    target.update(t_p=0.3, ci95=[-0.5, 2.7], verdict="undecided")
    assert "**no detectable difference**" in to_markdown(build_document(res))
    assert training_curves(res).startswith(b"\x89PNG")
    variants["teacher"]["info"]["history"] = hist([0.9, 0.93])   # no step clipped anything
    unclipped = make(rows=[row("kd@0", "torch-eager", 0.01)], sections={"variants": variants})
    md = to_markdown(build_document(unclipped))
    assert "| teacher | train | 2 | 93.00 | 1.0 | 1.8 |\n" in md and "steps clipped" not in md
    assert "trained on" not in md and "Trained on" not in md   # no device recorded: no column
    assert "| threads |" not in md   # none recorded, or all the same: no column
    for name, threads in (("teacher", 2), ("kd@0", 1)):   # the students trained with --jobs
        for h in variants[name]["info"]["history"]:
            h["threads"] = threads
    md = to_markdown(build_document(make(rows=[row("kd@0", "torch-eager", 0.01)],
                                         sections={"variants": variants})))
    assert "| teacher | train | 2 | 93.00 | 1.0 | 1.8 | 2 |" in md
    assert "| kd@0 | distill (teacher: teacher) | 3 | 92.00 | 1.5 | 2.7 | 1 |" in md
    assert "their wall minutes overlap" in md
    # where each epoch trained: a teacher resumed on another machine shows both
    variants["teacher"]["info"]["history"][0].update(device="AMD EPYC (avx2)", precision="fp32")
    variants["teacher"]["info"]["history"][1].update(device="Intel Xeon (amx)",
                                                     precision="bf16", compiled=True)
    md = to_markdown(build_document(make(rows=[row("kd@0", "torch-eager", 0.01)],
                                         sections={"variants": variants})))
    assert "| 2 | AMD EPYC (avx2), fp32; Intel Xeon (amx), bf16, compiled |" in md
    assert '"compiled" where train.compile was on' in md   # said only where some epoch was
    del variants["teacher"]["info"]["history"][1]["compiled"]
    assert "| 1 | — |" in md and "Trained on: the device of each epoch" in md
    # the first epoch predates the record, and a record without a precision is fp32's
    del variants["teacher"]["info"]["history"][0]["device"]
    del variants["teacher"]["info"]["history"][1]["precision"]
    md = to_markdown(build_document(make(rows=[row("kd@0", "torch-eager", 0.01)],
                                         sections={"variants": variants})))
    assert "train.compile" not in md   # no epoch compiled: not said
    assert "| 2 | ≥ Intel Xeon (amx), fp32 |\n" in md


def test_training_curves_draw_the_mean_of_a_seeded_step():
    """Seeds of one step share a colour, drawn thin and unlabelled; their mean over the epochs
    every seed reached is the labelled line; a single run keeps its name."""
    from results_factory import result as make

    from optbench.report.plots import curve_series

    def info(accs):
        return {"method": "train", "history": [{"epoch": i + 1, "val_accuracy": a}
                                               for i, a in enumerate(accs)]}

    variants = {"teacher": {"lineage": ["r", "teacher"], "runtimes": [],
                            "info": info([0.90, 0.93])},
                "kd@0": {"lineage": ["m", "kd@0"], "runtimes": [],
                         "info": info([0.80, 0.90, 0.92])},
                "kd@1": {"lineage": ["m", "kd@1"], "runtimes": [],
                         "info": info([0.70, 0.80])},   # a seed still training: 2 epochs
                "int8": {"lineage": ["m", "int8"], "runtimes": [], "info": {"method": "ptq"}}}
    series = curve_series(make(rows=[], sections={"variants": variants}))
    by_kind = {}
    for s in series:
        by_kind.setdefault(s["kind"], []).append(s)
    assert [s["label"] for s in by_kind["single"]] == ["teacher"]
    assert [s["name"] for s in by_kind["seed"]] == ["kd@0", "kd@1"]
    assert all(s["label"] is None for s in by_kind["seed"])
    (mean,) = by_kind["mean"]
    assert mean["label"] == "kd: mean of 2 seeds" and mean["epochs"] == [1, 2]
    assert mean["values"] == pytest.approx([0.75, 0.85])
    assert {s["colour"] for s in series if s["kind"] != "single"} == {mean["colour"]}
    assert mean["colour"] != by_kind["single"][0]["colour"]
