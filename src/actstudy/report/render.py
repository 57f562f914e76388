"""The report as a document (headings, paragraphs, lists, tables, figures) and its two writers.

The content is built once as a ``Document``; ``to_markdown`` and ``to_html`` differ only in syntax. Text is
a string or a list of strings, where ``Code``, ``Em`` and ``Strong`` strings are shown as such.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class Code(str):
    """Inline code."""


class Em(str):
    """Emphasised text."""


class Strong(str):
    """Strongly emphasised text."""


Text = str | Sequence[str]


@dataclass
class Bullets:
    """A bullet list; ``note`` items are highlighted in HTML."""

    items: Sequence[Text]
    note: bool = False


@dataclass
class Table:
    """A table: header labels, rows of already formatted cells, and which columns are numeric."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    prose: bool = False  # cells of sentences: wrapped to the page's width instead of one line each


@dataclass
class FigureFile:
    """A figure written to disk, with the title and caption the report shows next to it."""

    path: Path
    title: str
    caption: Text
    image_step: int | None = None  # a step's image: logged on the parent run with a step slider


Block = Text | Bullets | Table | FigureFile  # Text: a paragraph


@dataclass
class Document:
    """The title, a list of facts under it, and the sections: {heading: blocks}."""

    title: str
    facts: Bullets
    sections: Mapping[str, Sequence[Block]]


_MD_MARKS = {Code: "`", Em: "*", Strong: "**"}
_HTML_TAGS = {Code: "code", Em: "em", Strong: "strong"}


def _md(text: Text) -> str:
    marked = ((_MD_MARKS.get(type(p), ""), p) for p in ([text] if isinstance(text, str) else text))
    return "".join(f"{mark}{p}{mark}" for mark, p in marked)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _md_block(block: Block) -> str:
    if isinstance(block, Bullets):
        return "\n".join(f"- {_md(item)}" for item in block.items)
    if isinstance(block, Table):
        rule = "| " + " | ".join("---:" if num else "---" for num in block.numeric) + " |"
        return "\n".join([_md_row(block.columns), rule, *map(_md_row, block.rows)])
    if isinstance(block, FigureFile):
        return f"### {block.title}\n\n![{block.title}]({block.path.name})\n\n{_md(block.caption)}"
    return _md(block)


def to_markdown(doc: Document) -> str:
    """Return the document as Markdown; figures are referenced by file name (relative to the .md file)."""
    parts = [f"# {doc.title}", _md_block(doc.facts)]
    for heading, blocks in doc.sections.items():
        parts += [f"## {heading}", *map(_md_block, blocks)]
    return "\n\n".join(parts) + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #eee; }
h3 { font-size: 1.1em; margin-bottom: .3em; }
table { border-collapse: collapse; font-size: .88em; margin: .5em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; white-space: nowrap; }
table.prose { width: 100%; }
table.prose td { white-space: normal; vertical-align: top; }
table.prose td.verdict { white-space: nowrap; }
th { background: #f3f5f7; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
td.outcome-failed, td.outcome-diverged { color: #b00020; font-weight: 600; }
td.outcome-interrupted { color: #a15c00; font-weight: 600; }
td.verdict-holds { color: #1a7f37; font-weight: 600; }
td.verdict-does { color: #b00020; font-weight: 600; }
td.verdict-cannot { color: #57606a; font-weight: 600; }
code { background: #f3f5f7; padding: .05em .3em; border-radius: 3px; font-size: .92em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .92em; max-width: 60em; }
.table-wrap { overflow-x: auto; }
.note { color: #6a4a00; }
"""


def _html(text: Text) -> str:
    tagged = ((_HTML_TAGS.get(type(p)), html.escape(p)) for p in ([text] if isinstance(text, str) else text))
    return "".join(f"<{tag}>{p}</{tag}>" if tag else p for tag, p in tagged)


def _td(column: str, numeric: bool, value: str) -> str:
    classes = (["num"] if numeric else []) + (["outcome-" + value.split()[0]] if column == "outcome" else [])
    if column == "verdict" and value:  # holds / does not hold / cannot tell, coloured
        classes += ["verdict", "verdict-" + value.split()[0]]
    attr = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attr}>{html.escape(value)}</td>"


def _html_block(block: Block) -> str:
    if isinstance(block, Bullets):
        li = '<li class="note">' if block.note else "<li>"
        return "<ul>" + "".join(f"{li}{_html(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
        body = "".join(
            "<tr>" + "".join(map(_td, block.columns, block.numeric, row)) + "</tr>" for row in block.rows
        )
        kind = ' class="prose"' if block.prose else ""
        table = f"<table{kind}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        return f'<div class="table-wrap">{table}</div>'
    if isinstance(block, FigureFile):
        png = base64.b64encode(block.path.read_bytes()).decode("ascii")
        return (
            f"<figure><h3>{html.escape(block.title)}</h3>"
            f'<img src="data:image/png;base64,{png}" alt="{html.escape(block.title)}">'
            f"<figcaption>{_html(block.caption)}</figcaption></figure>"
        )
    return f"<p>{_html(block)}</p>"


def to_html(doc: Document) -> str:
    """Return the document as one self-contained HTML page (inline CSS, figures as base64 data URIs)."""
    title = html.escape(doc.title)
    head = f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>{title}</title>'
    parts = [f"<h1>{title}</h1>", _html_block(doc.facts)]
    for heading, blocks in doc.sections.items():
        parts += [f"<h2>{html.escape(heading)}</h2>", *map(_html_block, blocks)]
    body = "\n".join(parts)
    return f"{head}<style>{_CSS}</style></head><body>\n{body}\n</body></html>"
