"""The report's metric figures, drawn with matplotlib's object API (Agg canvas, no pyplot global state)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from actstudy.metric_names import ACT_DEAD, ACT_SATURATED, GRAD_BIAS_L2, GRAD_WEIGHT_RMS, VAL_ACC, layer_key
from actstudy.report.collect import RunData, SweepData
from actstudy.report.render import Code, FigureFile, Text
from actstudy.report.style import LINESTYLES, MARKERS, activation_color, activation_order
from actstudy.report.tables import setting_columns

DPI = 110
MAX_PANEL_COLS = 6  # small multiples wrap after this many runs per row
LAYER_AXIS = "layer (1 = input side)"


def save(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` (creating the folder) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


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
    fig = Figure(figsize=(max(4.2, 3.6 * len(acts)), 3.2 * len(rows) + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), len(acts), sharex=True, sharey=True, squeeze=False)
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
                ax.set_yscale("log")
                ax.grid(True, which="minor", alpha=0.1)
            ax.grid(True, which="major", alpha=0.35)
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
    fig.suptitle(suptitle, fontsize=12)
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


def grad_over_steps(runs: list[RunData], path: Path) -> FigureFile | None:
    """Write per-layer gradient size vs step for every run as small multiples (Nielsen's speed of learning).

    Uses Nielsen's own measure, the bias-gradient norm ``grad/bias_l2`` = ||δˡ|| (``grad/weight_rms`` when
    no run has it). Returns None when neither exists.
    """
    family = GRAD_BIAS_L2 if any(r.layers(GRAD_BIAS_L2) for r in runs) else GRAD_WEIGHT_RMS
    runs = [r for r in runs if r.layers(family)]
    if not runs:
        return None
    style = SeriesStyle(runs)
    grid: list[list[RunData]] = []  # a row of panels per activation, wrapped after MAX_PANEL_COLS
    for act in activation_order(r.activation for r in runs):
        chunk = sorted((r for r in runs if r.activation == act), key=lambda r: (style.rank(r), r.name))
        grid += [chunk[k : k + MAX_PANEL_COLS] for k in range(0, len(chunk), MAX_PANEL_COLS)]
    ncols = max(len(row) for row in grid)
    max_layer = max(max(r.layers(family)) for r in runs)
    cmap = matplotlib.colormaps["viridis"].resampled(max_layer)
    fig = Figure(figsize=(2.9 * ncols + 1.2, 2.4 * len(grid) + 0.8), layout="constrained")
    axes = fig.subplots(len(grid), ncols, sharey=True, squeeze=False)
    for i, row in enumerate(grid):
        for ax in axes[i][len(row) :]:
            ax.set_axis_off()
        for j, run in enumerate(row):
            ax = axes[i][j]
            for layer in run.layers(family):
                pts = [(s, v) for s, v in run.series(layer_key(family, layer)) if v > 0]
                if pts:
                    ax.plot(*zip(*pts, strict=True), color=cmap(layer - 1), lw=1.4)
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.set_title(run.name, color=activation_color(run.activation), fontsize=9, fontweight="bold")
            ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.tick_params(labelsize=8)
            if i == len(grid) - 1 or j >= len(grid[i + 1]):
                ax.set_xlabel("step", fontsize=9)
        axes[i][0].set_ylabel(family, fontsize=9)
    norm = BoundaryNorm([x + 0.5 for x in range(max_layer + 1)], max_layer)  # one colour per layer
    cbar = fig.colorbar(
        ScalarMappable(norm, cmap), ax=axes, shrink=0.8, aspect=30, pad=0.01, label=LAYER_AXIS
    )
    cbar.set_ticks(range(1, max_layer + 1))
    fig.suptitle(f"{family} per layer over training (log scale), one panel per run", fontsize=12)
    return FigureFile(
        save(fig, path),
        "Speed of learning per layer",
        [
            Code(layer_key(family, "NN")),
            " vs optimiser step for each run, one colour per layer (dark = near the input). Layers whose "
            "curves sit far below the others learn more slowly (Nielsen, ch. 5).",
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
    """Write the fraction of saturated and of dead units per layer at the last logged step.

    Returns None when no run has ``act/saturated`` or ``act/dead`` metrics.
    """
    return _panel_grid(
        [r for r in runs if r.layers(ACT_SATURATED) or r.layers(ACT_DEAD)],
        [
            ("saturated units (fraction)", lambda r: r.by_layer(ACT_SATURATED)),
            ("dead units (fraction)", lambda r: r.by_layer(ACT_DEAD)),
        ],
        path,
        "Saturated and dead units",
        [
            "Fraction of units in the activation's saturated region (",
            Code(ACT_SATURATED),
            ", top) and of units that output exactly zero for the whole batch (",
            Code(ACT_DEAD),
            ", bottom), per layer at the last logged step.",
        ],
        log=False,
        suptitle="Saturated and dead units by layer at the end of training",
        ylim=(-0.03, 1.03),
    )


FIGURES: tuple[tuple[str, Callable[[list[RunData], Path], FigureFile | None]], ...] = (
    ("grad_by_layer.png", grad_by_layer),
    ("grad_over_steps.png", grad_over_steps),
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
