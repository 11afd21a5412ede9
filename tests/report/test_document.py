"""One document, two renderings: the Markdown and the HTML say the same things."""

import re

from optbench.report.document import (
    Bullets,
    Code,
    Document,
    Figure,
    Para,
    Section,
    Strong,
    Table,
    to_html,
    to_markdown,
)
from optbench.report.render import display_command

DOC = Document("T <1>", [
    Para(("run ", Code("make demo"), " then ", Strong("look"), ".")),
    Section("Details", [Table(["name", "ms"], [["a|b", "1.5"], ["c", "—"]], note="n"),
                        Bullets(["x", ("y ", Code("z"))]),
                        Figure("plot", b"\x89PNG")], open=False),
])


def test_markdown_rendering():
    md = to_markdown(DOC)
    assert md.startswith("# T <1>\n\nrun `make demo` then **look**.\n\n## Details\n")
    assert "| name | ms |\n|---|---:|\n| a|b | 1.5 |" in md
    assert "- y `z`" in md and "PNG" not in md   # figures only in HTML


def test_html_rendering_escapes_collapses_and_sorts():
    page = to_html(DOC)
    assert "<h1>T &lt;1&gt;</h1>" in page
    assert "<code>make demo</code>" in page and "<strong>look</strong>" in page
    assert re.search(r"<details><summary><h2>Details</h2></summary>", page)
    assert '<table class="sortable">' in page and "<script>" in page
    assert '<img alt="plot" id="plot-plot" src="data:image/png;base64,' in page
    assert "**" not in page and "`" not in page


def test_commands_are_shown_relative_to_the_project():
    cmd = ("/work/main/.venv/bin/python -m optbench run /work/main/recipes/a.toml "
           "--out /work/runs/flagship3 --data /srv/data/fashion")
    assert display_command(cmd) == ("python -m optbench run recipes/a.toml --out runs/flagship3 "
                                    "--data …/data/fashion")
    assert display_command("python scripts/x.py --label 'two words'") == (
        "python scripts/x.py --label 'two words'")
