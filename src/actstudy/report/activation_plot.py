"""The activation functions and their derivatives, computed with torch autograd from the ``torch.nn``
modules that the files in ``conf/activation/`` name: a new activation file needs no change here."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from actstudy.paths import CONF_DIR
from actstudy.report.figure_grid import Margins, axes_grid, figure_title, save
from actstudy.report.render import FigureFile
from actstudy.report.style import activation_color, activation_order


@cache
def _module_configs() -> dict[str, Any]:
    """Return {activation name: its ``module`` node} from every ``conf/activation/*.yaml``."""
    configs = [OmegaConf.load(path) for path in sorted((CONF_DIR / "activation").glob("*.yaml"))]
    return {cfg.name: cfg.module for cfg in configs}


def known_activations() -> list[str]:
    """Return the names of the activations that have a config file, in the report's order."""
    return activation_order(_module_configs())


def function_and_derivative(name: str, lo: float = -6.0, hi: float = 6.0, n: int = 1201) -> tuple:
    """Return ``(x, f(x), f'(x))`` as numpy arrays on [lo, hi] for a known activation name.

    The derivative comes from autograd on the ``torch.nn`` module; raises KeyError for an unknown name.
    """
    import torch  # here: the report's other figures need no torch

    module = instantiate(_module_configs()[name])
    x = torch.linspace(lo, hi, n, dtype=torch.float64, requires_grad=True)
    y = module(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    return x.detach().numpy(), y.detach().numpy(), dy.numpy()


def _break_jumps(values: np.ndarray, jump: float = 0.2) -> np.ndarray:
    """Return ``values`` with NaN where it jumps, so a step (ReLU's derivative) draws no vertical line."""
    out = values.astype(float).copy()
    out[1:][np.abs(np.diff(values)) > jump] = np.nan
    return out


def activation_figure(names: list[str], path: Path) -> FigureFile:
    """Write the functions (left) and derivatives (right) of the named activations; return the figure.

    Unknown names are skipped; raises ValueError when none of the names is known.
    """
    known = [n for n in activation_order(names) if n in _module_configs()]
    if not known:
        raise ValueError(
            f"no known activation among {sorted(names)}; known: {', '.join(known_activations())}"
        )
    fig = Figure(figsize=(11, 4.2))
    ((ax_f, ax_d),) = axes_grid(fig, 1, 2, Margins(left=0.6, wgap=0.55, bottom=0.55), sharex=True)
    for name in known:
        x, y, dy = function_and_derivative(name)
        color = activation_color(name)
        peak = int(dy.argmax())
        ax_f.plot(x, y, color=color, lw=2, label=name)
        ax_d.plot(x, _break_jumps(dy), color=color, lw=2, label=f"{name}  (max {dy[peak]:.3g})")
        ax_d.plot([x[peak]], [dy[peak]], "o", color=color, markersize=5)
    ax_f.set_ylim(-1.3, 3.0)  # keep sigmoid/tanh readable; unbounded functions leave through the top
    for ax, title in ((ax_f, "activation f(x)"), (ax_d, "derivative f'(x) (autograd)")):
        ax.axhline(0, color="grey", lw=0.7, zorder=0)
        ax.axvline(0, color="grey", lw=0.7, zorder=0)
        ax.grid(True, alpha=0.35)
        ax.set(xlabel="x", title=title, xlim=(-6, 6))
        ax.legend(fontsize=9, loc="upper left")
    ax_d.axhline(1, color="grey", lw=0.8, ls=":")
    ax_d.axhline(0.25, color="grey", lw=0.8, ls=":")
    figure_title(fig, "Activation functions and their derivatives on [-6, 6]", fontsize=12)
    return FigureFile(
        save(fig, path),
        "Activation functions",
        "Each activation (left) and its derivative (right) from autograd. Backpropagation multiplies one "
        "derivative per layer: sigmoid's is at most 1/4, so unless the weights compensate the gradient "
        "shrinks about 4× or more per layer; tanh's reaches 1 only at 0 and vanishes once units saturate; "
        "ReLU's is exactly 1 for active units (0 for inactive ones).",
    )
