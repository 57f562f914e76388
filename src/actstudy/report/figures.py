"""The report's metric figures, drawn with matplotlib's object API (Agg canvas, no pyplot global state)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from actstudy.metric_names import (
    ACT_DEAD,
    ACT_DERIV_MEAN,
    ACT_MEAN,
    ACT_P02,
    ACT_P98,
    ACT_SATURATED,
    GRAD_BIAS_L2,
    GRAD_WEIGHT_RMS,
    VAL_ACC,
    layer_key,
)
from actstudy.report.collect import RunData, SweepData, histograms_of
from actstudy.report.figure_grid import (
    Margins,
    axes_grid,
    extra_lines_room,
    figure_title,
    log_y,
    right_margin_axes,
    save,
    title_room,
    wrap,
)
from actstudy.report.render import Code, FigureFile, Text
from actstudy.report.stats import END_POINTS, end_value
from actstudy.report.style import LINESTYLES, MARKERS, activation_color, activation_order, activation_rank
from actstudy.report.tables import setting_columns

MAX_PANEL_COLS = 6  # small multiples wrap after this many runs per row
LAYER_AXIS = "layer (1 = input side)"
COLORBAR_ROOM = 1.0  # inches right of the panels: the layer colorbar, its ticks and label
PANEL_TITLE_PT = 9
MAX_COLORBAR_TICKS = 12


def _fit_titles(fig: Figure, titles: list[str], ncols: int, margins: Margins) -> tuple[list[str], Margins]:
    """Return the panels' titles wrapped to a panel's width, and `margins` grown for their extra lines."""
    width = fig.get_size_inches()[0]
    panel = (width - margins.left - margins.right - (ncols - 1) * margins.wgap) / ncols
    wrapped = [wrap(t, panel + 0.8 * margins.wgap, PANEL_TITLE_PT, bold=True) for t in titles]
    extra = extra_lines_room(wrapped, PANEL_TITLE_PT)
    return wrapped, dataclasses.replace(margins, top=margins.top + extra, hgap=margins.hgap + extra)


def _layer_colorbar(fig: Figure, margins: Margins, cmap: matplotlib.colors.Colormap, max_layer: int) -> None:
    """Draw the colorbar of the layers' colours (1 = input side) in the right margin."""
    norm = BoundaryNorm([x + 0.5 for x in range(max_layer + 1)], max_layer)  # one colour per layer
    cbar = fig.colorbar(ScalarMappable(norm, cmap), cax=right_margin_axes(fig, margins), label=LAYER_AXIS)
    cbar.set_ticks(range(1, max_layer + 1, math.ceil(max_layer / MAX_COLORBAR_TICKS)))


class SeriesStyle:
    """Consistent style per series (depth plus other varying settings except activation and seed)."""

    def __init__(self, runs: list[RunData]) -> None:
        self._extra = [k for k, _ in setting_columns(runs) if k not in ("activation.name", "depth", "seed")]
        keys = sorted({self.key(r) for r in runs}, key=lambda k: (k[0] if k[0] is not None else -1, k[1:]))
        self._rank = {k: i for i, k in enumerate(keys)}

    def key(self, run: RunData) -> tuple:
        """Return the series key of a run: (depth, values of the other varying settings)."""
        return (run.depth, *(run.params.get(k, "?") for k in self._extra))

    def rank(self, run: RunData) -> int:
        """Return the position of the run's series, ordered by depth, then the other settings."""
        return self._rank[self.key(run)]

    def label(self, run: RunData) -> str:
        """Return the legend label of the run's series, e.g. ``depth 4`` or ``depth 4, model.init=xavier``."""
        parts = [f"depth {run.depth}"] + [f"{k}={run.params.get(k, '?')}" for k in self._extra]
        return ", ".join(parts)

    def kwargs(self, run: RunData) -> dict:
        """Return matplotlib line kwargs (colour shade, linestyle, marker) for the run."""
        rank, count = self.rank(run), len(self._rank)
        fade = 0.55 * (count - 1 - rank) / (count - 1) if count > 1 else 0.0  # towards white: first palest
        return {
            "color": tuple(c + (1 - c) * fade for c in to_rgb(activation_color(run.activation))),
            "linestyle": LINESTYLES[rank % len(LINESTYLES)],
            "marker": MARKERS[rank % len(MARKERS)],
        }


