"""Distributions side by side across activations: per hidden layer, the activations' and the back-propagated
gradients' histograms of each activation of one setting at the same step, one figure per step.

Tools show a run's histograms one run at a time (wandb, TensorBoard; Aim's request for more,
aimhubio/aim#358, is open); the study's question is how the activations differ at the same layer and step.
The figures come from the runs' histogram artifacts (`actstudy.monitor.histogram_file`) and go on the
parent run as one image key with a step slider (`MlflowClient.log_image(key=IMAGE_KEY, step=...)`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from actstudy.report.collect import RunData, histograms_of
from actstudy.report.figure_grid import Margins, axes_grid, figure_title, save
from actstudy.report.figures import PANEL_TITLE_PT, gradient_axis
from actstudy.report.render import Code, FigureFile
from actstudy.report.style import activation_color, activation_rank
from actstudy.report.tables import label_of, number, setting_columns

IMAGE_KEY = "distributions"  # the parent run's image key
MAX_STEPS = 6  # figures per report: the first and last common step and evenly spaced ones between
MAX_LAYERS = 8  # rows per figure: deeper nets show this many layers, evenly spaced, first and last kept


def compared_runs(runs: list[RunData], tuned: tuple[str, ...] = ()) -> tuple[list[RunData], str]:
    """Return one run per activation (its lowest seed) of the setting most activations share (the deepest
    on a tie), among runs with histograms, and that setting as text; ([], "") when fewer than two
    activations have them. A setting is every varying key but the activation, the seed, the `tuned` keys
    and keys each activation holds at one value of its own (the quick start's per-activation lr)."""
    with_histograms = [r for r in runs if r.histograms is not None and len(r.histograms.steps)]
    keys = _setting_keys(with_histograms, tuned)
    by_setting: dict[tuple, dict[str, RunData]] = {}
    for run in sorted(with_histograms, key=lambda r: (number(r.params.get("seed", "")) or 0, r.name)):
        setting = tuple(run.params.get(k, "?") for k in keys)
        by_setting.setdefault(setting, {}).setdefault(run.activation, run)
    if not by_setting:
        return [], ""
    depth = keys.index("depth")
    best = max(by_setting, key=lambda k: (len(by_setting[k]), number(k[depth]) or 0))
    chosen = sorted(by_setting[best].values(), key=lambda r: activation_rank(r.activation))
    text = ", ".join(f"{label_of(k)} {v}" for k, v in zip(keys, best, strict=True))
    return (chosen, text) if len(chosen) >= 2 else ([], "")


def _setting_keys(runs: list[RunData], tuned: tuple[str, ...]) -> list[str]:
    activations = {r.activation for r in runs}

    def own_per_activation(key: str) -> bool:
        return all(len({r.params.get(key) for r in runs if r.activation == a}) == 1 for a in activations)

    varying = [k for k, _ in setting_columns(runs) if k not in ("activation.name", "seed", "depth", *tuned)]
    return ["depth"] + [k for k in varying if not own_per_activation(k)]


def common_steps(runs: list[RunData]) -> list[int]:
    """Return up to MAX_STEPS steps every run recorded: the first, the last, and evenly spaced between."""
    steps = sorted(set.intersection(*(set(int(s) for s in histograms_of(r).steps) for r in runs)))
    if len(steps) <= MAX_STEPS:
        return steps
    picks = np.unique(np.linspace(0, len(steps) - 1, MAX_STEPS).round().astype(int))
    return [steps[i] for i in picks]


def _shown_layers(depth: int) -> list[int]:
    """Return the 0-based layers a figure shows: all, or MAX_LAYERS evenly spaced with first and last."""
    if depth <= MAX_LAYERS:
        return list(range(depth))
    return sorted({int(i) for i in np.linspace(0, depth - 1, MAX_LAYERS).round()})


def distribution_figure(runs: list[RunData], setting: str, step: int, path: Path) -> FigureFile:
    """Write the figure of `runs` (one per activation, of `setting`) at `step`: a row per hidden layer,
    activations on the left, back-propagated gradients on the right, a line per activation; return it.
    The figure's `image_step` is `step`."""
    depth = max(len(histograms_of(r).layers) for r in runs)
    layers = _shown_layers(depth)
    fig = Figure(figsize=(10, 1.6 * len(layers) + 1.3))
    margins = Margins(left=0.8, right=0.2, top=0.9, bottom=0.8, wgap=0.55, hgap=0.3)
    axes = axes_grid(fig, len(layers), 2, margins)
    edges = histograms_of(runs[0]).gradient_edges
    indices = {r.name: histograms_of(r).at_step(step) for r in runs}
    grads = [histograms_of(r).gradient_counts[indices[r.name]] for r in runs]
    ticks, labels, xlim = gradient_axis(edges, grads)
    for row, layer in enumerate(layers):
        left, right = axes[row]
        for run in runs:
            h, index, color = histograms_of(run), indices[run.name], activation_color(run.activation)
            if layer >= len(h.layers):
                continue
            act = h.activation_counts[index, layer]
            if act.sum() > 0:  # a density: the activations' bins differ in width (their ranges differ)
                left.stairs(act / act.sum() / np.diff(h.activation_edges), h.activation_edges, color=color)
            grad = h.gradient_counts[index, layer]
            if np.isfinite(grad).all() and grad.sum() > 0:
                right.stairs(grad / grad.sum(), np.arange(len(edges)), color=color, lw=1.3)
        left.set_yscale("log")
        for ax in (left, right):
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=8)
        left.set_ylabel(f"layer {layer + 1}", fontsize=PANEL_TITLE_PT)
        right.set_xticks(ticks, labels if row == len(layers) - 1 else [""] * len(ticks))
        right.set_xlim(*xlim)
    axes[0][0].set_title("activations: density (log)", fontsize=PANEL_TITLE_PT, fontweight="bold")
    axes[0][1].set_title(
        "d loss / d layer output: fraction of values", fontsize=PANEL_TITLE_PT, fontweight="bold"
    )
    axes[-1][0].set_xlabel("layer output", fontsize=9)
    axes[-1][1].set_xlabel("gradient (log scale on each side of 0)", fontsize=9)
    axes[-1][1].tick_params(axis="x", labelrotation=45)
    handles = [Line2D([], [], color=activation_color(r.activation), label=r.activation) for r in runs]
    fig.legend(handles=handles, loc="upper right", ncols=len(runs), fontsize=9, frameon=False)
    figure_title(fig, f"Distributions per layer at step {step} ({setting})", fontsize=12)
    names = ", ".join(r.name for r in runs)
    return FigureFile(
        save(fig, path),
        f"Distributions side by side, step {step}",
        [
            f"Per hidden layer, the histograms of the layer's outputs (left) and of the gradient of the loss "
            f"with respect to them (right) of {names} at step {step}, from each run's ",
            Code("histograms/histograms.npz"),
            f"; on the parent run every step's figure is the image {IMAGE_KEY!r} with a step slider.",
        ],
        image_step=step,
    )


def distribution_figures(runs: list[RunData], out_dir: Path, tuned: tuple[str, ...] = ()) -> list[FigureFile]:
    """Write the side-by-side figures of the sweep's plottable `runs` (`tuned`: keys picked per setting),
    one per common step (at most MAX_STEPS) as `distributions_step<step>.png` in `out_dir`; return them
    (empty: nothing to compare)."""
    chosen, setting = compared_runs(runs, tuned)
    if not chosen:
        return []
    return [
        distribution_figure(chosen, setting, step, out_dir / f"distributions_step{step:06d}.png")
        for step in common_steps(chosen)
    ]
