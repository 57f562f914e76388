"""Grids of axes with margins in inches, for every figure actstudy draws.

matplotlib's constrained layout measures every tick label of every axes on each draw: for the report's
seven figures of a 9-run sweep that was 13.6 of the 22.8 s `savefig` took (cProfile). Margins sized once
for the labels these figures carry cost nothing to apply, and, being in inches, they stay right whatever
the number of panels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator


@dataclass(frozen=True)
class Margins:
    """Space around and between the panels, in inches (`wgap` between columns, `hgap` between rows)."""

    left: float = 0.85
    right: float = 0.2
    top: float = 0.75
    bottom: float = 0.6
    wgap: float = 0.3
    hgap: float = 0.45


def axes_grid(fig: Figure, nrows: int, ncols: int, margins: Margins, **subplots_kw: object) -> np.ndarray:
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
    the height, which runs into the panels' titles on a tall figure)."""
    fig.suptitle(text, fontsize=fontsize, y=1 - below_top / fig.get_size_inches()[1], va="top")


def log_y(ax: Axes) -> None:
    """Put `ax`'s y axis on a log scale with ticks at decades only: the eight minor ticks per decade are
    matplotlib objects too, and over the 10+ decades a gradient figure spans, creating them took half of
    its drawing time."""
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())
