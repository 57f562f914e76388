"""The per-run histogram artifact: per layer, histograms of the activations and of the back-propagated
gradients (the gradient of the loss with respect to the layer's output) at every monitored step, in one
`.npz` file that numpy reads directly (`numpy.load`, no pickle). Import-light: numpy only.

Arrays: `steps` (S,), `layers` (L,) names such as "l01", `activation_edges` (A+1,) and
`activation_counts` (S, L, A), `gradient_edges` (G+1,) and `gradient_counts` (S, L, G). The counts of a
layer at a step sum to the number of values binned: the whole output, or a fixed sample of
`actstudy.monitor.gradient_flow.SAMPLE_SIZE` positions of larger ones. Values outside the edges are
counted in the end bins.

Gradient bins are the same for every run: 4 per decade of |g| from 1e-10 to 1 on each side of zero,
plus one bin [-1e-10, 1e-10] in the middle (exact zeros fall there), so steps, layers and runs stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actstudy.paths import atomic_file

ARTIFACT_DIR = "histograms"  # the folder of the run's artifacts
FILE_NAME = "histograms.npz"
GRADIENT_DECADES = (-10, 0)  # |g| from 1e-10 to 1
GRADIENT_BINS_PER_DECADE = 4
_ARRAYS = ("steps", "layers", "activation_edges", "activation_counts", "gradient_edges", "gradient_counts")


def gradient_edges() -> np.ndarray:
    """Return the gradient bins' edges: -1, ..., -1e-10, 1e-10, ..., 1 (82 edges, 81 bins)."""
    low, high = GRADIENT_DECADES
    positive = 10.0 ** np.linspace(low, high, (high - low) * GRADIENT_BINS_PER_DECADE + 1)
    return np.concatenate([-positive[::-1], positive])


@dataclass
class Histograms:
    """One run's histograms (see the module docstring for the arrays' shapes)."""

    steps: np.ndarray
    layers: np.ndarray
    activation_edges: np.ndarray
    activation_counts: np.ndarray
    gradient_edges: np.ndarray
    gradient_counts: np.ndarray

    def write(self, path: Path) -> Path:
        """Write the arrays to `path` (replaced at once: a reader never sees half a file); return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as f:
            np.savez_compressed(f, **{name: getattr(self, name) for name in _ARRAYS})
        return path

    def at_step(self, step: int) -> int:
        """Return the index of the recorded step nearest to `step` (-1: the last one)."""
        return len(self.steps) - 1 if step < 0 else int(np.abs(self.steps - step).argmin())


def read_histograms(path: Path) -> Histograms:
    """Return the histograms stored in `path` (a file `Histograms.write` wrote)."""
    with np.load(path, allow_pickle=False) as data:
        return Histograms(**{name: data[name] for name in _ARRAYS})
