"""Every committed report.md is what the renderer makes of its report.json today, and its
targets are what today's code checks: re-rendering changes nothing (fix a stale one with
`optbench report DIR`)."""

import json
from pathlib import Path

import pytest

from optbench.report import render_bench
from optbench.results import load_report

ROOT = Path(__file__).resolve().parents[2]
REPORTS = sorted([*(ROOT / "results").glob("*/report.json"),
                  *(ROOT / "results").glob("*/*/result.json"),
                  *(ROOT / "results").glob("*/*/report.json")])
PEERS = sorted((ROOT / "results").glob("peers*/*/peers.json"))  # peers, peers_avx2


@pytest.mark.parametrize("path", REPORTS, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_committed_markdown_is_the_rendering_of_its_json(path):
    rendered = render_bench(load_report(path))
    committed = path.with_suffix(".md").read_text()
    folder = path.parent.relative_to(ROOT)
    assert rendered == committed, (f"{folder}/{path.stem}.md is stale; re-render it with "
                                   f"optbench.report.rerender('{folder}', '{path.stem}')")


# version-1 files are kept as written (test_results loads the first edition's as the example
# of that format); `optbench report` would rewrite one in today's version
CURRENT = [p for p in REPORTS if "version" in json.loads(p.read_text())]


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_committed_targets_are_what_todays_code_checks(path):
    """A report's targets (verdicts, CIs, where the points went) are those today's code finds
    in its stored measurements: fix a stale one with `optbench report DIR`, which checks them
    again and says so in the report."""
    from optbench.report.store import recheck_targets

    folder = path.parent.relative_to(ROOT)
    assert not recheck_targets(load_report(path), path.parent / "predictions.npz"), \
        f"{folder}'s targets are stale; check them again with `optbench report {folder}`"


def test_the_answer_comes_first_and_commands_are_relative():
    text = (ROOT / "results/flagship/report.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[0] == "## The answer" and headings[-1] == "## Environment"
    command = next(line for line in text.splitlines() if line.startswith("Command:"))
    assert "recipes/fashion_resnet50_to_mobilenet.toml" in command
    assert "/work/" not in command and "/root/" not in command


@pytest.mark.parametrize("path", PEERS, ids=lambda p: str(p.parent.relative_to(ROOT)))
def test_committed_peers_tables_are_what_the_script_makes_of_the_report(path):
    """results/peers*/*/peers.md: scripts/peers.py's summary of the committed report.json, with
    the budget it was made with; nothing typed in by hand."""
    import json
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import peers

    budget = json.loads(path.read_text())["budget_points"]
    assert peers.render(peers.summarize(path.parent, budget)) == \
        path.with_suffix(".md").read_text()
