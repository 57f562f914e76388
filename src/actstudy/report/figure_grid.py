"""Grids of axes with margins in inches, for every figure actstudy draws.

matplotlib's constrained layout measures every tick label of every axes on each draw: for the report's
seven figures of a 9-run sweep that was 13.6 of the 22.8 s `savefig` took (cProfile). Margins sized once
for the labels these figures carry cost nothing to apply, and, being in inches, they stay right whatever
the number of panels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator

REPORT_DPI = 110


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` (creating the folder) at REPORT_DPI; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=REPORT_DPI, facecolor="white")
    return path


@dataclass(frozen=True)
class Margins:
    """Space around and between the panels, in inches (`wgap` between columns, `hgap` between rows)."""

    left: float = 0.85
    right: float = 0.2
    top: float = 0.75
    bottom: float = 0.6
    wgap: float = 0.3
    hgap: float = 0.45


def axes_grid(fig: Figure, nrows: int, ncols: int, margins: Margins, **subplots_kw: Any) -> np.ndarray:
    """Return an (nrows, ncols) array of the axes added to `fig`, placed with `margins`.

    `subplots_kw` goes to `Figure.subplots` (`sharex`, `sharey`, ...).
    """
    width, height = fig.get_size_inches()
    m = margins
    panel_w = max((width - m.left - m.right - (ncols - 1) * m.wgap) / ncols, 0.1)
    panel_h = max((height - m.top - m.bottom - (nrows - 1) * m.hgap) / nrows, 0.1)
    gridspec_kw = {
        "left": m.left / width,
        "right": 1 - m.right / width,
        "bottom": m.bottom / height,
        "top": 1 - m.top / height,
        "wspace": m.wgap / panel_w,
        "hspace": m.hgap / panel_h,
    }
    return fig.subplots(nrows, ncols, squeeze=False, gridspec_kw=gridspec_kw, **subplots_kw)


def right_margin_axes(
    fig: Figure, margins: Margins, *, pad: float = 0.15, width: float = 0.15, max_height: float = 5.0
) -> Axes:
    """Return axes in the right margin, `pad` inches right of the panels, `width` wide, centred on them
    and 80 % of their height, at most `max_height` inches (for a colorbar)."""
    fig_w, fig_h = fig.get_size_inches()
    m = margins
    height = min(0.8 * (fig_h - m.top - m.bottom), max_height)
    bottom = m.bottom + (fig_h - m.top - m.bottom - height) / 2
    left = fig_w - m.right + pad
    return fig.add_axes((left / fig_w, bottom / fig_h, width / fig_w, height / fig_h))


def figure_title(fig: Figure, text: str, fontsize: float = 12, below_top: float = 0.12) -> None:
    """Write the figure's title `below_top` inches under its top edge (matplotlib's default is a fraction of
    the height, which runs into the panels' titles on a tall figure); wrapped with `wrap` to the figure's
    width, so the top margin needs `title_room` for it."""
    width, height = fig.get_size_inches()
    fig.suptitle(_title_lines(text, width, fontsize), fontsize=fontsize, y=1 - below_top / height, va="top")


def title_room(text: str, width: float, fontsize: float = 12) -> float:
    """Return the inches the figure title `text` takes beyond its first line on a figure `width` wide."""
    return extra_lines_room([_title_lines(text, width, fontsize)], fontsize)


def _title_lines(text: str, width: float, fontsize: float) -> str:
    return wrap(text, width - 0.3, fontsize)  # 0.15 inches clear of each edge


def log_y(ax: Axes) -> None:
    """Put `ax`'s y axis on a log scale with minor ticks at 2, 4 and 6 times each decade (labelled when the
    axis spans less than a decade): matplotlib's eight per decade are objects too, and over the 10+
    decades of a gradient figure creating them took half of its drawing time."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 4.0, 6.0)))


# Width of an average character, in ems, of matplotlib's default font (DejaVu Sans), bold a little wider.
_CHAR_EM = {False: 0.6, True: 0.66}


def wrap(text: str, width: float, fontsize: float, bold: bool = False) -> str:
    """Return `text` broken into lines at most `width` inches wide at `fontsize` points, after spaces,
    commas and underscores (run names are joined with them)."""
    per_line = max(int(width * 72 / (fontsize * _CHAR_EM[bold])), 8)
    pieces = re.findall(r"[^ ,_]+[ ,_]?|[ ,_]", text)
    lines = [""]
    for piece in pieces:
        if lines[-1] and len(lines[-1]) + len(piece.rstrip()) > per_line:
            lines.append("")
        lines[-1] += piece
    return "\n".join(line.rstrip() for line in lines)


def extra_lines_room(texts: list[str], fontsize: float) -> float:
    """Return the inches that the lines of the longest of `texts` beyond its first take at `fontsize`."""
    lines = max([text.count("\n") + 1 for text in texts] or [1])
    return (lines - 1) * fontsize * 1.25 / 72