def _panel_grid(
    runs: list[RunData],
    rows: list[tuple[str, Callable[[RunData], dict[int, float]]]],
    path: Path,
    title: str,
    caption: Text,
    *,
    log: bool,
    suptitle: str,
    xlabel: str = LAYER_AXIS,
    ylim: tuple[float, float] | None = None,
) -> FigureFile | None:
    """Write a rows × activations grid; each panel has one line per run with y over x = 1, 2, ...

    x is a layer number, or an epoch; the axis spans 1 to the largest x of any run. Returns the written
    figure, or None when ``runs`` is empty.
    """
    if not runs:
        return None
    acts = activation_order(r.activation for r in runs)
    style = SeriesStyle(runs)
    xmax = max([1] + [x for r in runs for _, getter in rows for x in getter(r)])
    width = max(4.2, 3.6 * len(acts))
    fig = Figure(figsize=(width, 3.2 * len(rows) + 0.6))
    # inner tick labels are shared: hidden
    margins = Margins(left=0.9, top=0.7 + title_room(suptitle, width), hgap=0.25, wgap=0.25)
    axes = axes_grid(fig, len(rows), len(acts), margins, sharex=True, sharey=True)
    for j, act in enumerate(acts):
        handles: dict[int, tuple[Line2D, str]] = {}  # one legend entry per series
        for i, (row_label, getter) in enumerate(rows):
            ax = axes[i][j]
            for run in (r for r in runs if r.activation == act):
                points = sorted((x, y) for x, y in getter(run).items() if y > 0 or not log)
                if not points:
                    continue
                (line,) = ax.plot(*zip(*points, strict=True), markersize=5, lw=1.8, **style.kwargs(run))
                handles.setdefault(style.rank(run), (line, style.label(run)))
            if log:
                log_y(ax)
            ax.grid(True, alpha=0.35)
            ax.set_xlim(0.6, xmax + 0.4)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if i == 0:
                ax.set_title(act, color=activation_color(act), fontweight="bold")
            if j == 0:
                ax.set_ylabel(row_label)
            if i == len(rows) - 1:
                ax.set_xlabel(xlabel)
        if handles:
            lines, labels = zip(*(handles[k] for k in sorted(handles)), strict=True)
            axes[0][j].legend(lines, labels, fontsize=8, loc="best")
    if ylim:
        axes[0][0].set_ylim(*ylim)  # shared by every panel
    figure_title(fig, suptitle, fontsize=12)
    return FigureFile(save(fig, path), title, caption)


def grad_by_layer(runs: list[RunData], path: Path) -> FigureFile | None:
    """Write the vanishing-gradient picture (weight-gradient RMS per layer at step 0 and at the end).

    Returns the written figure, or None when no run has ``grad/weight_rms`` metrics.
    """
    return _panel_grid(
        [r for r in runs if r.layers(GRAD_WEIGHT_RMS)],
        [
            ("grad RMS at init (step 0)", lambda r: r.by_layer(GRAD_WEIGHT_RMS, step=0)),
            ("grad RMS at the end", lambda r: r.by_layer(GRAD_WEIGHT_RMS)),
        ],
        path,
        "Gradient size by layer",
        [
            Code(layer_key(GRAD_WEIGHT_RMS, "NN")),
            " per layer (log scale), at initialisation (top) and at the last logged step (bottom); one panel "
            "per activation, one line per depth. A line that falls towards layer 1 means the layers near the "
            "input learn slower: the vanishing gradient.",
        ],
        log=True,
        suptitle="Weight-gradient RMS by layer: falling towards layer 1 = vanishing gradient",
    )


