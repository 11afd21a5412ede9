"""scripts/headline.py: the README's table, one row per variant, one row per seeded step."""

import importlib.util
from pathlib import Path

from results_factory import result, row, size

ROOT = Path(__file__).resolve().parents[1]


def _headline():
    spec = importlib.util.spec_from_file_location("headline", ROOT / "scripts/headline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.headline


def test_a_seeded_step_is_one_row_with_the_mean_and_sd_over_its_seeds():
    accs = {"teacher": 0.93, "kd@1": 0.91, "kd@0": 0.90, "kd@2": 0.92, "kd-int8": 0.905}
    # seed 1 is the fastest seed: the row still times seed 0, the one the chain starts from
    rows = [row("teacher", "torch-eager", 0.010), row("kd@1", "torch-eager", 0.001),
            row("kd@0", "torch-eager", 0.002), row("kd@0", "onnxruntime", 0.0025),
            row("kd@2", "torch-eager", 0.003), row("kd-int8", "onnxruntime", 0.0005)]
    quality = {f"{v} / {rt}": {"top1_accuracy": accs[v], "n": 1000}
               for v, rt in {(r["variant"], r["runtime"]) for r in rows}}
    sizes = {"teacher": size(40_000_000), "kd@0": size(4_000_000), "kd@1": size(4_000_000),
             "kd@2": size(4_000_000), "kd-int8": size(1_000_000)}
    robustness = {v: {"accuracy": {"0.03": a}} for v, a in
                  {"kd@0": 0.50, "kd@1": 0.60, "kd@2": 0.70, "teacher": 0.40}.items()}
    report = result(rows, quality=quality, sizes=sizes,
                    sections={"robustness": robustness})

    lines = _headline()(report).splitlines()
    body = [line.split(" | ") for line in lines[2:]]
    assert [cells[0].lstrip("| ") for cells in body] == [
        "teacher (torch-eager)", "kd, 3 seeds (torch-eager; timing of kd@0)",
        "kd-int8 (onnxruntime)"]
    teacher, kd, int8 = body
    assert kd[1] == "91.00 ± 1.00"         # (90, 91, 92): mean 91, sample sd 1
    assert kd[3] == "2.00" and kd[4] == "10.0x"   # seed 0's latency and size ratio
    assert kd[5] == "60.0 ± 10.0 |"        # PGD over the three seeds
    assert int8[1] == "90.50" and int8[5] == "— |"
    assert teacher[1] == "93.00" and teacher[5] == "40.0 |"
