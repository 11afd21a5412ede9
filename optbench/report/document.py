"""One model of a report, two renderings: a document is a list of blocks (headings, paragraphs,
bullet lists, tables, figures, collapsible sections); `to_markdown` and `to_html` each walk it.
Nothing is parsed back from Markdown.

Text is a string or a tuple of parts, each a plain string, `Code` or `Strong`.
"""

from __future__ import annotations

import dataclasses
import html

Text = object   # str | Code | Strong | tuple of those


@dataclasses.dataclass(frozen=True)
class Code:
    text: str


@dataclasses.dataclass(frozen=True)
class Strong:
    text: str


@dataclasses.dataclass
class Para:
    text: Text


@dataclasses.dataclass
class Bullets:
    items: list


@dataclasses.dataclass
class Table:
    header: list[str]
    rows: list[list]                    # cells: Text
    align: str = ""                     # one letter per column: l or r (default: l then r)
    note: Text = ""                     # a line under the table
    sortable: bool = True

    def alignments(self) -> str:
        return self.align or "l" + "r" * (len(self.header) - 1)


@dataclasses.dataclass
class Figure:
    name: str
    png: bytes
    caption: str = ""


@dataclasses.dataclass
class Section:
    """A titled part of the report. In HTML a collapsible <details> (open when `open`); in
    Markdown a heading."""

    title: str
    blocks: list
    open: bool = False
    level: int = 2
    highlight: bool = False     # HTML: set off from the rest (the report's answer)


@dataclasses.dataclass
class Document:
    title: str
    blocks: list


# -- Markdown ----------------------------------------------------------------------------------
def to_markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", ""]
    for block in doc.blocks:
        lines += _md_block(block)
    return "\n".join(lines).rstrip("\n") + "\n"


def _md_text(text: Text) -> str:
    if isinstance(text, tuple):
        return "".join(_md_text(t) for t in text)
    if isinstance(text, Code):
        return f"`{text.text}`"
    if isinstance(text, Strong):
        return f"**{text.text}**"
    return str(text)


def _md_block(block) -> list[str]:
    if isinstance(block, Section):
        out = [f"{'#' * block.level} {block.title}", ""]
        for b in block.blocks:
            out += _md_block(b)
        return out
    if isinstance(block, Para):
        return [_md_text(block.text), ""]
    if isinstance(block, Bullets):
        return [f"- {_md_text(item)}" for item in block.items] + [""]
    if isinstance(block, Table):
        sep = {"l": "---", "r": "---:"}
        out = ["| " + " | ".join(block.header) + " |",
               "|" + "|".join(sep[a] for a in block.alignments()) + "|"]
        out += ["| " + " | ".join(_md_text(c) for c in row) + " |" for row in block.rows]
        return out + ([""] + [_md_text(block.note)] if block.note else []) + [""]
    if isinstance(block, Figure):
        return []   # figures live in the HTML report
    raise TypeError(f"unknown block {type(block).__name__}")


# -- HTML --------------------------------------------------------------------------------------
_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 7px;text-align:right}td.l,th.l{text-align:left}th{background:#f3f3f3}
table.sortable th{cursor:pointer}table.sortable th:after{content:" \\2195";color:#aaa}
code{background:#f3f3f3;padding:1px 4px}img{max-width:100%;margin:1em 0}h1{font-size:1.6em}
details{margin:.4em 0;border-top:1px solid #ddd}summary{cursor:pointer;padding:.4em 0}
summary h2,summary h3{display:inline;font-size:1.15em}details.highlight{background:#f7f9fc;
padding:.2em 1em;border:1px solid #dde3ee;border-radius:6px}figcaption{font-size:12px;color:#555}
"""

# click a column header to sort by it (numbers by value: "1.23x [..]" sorts as 1.23)
_SORT_JS = """document.querySelectorAll("table.sortable th").forEach(function(th){
th.addEventListener("click",function(){var tb=th.closest("table").tBodies[0],i=th.cellIndex;
var up=th.dataset.dir!=="asc";th.dataset.dir=up?"asc":"desc";
var key=function(tr){var t=tr.cells[i].textContent.trim();
var s=t.replace(/,/g,"").replace(/[^0-9eE.+-].*$/,"");var n=Number(s);
return s===""||isNaN(n)?t:n;};Array.from(tb.rows).sort(function(a,b){var x=key(a),y=key(b);
var c=(typeof x===typeof y)?(x<y?-1:x>y?1:0):(typeof x==="number"?-1:1);return up?c:-c;})
.forEach(function(tr){tb.appendChild(tr);});});});"""


def to_html(doc: Document) -> str:
    body = "\n".join(_html_block(b) for b in doc.blocks)
    title = html.escape(doc.title)
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{_STYLE}</style></head>\n<body>\n<h1>{title}</h1>\n"
            f"{body}\n<script>{_SORT_JS}</script>\n</body></html>\n")


def _html_text(text: Text) -> str:
    if isinstance(text, tuple):
        return "".join(_html_text(t) for t in text)
    if isinstance(text, Code):
        return f"<code>{html.escape(text.text)}</code>"
    if isinstance(text, Strong):
        return f"<strong>{html.escape(text.text)}</strong>"
    return html.escape(str(text))


def _html_block(block) -> str:
    if isinstance(block, Section):
        inner = "\n".join(_html_block(b) for b in block.blocks)
        tag = f"h{block.level}"
        attrs = (' class="highlight"' if block.highlight else "") + (" open" if block.open else "")
        return (f"<details{attrs}><summary><{tag}>"
                f"{html.escape(block.title)}</{tag}></summary>\n{inner}\n</details>")
    if isinstance(block, Para):
        return f"<p>{_html_text(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_html_text(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        al = block.alignments()
        th = "".join(f'<th class="{a}">{html.escape(h)}</th>' for h, a in zip(
            block.header, al, strict=True))
        trs = "".join("<tr>" + "".join(f'<td class="{a}">{_html_text(c)}</td>' for c, a in zip(
            row, al, strict=True)) + "</tr>" for row in block.rows)
        cls = ' class="sortable"' if block.sortable else ""
        note = f"<p>{_html_text(block.note)}</p>" if block.note else ""
        return f"<table{cls}><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>{note}"
    if isinstance(block, Figure):
        import base64

        data = base64.b64encode(block.png).decode("ascii")
        caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
        return (f'<figure><img alt="{block.name}" id="plot-{block.name}" '
                f'src="data:image/png;base64,{data}">{caption}</figure>')
    raise TypeError(f"unknown block {type(block).__name__}")
