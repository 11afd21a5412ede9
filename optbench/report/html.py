"""A self-contained HTML report: the Markdown tables as HTML plus the plots embedded as base64
PNGs, so it opens offline from a single file."""

from __future__ import annotations

import base64
import html
import re

from optbench.report.markdown import render_bench

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 7px;text-align:right}td:first-child,th:first-child{text-align:left}
th{background:#f3f3f3}code{background:#f3f3f3;padding:1px 4px}img{max-width:100%;margin:1em 0}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em}"""


def render_html(result: dict, title: str | None = None) -> str:
    from optbench.report.plots import ALL

    body = _markdown_to_html(render_bench(result, title))
    figures = []
    for name, plot in ALL.items():
        png = plot(result)
        if png:
            data = base64.b64encode(png).decode("ascii")
            figures.append(f'<figure><img alt="{name}" id="plot-{name}" '
                           f'src="data:image/png;base64,{data}"></figure>')
    plots = "<h2>Plots</h2>\n" + "\n".join(figures) if figures else ""
    page_title = html.escape(title or f"optbench: {result.get('label', '')}")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{page_title}</title><style>{_STYLE}</style></head>\n<body>\n"
            f"{body}\n{plots}\n</body></html>\n")


def _markdown_to_html(md: str) -> str:
    """The small Markdown subset render_bench writes: headings, tables, bullets, paragraphs."""
    out, table, bullets = [], [], []

    def flush():
        if table:
            out.append(_table(table))
            table.clear()
        if bullets:
            out.append("<ul>" + "".join(f"<li>{_inline(b)}</li>" for b in bullets) + "</ul>")
            bullets.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- "):
            bullets.append(line[2:])
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush()
    return "\n".join(out)


def _table(lines: list[str]) -> str:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    head, body = rows[0], [r for r in rows[1:] if not set("".join(r)) <= set("-: ")]
    th = "".join(f"<th>{_inline(c)}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
