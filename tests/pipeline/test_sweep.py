"""Sweeps: a grid expanded into trials, each a recipe run in its own folder and process, through
the local executor and a real local Ray cluster; resume skips finished trials; failures are
retried and reported; one merged table."""

import json
import os

import pytest

from optbench.cli import main
from optbench.errors import ConfigError, MissingInputError
from optbench.sweep import load_sweep, run_sweep

RECIPE = """
[data]
dataset = "synthetic"
image_size = 16

[models.net]
arch = "resnet18"

[bench]
runtimes = ["torch-eager"]
batch_sizes = [2]
min_time_s = 0.02
max_time_s = 0.1
threads = 1

[[steps]]
name = "trained"
method = "train"
train = { epochs = 1, batch_size = 64, lr = 0.05, max_steps_per_epoch = 2 }

[[steps]]
name = "sparse"
method = "prune-unstructured"
ratio = 0.5
"""


def _sweep(tmp_path, grid: str, extra: str = "") -> str:
    (tmp_path / "base.toml").write_text(RECIPE)
    path = tmp_path / "sweep.toml"
    path.write_text(f'[sweep]\nrecipes = ["base.toml"]\nmachine_kind = "test"\n{extra}\n'
                    f"[grid]\n{grid}")
    return str(path)


def test_grid_expands_and_bad_sweeps_fail_before_any_work(tmp_path):
    sweep = load_sweep(_sweep(tmp_path, '"models.net.arch" = ["resnet18", "mobilenet_v2"]\n'
                                        '"bench.batch_sizes" = [[1], [2]]'))
    assert len(sweep.trials) == 4 and len({t.id for t in sweep.trials}) == 4
    assert sweep.trials[1].data["bench"]["batch_sizes"] == [2]
    assert "arch=resnet18" in sweep.trials[0].label
    for grid, message in [('"models.nope.arch" = ["resnet18"]', "no table 'nope'"),
                          ('"models.net.arch" = ["vgg"]', "arch must be one of"),
                          ('"bench.batch_sizes" = []', "non-empty list")]:
        with pytest.raises(ConfigError, match=message):
            load_sweep(_sweep(tmp_path, grid))
    with pytest.raises(ConfigError, match="executor must be one of"):
        load_sweep(_sweep(tmp_path, '"bench.threads" = [1]', 'executor = "slurm"'))


def test_shipped_sweeps_are_valid():
    from pathlib import Path

    sweeps = sorted((Path(__file__).resolve().parents[2] / "sweeps").glob("*.toml"))
    assert sweeps
    for path in sweeps:
        assert load_sweep(path).trials


def test_local_sweep_runs_resumes_and_reports_failures(tmp_path):
    path = _sweep(tmp_path, '"bench.threads" = [1]', "retries = 1")
    out = tmp_path / "out"
    assert main(["sweep", path, "--out", str(out)]) == 0
    state = json.loads((out / "sweep.json").read_text())
    assert [t["status"] for t in state["trials"].values()] == ["done"]
    merged = json.loads((out / "merged.json").read_text())
    assert all(r["pick"]["variant"] in ("trained", "sparse") for r in merged["trials"])
    assert all(r["pick"]["isa"] is not None for r in merged["trials"])
    assert "| base threads=1 | done | 1 |" in (out / "merged.md").read_text()
    assert "best per model" in (out / "merged.html").read_text()
    assert (out / "merged.csv").read_text().startswith("machine_kind,executor,trial,model")
    again = run_sweep(load_sweep(path), out)          # resume: nothing left to run
    assert again["ran"] == 0
    # an edited base recipe is another trial: the resumed sweep runs it, not the old result
    before = {t.id for t in load_sweep(path).trials}
    (tmp_path / "base.toml").write_text(RECIPE.replace("ratio = 0.5", "ratio = 0.25"))
    assert {t.id for t in load_sweep(path).trials}.isdisjoint(before)
    # a trial that fails (here: its data folder does not exist) is retried, then reported
    bad = _sweep(tmp_path, '"data.dataset" = ["npz"]\n"data.data_dir" = ["/nonexistent.npz"]',
                 "retries = 1")
    assert main(["sweep", bad, "--out", str(tmp_path / "bad")]) == 1
    trial = next(iter(json.loads((tmp_path / "bad" / "sweep.json").read_text())
                      ["trials"].values()))
    assert trial["status"] == "failed" and trial["attempts"] == 2
    assert "nonexistent" in trial["error"]


