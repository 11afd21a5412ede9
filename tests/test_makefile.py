"""The README's commands: make finds tcmalloc when a recipe runs, not when the Makefile is read
(a fresh machine installs it in the same make invocation, so a parse-time lookup missed it)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_demo_looks_tcmalloc_up_when_the_recipe_runs():
    dry = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    line = next(x for x in dry.splitlines() if "optbench run" in x)
    assert line.startswith("LD_PRELOAD=$(bash scripts/tcmalloc.sh) ")


def test_the_lookup_finds_the_installed_library_and_torch_then_uses_it():
    path = subprocess.run(["bash", str(ROOT / "scripts/tcmalloc.sh")], capture_output=True,
                          text=True, check=True).stdout
    if not path:  # a failure under CI (tests/require_all.py)
        pytest.skip("tcmalloc is not installed (Debian libtcmalloc-minimal4; "
                    "scripts/sysdeps.sh installs it)")
    out = subprocess.run([sys.executable, "-c", "from optbench.env import detect_allocator; "
                          "print(detect_allocator())"], env={**os.environ, "LD_PRELOAD": path},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "tcmalloc"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_test_command_runs_every_test_the_parallel_phase_leaves_out():
    """`make test` (CI's command) deselects the `alone` tests from its parallel run, which no
    skip check sees: a second pytest line must run exactly those, or they never run."""
    dry = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    runs = [x for x in dry.splitlines() if "-m pytest" in x]
    assert len(runs) == 2 and '-m "not alone"' in runs[0] and runs[1].endswith("-m alone"), runs
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert ci[-1] == "make test"   # CI runs exactly the README's test command
