"""Write the report's content as Markdown (figures as files next to it) and as self-contained HTML."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from actstudy.report.figures import FigureFile
from actstudy.report.tables import Table

RUNS_LEGEND = (
    "*first/last grad* = `grad/first_to_last` (weight-gradient RMS of layer 1 ÷ last layer; ≪ 1 means "
    "vanishing) at step 0 and at the last logged step; *saturated*, *dead* = mean over layers of "
    "`act/saturated`, `act/dead` at the last logged step."
)
AGGREGATE_LEGEND = (
    "mean ± std over the runs used (*n*; failed and diverged runs left out, *runs* counts all); "
    "gradient ratios: geometric mean ×/÷ geometric std."
)


@dataclass
class ReportContent:
    """Everything the report shows, already formatted; text may use `backticks` for code."""

    title: str
    meta: list[tuple[str, str]]
    summary: list[str]
    run_table: Table | None
    aggregate: Table | None
    figures: list[FigureFile]
    notes: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    """Return ``table`` as a GitHub-flavoured Markdown pipe table (numeric columns right-aligned)."""
    head = "| " + " | ".join(_md_cell(c) for c in table.columns) + " |"
    rule = "| " + " | ".join("---:" if num else "---" for num in table.numeric) + " |"
    body = ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join([head, rule, *body])


def to_markdown(content: ReportContent) -> str:
    """Return the whole report as Markdown; figures are referenced by file name (relative to report.md)."""
    out = [f"# {content.title}", ""]
    out += [f"- **{k}:** {v}" for k, v in content.meta] + [""]
    if content.summary:
        out += ["## Key numbers", ""] + [f"- {line}" for line in content.summary] + [""]
    if content.run_table is not None:
        out += ["## Runs", "", markdown_table(content.run_table), ""]
        out += [RUNS_LEGEND, ""]
    if content.aggregate is not None:
        out += ["## Mean over seeds", "", markdown_table(content.aggregate), ""]
        out += [AGGREGATE_LEGEND, ""]
    if content.notes or content.missing:
        out += ["## Notes", ""] + [f"- {n}" for n in content.notes]
        for name, gaps in content.missing.items():
            out.append(f"- Missing in `{name}`: " + ", ".join(f"`{g}`" for g in gaps))
        out.append("")
    if content.figures:
        out += ["## Figures", ""]
        for fig in content.figures:
            out += [f"### {fig.title}", "", f"![{fig.title}]({fig.path.name})", "", fig.caption, ""]
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #eee; }
h3 { font-size: 1.1em; margin-bottom: .3em; }
table { border-collapse: collapse; font-size: .88em; margin: .5em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; white-space: nowrap; }
th { background: #f3f5f7; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
td.outcome-failed, td.outcome-diverged { color: #b00020; font-weight: 600; }
td.outcome-interrupted { color: #a15c00; font-weight: 600; }
code { background: #f3f5f7; padding: .05em .3em; border-radius: 3px; font-size: .92em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .92em; max-width: 60em; }
.table-wrap { overflow-x: auto; }
.note { color: #6a4a00; }
"""


def _inline(text: str) -> str:
    """Return ``text`` HTML-escaped, with `backticks` as <code> and *stars* as <em>."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", escaped)


def html_table(table: Table) -> str:
    """Return ``table`` as an HTML table; the ``outcome`` column gets a class per outcome for colouring."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = []
    for row in table.rows:
        cells = []
        for col, num, value in zip(table.columns, table.numeric, row, strict=True):
            classes = ["num"] if num else []
            if col == "outcome":
                classes.append("outcome-" + value.split()[0])
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attr}>{html.escape(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    body = "".join(rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(content: ReportContent) -> str:
    """Return the whole report as one self-contained HTML page (inline CSS, figures as base64 data URIs)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(content.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(content.title)}</h1><ul>",
    ]
    parts += [f"<li><strong>{html.escape(k)}:</strong> {_inline(v)}</li>" for k, v in content.meta]
    parts.append("</ul>")
    if content.summary:
        parts.append(
            "<h2>Key numbers</h2><ul>" + "".join(f"<li>{_inline(s)}</li>" for s in content.summary) + "</ul>"
        )
    if content.run_table is not None:
        parts += ["<h2>Runs</h2>", html_table(content.run_table)]
        parts.append(f"<p>{_inline(RUNS_LEGEND)}</p>")
    if content.aggregate is not None:
        parts += ["<h2>Mean over seeds</h2>", html_table(content.aggregate)]
        parts.append(f"<p>{_inline(AGGREGATE_LEGEND)}</p>")
    if content.notes or content.missing:
        items = [f'<li class="note">{_inline(n)}</li>' for n in content.notes]
        for name, gaps in content.missing.items():
            codes = ", ".join(f"<code>{html.escape(g)}</code>" for g in gaps)
            items.append(f'<li class="note">Missing in <code>{html.escape(name)}</code>: {codes}</li>')
        parts.append("<h2>Notes</h2><ul>" + "".join(items) + "</ul>")
    if content.figures:
        parts.append("<h2>Figures</h2>")
        for fig in content.figures:
            parts.append(
                f"<figure><h3>{html.escape(fig.title)}</h3>"
                f'<img src="{_data_uri(fig.path)}" alt="{html.escape(fig.title)}">'
                f"<figcaption>{_inline(fig.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report_files(content: ReportContent, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``out_dir``; return both paths (md, html)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "report.md"
    page = out_dir / "report.html"
    md.write_text(to_markdown(content), encoding="utf-8")
    page.write_text(to_html(content), encoding="utf-8")
    return md, page