def _trial(label, model, batch, top1, ms, status="done"):
    pick = {"variant": label, "runtime": "onnxruntime", "batch_size": batch, "median_ms": ms,
            "top1": top1, "best_top1": top1, "cpu": "EPYC", "isa": ["avx2"]}
    return {"id": label, "label": label, "model": model, "status": status, "attempts": 1,
            "seconds": 1.0, "pick": pick if status == "done" else None}


def test_best_per_model_and_a_merge_across_machine_kinds(tmp_path):
    """Per model and batch: the fastest pick within the budget of the group's most accurate;
    failed trials and other batch sizes do not compete; kinds are reported side by side."""
    from optbench.sweep import best_per_model, merge_sweeps

    trials = [_trial("a-fast-but-worse", "resnet18", 1, 0.80, 1.0),
              _trial("a-slow", "resnet18", 1, 0.90, 3.0),
              _trial("a-mid", "resnet18", 1, 0.895, 2.0),
              _trial("a-batch8", "resnet18", 8, 0.90, 9.0),
              _trial("b-failed", "mobilenet_v2", 1, 0, 0, status="failed"),
              _trial("b", "mobilenet_v2", 1, 0.85, 1.5)]
    best = best_per_model([{**t, "budget_points": 1.0} for t in trials])
    assert [(b["model"], b["batch_size"], b["trial"]) for b in best] == [
        ("mobilenet_v2", 1, "b"), ("resnet18", 1, "a-mid"), ("resnet18", 8, "a-batch8")]
    for kind in ("epyc-avx2", "spr-amx"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "merged.json").write_text(json.dumps(
            {"machine_kind": kind, "executor": "ray", "budget_points": 1.0,
             "trials": trials}))
    md = merge_sweeps([tmp_path / "epyc-avx2", tmp_path / "spr-amx"], tmp_path / "all")
    text = md.read_text()
    assert "## epyc-avx2: best per model" in text and "## spr-amx: best per model" in text
    assert text.count("| resnet18 | 1 | a-mid |") == 2
    with pytest.raises(MissingInputError, match="merged.json"):
        merge_sweeps([tmp_path / "nothing"], tmp_path / "x")


KILLER = '''
import os
import signal
from pathlib import Path

from optbench.models import build_model


def net(num_classes, in_channels):
    """resnet18; the first time it is built, the process that started this trial (the Ray
    worker) is killed, as an out-of-memory kill or a lost node would."""
    marker = Path(os.environ["OPTBENCH_TEST_KILL_MARKER"])
    if not marker.exists():
        marker.write_text(str(os.getppid()))
        os.kill(os.getppid(), signal.SIGKILL)
    return build_model("resnet18", num_classes=num_classes, in_channels=in_channels)
'''


def test_ray_runs_trials_and_retries_a_killed_worker(tmp_path, monkeypatch):
    """A real local Ray cluster: the trial's worker is killed once, Ray retries the task, the
    trial ends done with both starts counted, timed at nice 0 (Ray's nice 15 undone)."""
    ray = pytest.importorskip("ray")
    (tmp_path / "sweep_killer.py").write_text(KILLER)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("OPTBENCH_TEST_KILL_MARKER", str(tmp_path / "killed"))
    path = _sweep(tmp_path, '"bench.batch_sizes" = [[1]]', extra="retries = 1")
    (tmp_path / "base.toml").write_text(RECIPE.replace('arch = "resnet18"',
                                                       'arch = "python:sweep_killer:net"'))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)   # workers inherit env
    try:
        state = run_sweep(load_sweep(path), tmp_path / "out", executor="ray")
    finally:
        ray.shutdown()
    assert (tmp_path / "killed").is_file()                   # a worker really was killed
    (trial,) = state["trials"].values()
    assert trial["status"] == "done", trial
    assert trial["attempts"] == 2                             # Ray's own retry, counted
    assert "| done | 2 |" in (tmp_path / "out" / "merged.md").read_text()
    merged = json.loads((tmp_path / "out" / "merged.json").read_text())
    assert [r["pick"]["batch_size"] for r in merged["trials"]] == [1]
    assert merged["executor"] == "ray"
    assert all(r["nice"] == 0 for r in merged["trials"])