def _run_grid(runs: list[RunData], style: SeriesStyle) -> list[list[RunData]]:
    """Return the runs as rows of panels: a row per activation, wrapped after MAX_PANEL_COLS."""
    grid: list[list[RunData]] = []
    for act in activation_order(r.activation for r in runs):
        chunk = sorted((r for r in runs if r.activation == act), key=lambda r: (style.rank(r), r.name))
        grid += [chunk[k : k + MAX_PANEL_COLS] for k in range(0, len(chunk), MAX_PANEL_COLS)]
    return grid


def _layers_over_steps(
    runs: list[RunData],
    family: str,
    draw: Callable[[Axes, RunData, int, tuple], None],
    path: Path,
    ylabel: str,
    suptitle: str,
    title: str,
    caption: Text,
    log: bool = False,
    sharey: bool = True,
) -> FigureFile:
    """Write one panel per run with one colour per layer (`draw(ax, run, layer, colour)` draws a layer's
    curve over the steps); return the figure. `runs` are those that have `family`."""
    grid = _run_grid(runs, SeriesStyle(runs))
    ncols = max(len(row) for row in grid)
    max_layer = max(max(r.layers(family)) for r in runs)
    cmap = matplotlib.colormaps["viridis"].resampled(max_layer)
    width = max(2.9 * ncols + 1.2, 7.0)
    fig = Figure(figsize=(width, 2.4 * len(grid) + 0.8))
    # each panel has a title and its own step axis; unshared y tick labels need room between columns
    margins = Margins(
        left=0.8, right=COLORBAR_ROOM, top=0.7 + title_room(suptitle, width), bottom=0.5,
        wgap=0.25 if sharey else 0.55,
    )  # fmt: skip
    names, margins = _fit_titles(fig, [r.name for row in grid for r in row], ncols, margins)
    titles = iter(names)  # in the order the panels are drawn
    axes = axes_grid(fig, len(grid), ncols, margins, sharey=sharey)
    for i, row in enumerate(grid):
        for ax in axes[i][len(row) :]:
            ax.set_axis_off()
        for j, run in enumerate(row):
            ax = axes[i][j]
            for layer in run.layers(family):
                draw(ax, run, layer, cmap(layer - 1))
            if log:
                log_y(ax)
            ax.grid(True, alpha=0.3)
            ax.set_title(
                next(titles), color=activation_color(run.activation), fontsize=PANEL_TITLE_PT,
                fontweight="bold",
            )  # fmt: skip
            ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.tick_params(labelsize=8)
            if i == len(grid) - 1 or j >= len(grid[i + 1]):
                ax.set_xlabel("step", fontsize=9)
        axes[i][0].set_ylabel(ylabel, fontsize=9)
    _layer_colorbar(fig, margins, cmap, max_layer)
    figure_title(fig, suptitle, fontsize=12)
    return FigureFile(save(fig, path), title, caption)


def grad_over_steps(runs: list[RunData], path: Path) -> FigureFile | None:
    """Write per-layer gradient size vs step for every run as small multiples (Nielsen's speed of learning).

    Uses Nielsen's own measure, the bias-gradient norm ``grad/bias_l2`` = ||δˡ|| (``grad/weight_rms`` when
    no run has it). Returns None when neither exists.
    """
    family = GRAD_BIAS_L2 if any(r.layers(GRAD_BIAS_L2) for r in runs) else GRAD_WEIGHT_RMS
    runs = [r for r in runs if r.layers(family)]
    if not runs:
        return None

    def draw(ax: Axes, run: RunData, layer: int, color: tuple) -> None:
        pts = [(s, v) for s, v in run.series(layer_key(family, layer)) if v > 0]
        if pts:
            ax.plot(*zip(*pts, strict=True), color=color, lw=1.4)

    return _layers_over_steps(
        runs,
        family,
        draw,
        path,
        family,
        f"{family} per layer over training (log scale), one panel per run",
        "Speed of learning per layer",
        [
            Code(layer_key(family, "NN")),
            " vs optimiser step for each run, one colour per layer (dark = near the input). Layers whose "
            "curves sit far below the others learn more slowly (Nielsen, ch. 5).",
        ],
        log=True,
    )


