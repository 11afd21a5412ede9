import numpy as np
import pytest
import torch
from results_factory import result, row

from optbench.bench import BenchConfig
from optbench.diagnose import diagnose
from optbench.transforms.base import Context, Variant


def _row(variant, median, runtime="torch-eager", batch=1, threads=2):
    return row(variant, runtime, median, batch=batch, threads=threads)


def diagnose_rows(rows, env, variants):
    return diagnose(result(rows, env=env), variants)


def _variants(**infos):
    out = {"fp32": Variant("fp32", lineage=("net", "fp32"))}
    for name, info in infos.items():
        out[name] = Variant(name, lineage=("net", "fp32", name), info=info)
    return out


ENV = {"isa": {"avx512_vnni": True}, "allocator": "tcmalloc"}


@pytest.mark.parametrize("info,expected", [
    ({"dynamic": True, "int8": True, "ops": {"conv": 20, "int8_conv": 20, "fp32_conv": 0}},
     "dynamic int8 on a conv net"),
    ({"unstructured_sparsity": True}, "unstructured sparsity"),
    ({"int8": True, "ops": {"conv": 10, "fp32_conv": 4}, "activation_type": "int8"},
     "4 of 10 convolutions were left in fp32.*use uint8"),
    ({"int8": True, "ops": {"conv": 10, "int8_conv": 10, "fp32_conv": 0},
      "activation_type": "int8"}, "signed int8 activations.*activation_type = 'uint8'"),
    ({"channels": {"conv1": 30, "conv2": 64}}, "not multiples of 8"),
    ({"int8": True, "ops": {"compute_ops": 5, "fake_quant_ops": 7}}, "fake-quant ops remain"),
])
def test_known_causes_are_named(info, expected):
    rows = [_row("fp32", 0.010), _row("v", 0.011)]
    findings = diagnose_rows(rows, ENV, _variants(v=info))
    assert len(findings) == 1 and findings[0]["parent"] == "fp32"
    assert any(__import__("re").search(expected, r) for r in findings[0]["reasons"])


def test_machine_level_causes():
    rows = [_row("fp32", 0.010, batch=8), _row("v", 0.010, batch=8, threads=1)]
    env = {"isa": {"avx512_vnni": False, "amx_int8": False}, "allocator": "glibc"}
    reasons = diagnose_rows(rows, env, _variants(v={"int8": True}))[0]["reasons"]
    text = " ".join(reasons)
    assert "lacks VNNI and AMX" in text and "thread count changed" in text and "tcmalloc" in text


def test_compares_with_the_parent_on_the_same_runtime():
    rows = [_row("fp32", 0.010), _row("fp32", 0.004, runtime="torch-compile"),
            _row("v", 0.006)]
    assert diagnose_rows(rows, ENV, _variants(v={})) == []  # 1.7x vs eager


def test_bf16_in_eager_is_explained():
    rows = [_row("fp32", 0.010), _row("v", 0.012)]
    env = {**ENV, "isa": {"avx512_vnni": True, "avx512_bf16": True}}
    reasons = diagnose_rows(rows, env, _variants(v={"dtype": "bfloat16"}))[0]["reasons"]
    assert any("through torch-compile" in r for r in reasons)
    assert not any("emulated" in r for r in reasons)


@pytest.mark.parametrize("runtime", ["torch-eager", "torch-compile"])
def test_emulated_bf16_is_named_and_not_sent_to_compile(runtime):
    """Without AVX512-BF16/AMX, bf16 is slow under compile too (0.06x of fp32 on an AVX2-only
    EPYC, results/peers_avx2): the advice is fp32, not torch.compile."""
    rows = [_row("fp32", 0.010, runtime=runtime), _row("v", 0.070, runtime=runtime)]
    reasons = diagnose_rows(rows, ENV, _variants(v={"dtype": "bfloat16"}))[0]["reasons"]
    assert any("bf16 is emulated" in r and "keep fp32" in r for r in reasons)
    assert not any("through torch-compile" in r for r in reasons)


def test_faster_variants_are_not_flagged():
    rows = [_row("fp32", 0.010), _row("v", 0.004, runtime="onnxruntime")]
    assert diagnose_rows(rows, ENV, _variants(v={"int8": True})) == []


