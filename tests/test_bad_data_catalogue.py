"""docs/your_data.md's bad-data catalogue is what the code says today: every case is rebuilt and
loaded by scripts/bad_data_catalogue.py, and each row it prints must be in the page."""

import contextlib
import importlib.util
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_documented_errors_are_the_current_ones():
    spec = importlib.util.spec_from_file_location("catalogue",
                                                  ROOT / "scripts" / "bad_data_catalogue.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert module.main() == 0
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| ")][1:]
    assert len(rows) >= 20 and not any("(no error: a bug)" in r for r in rows)
    page = (ROOT / "docs" / "your_data.md").read_text()
    stale = [r for r in rows if r not in page]
    assert not stale, ("docs/your_data.md is stale; regenerate its catalogue with "
                       f"scripts/bad_data_catalogue.py. Rows not in the page: {stale}")