def activation_percentiles(runs: list[RunData], path: Path) -> FigureFile | None:
    """Write each layer's mean activation with its 2nd-98th percentile band over training, one panel per
    run (Glorot & Bengio 2010, Fig. 2). Returns None when no run has ``act/p02``."""
    runs = [r for r in runs if r.layers(ACT_P02)]
    if not runs:
        return None

    def draw(ax: Axes, run: RunData, layer: int, color: tuple) -> None:
        mean, low, high = (dict(run.series(layer_key(f, layer))) for f in (ACT_MEAN, ACT_P02, ACT_P98))
        steps = sorted(set(mean) & set(low) & set(high))
        if steps:
            ax.fill_between(steps, [low[s] for s in steps], [high[s] for s in steps], color=color, alpha=0.18)
            ax.plot(steps, [mean[s] for s in steps], color=color, lw=1.4)

    return _layers_over_steps(
        runs,
        ACT_P02,
        draw,
        path,
        "activation value",
        "Activation mean (line) and 2nd-98th percentiles (band) per layer over training",
        "Activation values per layer",
        [
            "Each layer's mean output (",
            Code(layer_key(ACT_MEAN, "NN")),
            ", line) and the band between its 2nd and 98th percentiles (",
            Code(layer_key(ACT_P02, "NN")),
            ", ",
            Code(layer_key(ACT_P98, "NN")),
            ") over training, as in Glorot & Bengio (2010, Fig. 2): a band collapsing onto 0 or 1 "
            "(sigmoid) or onto ±1 (tanh) is a layer whose units saturate.",
        ],
        sharey=False,  # sigmoid's outputs lie in (0, 1), tanh's in (-1, 1), ReLU's in [0, inf)
    )


def derivative_over_steps(runs: list[RunData], path: Path) -> FigureFile | None:
    """Write each layer's mean activation derivative over training, one panel per run.

    Returns None when no run has ``act/deriv_mean``.
    """
    runs = [r for r in runs if r.layers(ACT_DERIV_MEAN)]
    if not runs:
        return None

    def draw(ax: Axes, run: RunData, layer: int, color: tuple) -> None:
        pts = run.series(layer_key(ACT_DERIV_MEAN, layer))
        if pts:
            ax.plot(*zip(*pts, strict=True), color=color, lw=1.4)

    return _layers_over_steps(
        runs,
        ACT_DERIV_MEAN,
        draw,
        path,
        "mean f'(z)",
        "Mean activation derivative per layer over training, one panel per run",
        "Derivative per layer",
        [
            Code(layer_key(ACT_DERIV_MEAN, "NN")),
            ": the mean of the activation's derivative at each layer's pre-activations, the factor "
            "backpropagation multiplies in at that layer (sigmoid: at most 0.25; ReLU: the fraction of "
            "active units); a layer whose curve falls towards 0 passes back almost no gradient.",
        ],
    )


def gradient_axis(edges: np.ndarray, counts: list[np.ndarray]) -> tuple[list[float], list[str], tuple]:
    """Return the x ticks, their labels and the x limits of a gradient-histogram axis whose x is the bins'
    positions (equal widths in log10|g| on each side of the middle bin), labelled by value, limited to the
    bins any of `counts` (arrays whose last axis is the bins) uses."""
    used = [i for c in counts for i in np.flatnonzero(c.reshape(-1, c.shape[-1]).sum(axis=0))]
    xlim = (max(min(used, default=0) - 2, 0), min(max(used, default=len(edges)) + 3, len(edges) - 1))
    middle = len(edges) // 2  # edges[middle - 1], edges[middle] = -1e-10, 1e-10
    decades = [i for i, e in enumerate(edges) if abs(np.log10(abs(e)) % 2) < 1e-9 and abs(i - middle) > 1]
    ticks = sorted(decades + [middle - 0.5])
    labels = [f"{edges[int(k)]:.0e}".replace("e-0", "e-") if k in decades else "0" for k in ticks]
    return ticks, labels, xlim


