"""scripts/pruning_start.py: what a recipe's structured pruning leaves before fine-tuning, per
rounding and BatchNorm re-estimation, from a finished input; an unfinished one is refused."""

import os
import re
import subprocess
import sys
from pathlib import Path

from test_teacher_fidelity import RECIPE as FIDELITY_RECIPE

from optbench.pipeline import Recipe, run_recipe

ROOT = Path(__file__).resolve().parents[2]
# the fidelity test's recipe (a resnet18 teacher trained a few steps) and a pruning step
RECIPE = FIDELITY_RECIPE + """
[[steps]]
name = "pruned"
method = "prune-structured"
input = "teacher"
ratio = 0.3
round_to = 16
finetune = { epochs = 1, batch_size = 64, max_steps_per_epoch = 2 }
"""


def _script(recipe: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "pruning_start.py"),
                           str(recipe), str(out), "--step", "pruned", *extra],
                          capture_output=True, text=True, env=env, timeout=300)


def test_pruning_start_per_rounding_from_a_finished_input(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "out"
    refused = _script(recipe, out, "--importance", "l1")
    assert refused.returncode != 0
    assert "0 of 1 epochs finished; let the recipe's run finish the step first" in refused.stderr
    wrong = _script(recipe, out, "--step", "teacher")
    assert wrong.returncode != 0 and "must name a prune-structured step" in wrong.stderr

    run_recipe(Recipe.from_toml(recipe), out, progress=False, measure=False)
    done = _script(recipe, out, "--importance", "l1")
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\| 0.3 \| layer \| (down|nearest) \| l1 \| (.+?) \| ([\d.]+) \| "
                      r"([\d.]+) \| (\S+) (\d+) -> (\d+) \| ([\d.]+) \|$", done.stdout, re.M)
    assert len(rows) == 4, done.stdout
    by = {(r[0], r[1].startswith("re-estimated")): r for r in rows}
    # resnet18's 64-channel layers at 30% keep 44.8: 32 when rounded down, 48 to the nearest
    assert by[("down", True)][5:7] == ("64", "32")
    assert int(by[("nearest", True)][6]) / int(by[("nearest", True)][5]) >= 0.5
    assert float(by[("down", True)][2]) < float(by[("nearest", True)][2]) < 1.0
    assert all(0 <= float(r[7]) <= 100 for r in rows)
    model = _script(recipe, out, "--importance", "bn", "--rounding", "nearest", "--input", "net")
    assert model.returncode == 0, model.stderr   # a recipe model: built, nothing to finish
    assert "on 'net' from" in model.stdout
    assert model.stdout.count("| 0.3 | layer | nearest | bn |") == 2
    scopes = _script(recipe, out, "--importance", "bn", "--rounding", "nearest",
                     "--scopes", "layer,global", "--no-stale-stats", "--skip", "conv1")
    assert scopes.returncode == 0, scopes.stderr
    for scope in ("layer", "global"):   # one row each, with re-estimated statistics only
        assert scopes.stdout.count(f"| 0.3 | {scope} | nearest | bn | re-estimated") == 1
    assert "kept (stale)" not in scopes.stdout and "never pruned: conv1" in scopes.stdout
    assert "| conv1 64 -> " not in scopes.stdout   # the stem is never the layer cut hardest
