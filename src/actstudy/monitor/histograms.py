"""The histogram artifact of a run: kept on the host as the monitor records it, saved in every checkpoint
(so a resumed run continues from exactly what its checkpoint had) and written to `histograms.npz`
(`actstudy.monitor.histogram_file`) at each checkpoint and at the end of training, beside the checkpoints and
into the run's artifacts through any logger that has `log_artifact` (the MLflow one): a crash loses
nothing recorded before the last checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from actstudy import metric_names
from actstudy.monitor.histogram_file import ARTIFACT_DIR, FILE_NAME, Histograms

log = logging.getLogger("actstudy")


class HistogramHistory:
    """The histograms of every monitored step so far, on the host, in step order."""

    def __init__(self, activation_edges: np.ndarray, gradient_edges: np.ndarray):
        self.activation_edges, self.gradient_edges = activation_edges, gradient_edges
        self.steps: list[int] = []
        self.activation_counts: list[list[list[float]]] = []  # per step: layers x bins
        self.gradient_counts: list[list[list[float]]] = []

    def add(
        self, step: int, activation_counts: list[list[float]], gradient_counts: list[list[float]]
    ) -> None:
        """Append one monitored step's counts (layers x bins each); a step not after the last is ignored."""
        if self.steps and step <= self.steps[-1]:
            return
        self.steps.append(step)
        self.activation_counts.append(activation_counts)
        self.gradient_counts.append(gradient_counts)

    def to_histograms(self) -> Histograms:
        """Return the recorded steps as the artifact's arrays."""
        layers = len(self.activation_counts[0]) if self.steps else 0
        return Histograms(
            steps=np.asarray(self.steps, dtype=np.int64),
            layers=np.asarray([metric_names.layer_suffix(i + 1) for i in range(layers)], dtype=str),
            activation_edges=self.activation_edges,
            activation_counts=np.asarray(self.activation_counts, dtype=np.float32).reshape(
                len(self.steps), layers, len(self.activation_edges) - 1
            ),
            gradient_edges=self.gradient_edges,
            gradient_counts=np.asarray(self.gradient_counts, dtype=np.float32).reshape(
                len(self.steps), layers, len(self.gradient_edges) - 1
            ),
        )

    def state_dict(self) -> dict[str, Any]:
        """Return the history as tensors and lists (what a checkpoint loads with `weights_only`)."""
        h = self.to_histograms()
        return {
            "steps": self.steps,
            "activation_counts": torch.from_numpy(h.activation_counts),
            "gradient_counts": torch.from_numpy(h.gradient_counts),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the history with the one `state_dict` returned (a resumed run's checkpoint)."""
        self.steps = list(state["steps"])
        self.activation_counts = state["activation_counts"].tolist()
        self.gradient_counts = state["gradient_counts"].tolist()


class HistogramArtifact(L.Callback):
    """Write `history` to `folder/histograms.npz` and to each logger's artifacts, at each checkpoint and at
    the end of training (rank 0); keep it in the checkpoints."""

    def __init__(self, history: HistogramHistory, folder: Path):
        self.history, self.folder = history, folder
        self._written_through: int | None = None  # newest step already written (best and last both save)

    @property
    def path(self) -> Path:
        """Return where the file is written."""
        return self.folder / FILE_NAME

    def state_dict(self) -> dict[str, Any]:
        return self.history.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history.load_state_dict(state_dict)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        self._write(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer)

    def _write(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero or not self.history.steps:
            return
        if self._written_through == self.history.steps[-1]:
            return
        self.history.to_histograms().write(self.path)
        self._written_through = self.history.steps[-1]
        for logger in trainer.loggers:
            log_artifact = getattr(logger, "log_artifact", None)
            if callable(log_artifact):
                try:
                    log_artifact(self.path, ARTIFACT_DIR)
                except Exception as exc:  # the file stays beside the checkpoints; the next write resends it
                    self._written_through = None
                    log.warning("uploading %s failed (training goes on): %s", FILE_NAME, exc)
