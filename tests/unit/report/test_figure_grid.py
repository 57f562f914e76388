"""The figures' fixed layout: wrapped titles, log axes that keep their labels."""

from __future__ import annotations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from actstudy.report.figure_grid import Margins, axes_grid, log_y, wrap


def test_wrap_breaks_run_names_at_their_separators():
    name = "sigmoid-d8-s0_optimizer.lr=0.001,model.width=128"
    assert wrap(name, width=10, fontsize=9) == name  # fits: unchanged
    lines = wrap(name, width=2.0, fontsize=9, bold=True).split("\n")
    assert lines == ["sigmoid-d8-s0_", "optimizer.lr=0.001,", "model.width=128"]
    assert "".join(lines) == name


@pytest.mark.parametrize(("low", "high", "at_least"), [(0.2, 0.8, 2), (3e-3, 4e-2, 2), (1e-12, 1.0, 4)])
def test_a_log_axis_keeps_labelled_ticks_whatever_its_span(low, high, at_least):
    """Decade ticks alone leave an axis spanning less than a decade with no label: the minor ticks at 2,
    4 and 6 times each decade are labelled then."""
    fig = Figure(figsize=(4, 3))
    ((ax,),) = axes_grid(fig, 1, 1, Margins())
    ax.plot([0, 1], [low, high])
    log_y(ax)
    FigureCanvasAgg(fig).draw()
    ymin, ymax = ax.get_ylim()
    labels = [
        t.get_text()
        for t in ax.yaxis.get_majorticklabels() + ax.yaxis.get_minorticklabels()
        if t.get_text() and ymin <= t.get_position()[1] <= ymax
    ]
    assert len(labels) >= at_least, labels