def gradient_histograms(runs: list[RunData], path: Path) -> FigureFile | None:
    """Write the histograms of back-propagated gradients per layer at the first and the last recorded step,
    one row per setting (its lowest seed), as in Glorot & Bengio (2010, Figs. 6-7).

    Returns None when no run has a histogram artifact.
    """
    with_histograms = [r for r in runs if r.histograms is not None and len(r.histograms.steps)]
    if not with_histograms:
        return None
    style = SeriesStyle(with_histograms)
    chosen: dict[tuple, RunData] = {}
    for run in sorted(with_histograms, key=lambda r: (activation_rank(r.activation), style.rank(r), r.name)):
        chosen.setdefault((run.activation, style.key(run)), run)
    rows = list(chosen.values())
    fig = Figure(figsize=(10, 2.4 * len(rows) + 0.9))
    # x tick labels (rotated) only under the last row; every panel has a title and its own y tick labels
    margins = Margins(left=0.8, right=COLORBAR_ROOM, top=0.7, bottom=0.95, wgap=0.55, hgap=0.35)
    titles = [f"{run.name}, step {int(histograms_of(run).steps[k])}" for run in rows for k in (0, -1)]
    titles, margins = _fit_titles(fig, titles, 2, margins)
    axes = axes_grid(fig, len(rows), 2, margins, sharex=True)
    max_layer = max(len(histograms_of(r).layers) for r in rows)
    cmap = matplotlib.colormaps["viridis"].resampled(max_layer)
    edges = histograms_of(rows[0]).gradient_edges
    ticks, labels, xlim = gradient_axis(edges, [histograms_of(r).gradient_counts for r in rows])
    for i, run in enumerate(rows):
        h = histograms_of(run)
        for j, index in enumerate((0, len(h.steps) - 1)):
            ax = axes[i][j]
            for layer in range(len(h.layers)):
                counts = h.gradient_counts[index, layer]
                if counts.sum() > 0:
                    ax.stairs(counts / counts.sum(), np.arange(len(edges)), color=cmap(layer), lw=1.3)
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=8)
            ax.set_title(
                titles[2 * i + j], color=activation_color(run.activation), fontsize=PANEL_TITLE_PT,
                fontweight="bold",
            )  # fmt: skip
            if j == 0:
                ax.set_ylabel("fraction of values", fontsize=9)
            if i == len(rows) - 1:
                ax.set_xlabel("d loss / d layer output (log scale on each side of 0)", fontsize=9)
                ax.tick_params(axis="x", labelrotation=45)
    axes[0][0].set_xticks(ticks, labels)  # the x axis is shared: its ticks and limits are set once
    axes[0][0].set_xlim(*xlim)
    _layer_colorbar(fig, margins, cmap, max_layer)
    figure_title(fig, "Back-propagated gradients per layer: first and last monitored step", fontsize=12)
    return FigureFile(
        save(fig, path),
        "Back-propagated gradient histograms",
        [
            "Histograms of the gradient of the loss with respect to each layer's output at the first (left) "
            "and last (right) monitored step, one row per setting (its lowest seed), from each run's ",
            Code("histograms/histograms.npz"),
            " artifact, as in Glorot & Bengio (2010, Figs. 6-7); x is log10|g| on each side of 0 (the middle "
            "bin holds |g| < 1e-10): layers whose histograms sit nearer the middle than the layers above "
            "them receive smaller gradients, the vanishing gradient. In a CNN the middle bin also holds "
            "exact zeros that are no vanishing: of a layer that feeds a 2x2 max-pool, the 3 outputs of "
            "every 4 that the pool drops get no gradient at all, so 3/4 of its values sit there.",
        ],
    )


