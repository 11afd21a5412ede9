"""The README's headline table is what scripts/headline.py prints for the committed flagship
report: no number in it is typed by hand or left stale."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_flagship_table_equals_the_committed_reports_headline():
    printed = subprocess.run([sys.executable, str(ROOT / "scripts/headline.py"),
                              str(ROOT / "results/flagship/report.json")], capture_output=True,
                             text=True, check=True).stdout
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert len(table) >= 4
    readme = (ROOT / "README.md").read_text()
    start = readme.index(table[0])
    assert readme[start:].splitlines()[:len(table)] == table


def test_every_results_folder_says_how_it_was_made():
    for folder in sorted(p for p in (ROOT / "results").iterdir() if p.is_dir()):
        texts = [f.read_text(errors="ignore") for f in folder.rglob("*")
                 if f.is_file() and f.suffix in (".md", ".sh", ".json") and f.stat().st_size
                 < 5_000_000]
        said = any("command" in t.lower() or t.startswith("#!") for t in texts)
        assert said, f"results/{folder.name} has no command next to its numbers"
        for f in folder.rglob("*.json"):
            if f.stat().st_size < 5_000_000 and f.name not in ("search.json",):
                data = json.loads(f.read_text())
                env = data.get("env") if isinstance(data, dict) else None
                if env:
                    assert env.get("git_commit") or env.get("command"), f
