"""scripts/teacher_int8_fidelity.py: how closely a teacher's int8 file follows its fp32 module,
from a recipe's finished teacher; an unfinished one is refused, not trained."""

import os
import re
import subprocess
import sys
from pathlib import Path

from optbench.pipeline import Recipe, run_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPE = """
[data]
dataset = "synthetic"
image_size = 16
train_limit = 128
val_limit = 64
test_limit = 32
calib_limit = 32

[models.net]
arch = "resnet18"

[bench]
runtimes = ["torch-eager"]

[[steps]]
name = "teacher"
method = "train"
input = "net"
train = { epochs = 1, batch_size = 64, max_steps_per_epoch = 2 }
"""


def _script(recipe: Path, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "teacher_int8_fidelity.py"),
                           str(recipe), str(out)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_fidelity_of_a_finished_teacher_and_refusal_of_an_unfinished_one(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE)
    out = tmp_path / "out"
    refused = _script(recipe, out)
    assert refused.returncode != 0
    assert "0 of 1 epochs finished; let the recipe's run finish the step first" in refused.stderr
    assert not (out / "work" / "teacher-train.ckpt").exists()   # refused, not trained

    run_recipe(Recipe.from_toml(recipe), out, progress=False, measure=False)
    done = _script(recipe, out)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert int(re.search(r"; (\d+) validation images, T = 4\n", text).group(1)) > 0
    assert "int8 mode: " in text
    agreement = float(re.search(r"top-1 agreement int8 vs fp32: ([\d.]+)%", text).group(1))
    assert 0 <= agreement <= 100
    fp32, int8 = map(float, re.search(r"validation top-1: fp32 ([\d.]+)%, int8 ([\d.]+)%",
                                      text).groups())
    assert 0 <= fp32 <= 100 and 0 <= int8 <= 100
    kl = re.search(r"KL\(fp32 \|\| int8\): mean ([-\d.e+]+)", text)
    assert kl and float(kl.group(1)) >= 0