def test_search_keeps_every_candidate_and_picks_the_fastest_within_budget(synthetic, tmp_path):
    from conftest import TinyNet

    from optbench.search import SearchConfig, search
    from optbench.train import TrainConfig, train

    torch.manual_seed(0)
    model = TinyNet()
    train(model, synthetic, TrainConfig(epochs=5, batch_size=32, lr=0.05, seed=3), progress=False)
    ctx = Context(example_input=synthetic.batch(0, 4), calib_data=synthetic, val_data=synthetic,
                  workdir=tmp_path, progress=False)
    candidates = ({"method": "ptq-ort-static", "calibrate_method": "minmax"},
                  {"method": "ptq-ort-static", "calibrate_method": "percentile"},
                  {"method": "ptq-nncf", "calibrate_method": "minmax", "subset_size": 128},
                  {"method": "reduced-precision", "dtype": "bfloat16"})
    result = search(model.eval(), ctx, SearchConfig(budget_points=2.0),
                    BenchConfig(batch_sizes=(1, 4), input_shape=(1, 16, 16), min_time_s=0.05,
                                max_time_s=0.5), candidates=candidates)
    built = 5 - len(result.skipped)   # bf16 is skipped on CPUs without bf16 instructions
    assert len(result.candidates) == 2 * built   # fp32 + the candidates, at 2 batch sizes
    assert {"ptq-nncf-minmax-128 / openvino"} <= {c["entry"] for c in result.candidates}
    for batch, best in result.best.items():
        ok = [c for c in result.candidates if c["batch_size"] == batch and c["within_budget"]
              and c["variant"] != "fp32"]
        if not ok:
            assert best is None
            continue
        fastest = min(ok, key=lambda c: c["median_s"])
        if best["decided_by"] == "speed":
            assert best["median_s"] == fastest["median_s"] and best["tied_with"] == []
        else:   # tied on speed with the fastest: the most accurate of the tied
            tied = [c for c in ok if c["entry"] in best["tied_with"]]
            assert fastest in tied or best["entry"] == fastest["entry"]
            assert all(best["top1_accuracy"] >= c["top1_accuracy"] for c in tied)
    for c in result.candidates:
        assert c["within_budget"] == (c["drop_points"] <= 2.0)


def _timed(entry, samples, accuracy):
    from optbench.measure.measurement import Measurement, TaskSpec

    m = Measurement(TaskSpec(label=entry, runtime="x", device="cpu", batch_size=1, threads=2),
                    tuple(samples))
    row = {"entry": entry, "variant": entry, "batch_size": 1, "median_s": m.median_s,
           "top1_accuracy": accuracy, "within_budget": True}
    return row, m


def test_search_pick_lets_accuracy_decide_only_when_speed_is_tied_and_it_is_significant():
    from optbench.search import pick

    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.02, 60)
    fast, m_fast = _timed("fast", 0.010 * (1 + noise), 0.80)
    same, m_same = _timed("same", 0.0101 * (1 + noise[::-1]), 0.85)   # within noise, better
    slow, m_slow = _timed("slow", 0.020 * (1 + noise), 0.90)           # 2x slower, best
    measured = {("fast", 1): m_fast, ("same", 1): m_same, ("slow", 1): m_slow}
    # 200 examples: "same" right on 170 (85%), "fast" on 160 (80%)
    labels = np.zeros(200, int)
    clear = {"labels": labels, "fast": np.r_[np.zeros(160, int), np.ones(40, int)],
             "same": np.r_[np.zeros(170, int), np.ones(30, int)]}   # 10 discordant, all one way
    chosen = pick([fast, same, slow], measured, clear)
    assert chosen["entry"] == "same" and chosen["tied_with"] == ["fast"]
    assert chosen["decided_by"].startswith("accuracy (tied on speed; McNemar p = 0.00")
    # the same 5-point gap made of 50 discordant examples split 30/20: chance can do that
    noisy = {"labels": labels,
             "fast": np.r_[np.zeros(130, int), np.ones(20, int), np.zeros(30, int),
                           np.ones(20, int)],
             "same": np.r_[np.zeros(130, int), np.zeros(20, int), np.ones(30, int),
                           np.zeros(20, int)]}
    assert (noisy["fast"] == 0).mean() == 0.80 and (noisy["same"] == 0).mean() == 0.85
    kept = pick([fast, same, slow], measured, noisy)
    assert kept["entry"] == "fast" and kept["tied_with"] == ["same"]
    assert kept["decided_by"].startswith("speed (tied on speed; no tied candidate")
    assert kept["accuracy_tests"]["same"] > 0.05
    untested = pick([fast, same, slow], measured)           # no predictions: no test, no swap
    assert untested["entry"] == "fast" and untested["accuracy_untested"] == ["same"]
    alone = pick([fast, slow], measured)
    assert alone["entry"] == "fast" and alone["decided_by"] == "speed"
    assert pick([{**slow, "within_budget": False}], measured) is None


def test_a_seeded_reference_is_shown_seed_matched():
    """Against references trained with several seeds, a variant meets the replicate of its own
    seed (or its lineage's), an unseeded variant the first seed; every other pair is dropped."""
    from optbench.diagnose import seed_matched

    variants = ["teacher", "kd@0", "kd@1", "kd@7", "int8", "scratch@1"]
    refs = ["scratch@0", "scratch@1", "teacher"]
    pairs = [{"variant": v, "reference": r} for v in variants for r in refs if r != v]
    lineages = {"int8": ("m", "kd@1", "pruned", "int8"), "kd@1": ("m", "kd@1")}
    kept = {(c["variant"], c["reference"]) for c in seed_matched(pairs, lineages)}
    assert kept == {("teacher", "scratch@0"), ("kd@0", "scratch@0"), ("kd@0", "teacher"),
                    ("kd@1", "scratch@1"), ("kd@1", "teacher"), ("kd@7", "scratch@0"),
                    ("kd@7", "teacher"), ("int8", "scratch@1"), ("int8", "teacher"),
                    ("scratch@1", "teacher")}
    unseeded = [{"variant": "a", "reference": "b"}, {"variant": "b", "reference": "a"}]
    assert seed_matched(unseeded, {}) == unseeded