def val_acc(runs: list[RunData], path: Path) -> FigureFile | None:
    """Write validation accuracy vs epoch (k-th logged value = epoch k), one panel per activation.

    Returns None when no run has ``val/acc``.
    """
    epochs = ("validation accuracy", lambda r: dict(enumerate((v for _, v in r.series(VAL_ACC)), start=1)))
    return _panel_grid(
        [r for r in runs if r.series(VAL_ACC)],
        [epochs],
        path,
        "Validation accuracy",
        [Code(VAL_ACC), " after each epoch, one line per run (several seeds of a setting share a style)."],
        log=False,
        suptitle="Validation accuracy per epoch",
        xlabel="epoch",
    )


def saturation_dead(runs: list[RunData], path: Path) -> FigureFile | None:
    """Write the fraction of saturated and of dead units per layer at the end of training, each the mean
    over the last END_POINTS monitored steps (one small batch each is noisy).

    Returns None when no run has ``act/saturated`` or ``act/dead`` metrics.
    """
    k = END_POINTS

    def at_end(run: RunData, family: str) -> dict[int, float]:
        values = {n: end_value(run, layer_key(family, n)) for n in run.layers(family)}
        return {n: v for n, v in values.items() if v is not None}

    return _panel_grid(
        [r for r in runs if r.layers(ACT_SATURATED) or r.layers(ACT_DEAD)],
        [
            ("saturated units (fraction)", lambda r: at_end(r, ACT_SATURATED)),
            ("dead units (fraction)", lambda r: at_end(r, ACT_DEAD)),
        ],
        path,
        "Saturated and dead units",
        [
            "Fraction of saturated units (",
            Code(ACT_SATURATED),
            ", top: the activation's derivative below the fraction of its maximum that the activation's "
            "config file states) and of dead units (",
            Code(ACT_DEAD),
            ", bottom: zero output for the whole monitored batch) per layer at the end of training, each "
            f"the mean of the last {k} monitored steps, since one small monitored batch alone is noisy.",
        ],
        log=False,
        suptitle=f"Saturated and dead units per layer at the end (mean of the last {k} monitored steps)",
        ylim=(-0.03, 1.03),
    )


FIGURES: tuple[tuple[str, Callable[[list[RunData], Path], FigureFile | None]], ...] = (
    ("grad_by_layer.png", grad_by_layer),
    ("grad_over_steps.png", grad_over_steps),
    ("gradient_histograms.png", gradient_histograms),
    ("activation_percentiles.png", activation_percentiles),
    ("derivative_over_steps.png", derivative_over_steps),
    ("val_acc.png", val_acc),
    ("saturation_dead.png", saturation_dead),
)


def metric_figures(sweep: SweepData, out_dir: Path) -> tuple[list[FigureFile], list[Text]]:
    """Write every metric figure of the sweep into ``out_dir``.

    Returns the figures written and notes for the report (runs left out, figures skipped for lack of data).
    Failed and diverged runs are left out of every figure: their metrics are partial or non-finite.
    """
    notes: list[Text] = []
    excluded = [r for r in sweep.runs if not r.plottable]
    if excluded:
        names = ", ".join(f"{r.name} ({r.outcome})" for r in excluded)
        notes.append(f"Left out of the figures (failed or diverged): {names}.")
    runs = [r for r in sweep.runs if r.plottable]
    written = []
    for filename, draw in FIGURES:
        result = draw(runs, out_dir / filename)
        if result is None:
            notes.append([Code(filename), " not drawn: no run has the metrics it needs."])
        else:
            written.append(result)
    return written, notes
