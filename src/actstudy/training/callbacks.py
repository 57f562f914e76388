"""Lightning callbacks for the run's record: metrics flushed before checkpoints, what made a checkpoint,
plain-text progress. (The clean stop on a signal is `actstudy.processes.stopping.GracefulStop`.)"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import lightning as L

from actstudy import metric_names

if TYPE_CHECKING:
    from actstudy.training.module import ClassifierModule

log = logging.getLogger("actstudy")


class FlushMetricsBeforeCheckpoint(L.Callback):
    """Write every logged metric to the store before a checkpoint is saved.

    A run resumes from its checkpoint and re-logs only the steps after it, so the metrics up to the
    checkpoint must already be in the store when the checkpoint exists, whatever kills the process later.
    """

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            flush = getattr(logger, "flush", None)
            if flush is not None:
                flush()


class CheckpointMeta(L.Callback):
    """Save `meta` (the job's fingerprint and config) under `key` in every checkpoint: what made it."""

    def __init__(self, key: str, meta: Mapping[str, Any]):
        self.key, self.meta = key, dict(meta)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[self.key] = self.meta


class LogProgress(L.Callback):
    """Plain progress lines for logs (SLURM, CI): a few per epoch, plus each validation result.

    Lines fall on logging steps (multiples of `log_every_n_steps`) and print the loss the module brought
    to the host there, so they add no host synchronisation of their own.
    """

    def __init__(self, lines_per_epoch: int = 4):
        self.lines_per_epoch = lines_per_epoch
        self._epoch_start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch, idx):
        total = trainer.num_training_batches
        n = trainer.log_every_n_steps  # type: ignore[attr-defined]  # set by Lightning's LoggerConnector
        every = max(1, int(total) // self.lines_per_epoch) if total != float("inf") else 100
        every = max(n, every // n * n)
        if (trainer.global_step - 1) % every == 0:  # the update this batch made was a logged step
            # already on the host: no sync
            module = cast("ClassifierModule", pl_module)  # the module actstudy trains (training.trainer)
            loss = module.train_metrics.get(metric_names.TRAIN_LOSS, math.nan)
            rate = (idx + 1) / max(time.monotonic() - self._epoch_start, 1e-9)
            log.info(
                "epoch %d/%d batch %d/%s loss %.4f (%.1f batches/s)",
                trainer.current_epoch + 1,
                trainer.max_epochs,
                idx + 1,
                total,
                loss,
                rate,
            )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        val = (metric_names.VAL_LOSS, metric_names.VAL_ACC)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in val}
        log.info(
            "epoch %d/%d %s",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            " ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())),
        )
