"""Lightning callbacks for the run's life cycle: divergence, interruption, plain-text progress."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

log = logging.getLogger("actstudy")


class DivergenceGuard(L.Callback):
    """Stop training when the loss becomes NaN or Inf, remembering the first bad step.

    The check runs on the device every step; the host reads it only every `check_every_n_steps` steps
    (the steps where the loss is logged anyway) and at the end of each epoch, so it adds no host sync.
    """

    def __init__(self, check_every_n_steps: int):
        self.check_every_n_steps = check_every_n_steps
        self.diverged_step: int | None = None
        self._first_bad: torch.Tensor | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch, idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        step = trainer.global_step - 1  # the update this batch made
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        bad = ~torch.isfinite(loss.detach()) & (self._first_bad < 0)
        self._first_bad = torch.where(bad, torch.full_like(self._first_bad, step), self._first_bad)
        if step % self.check_every_n_steps == 0:  # the steps where the loss is logged (and synced) anyway
            self._check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def _check(self, trainer: L.Trainer) -> None:
        if self._first_bad is None or self.diverged_step is not None:
            return
        first_bad = int(self._first_bad.item())
        if first_bad >= 0:
            self.diverged_step = first_bad
            log.warning("loss became non-finite at step %d: stopping this run (outcome: diverged)", first_bad)
            trainer.should_stop = True


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


class InterruptCheckpoint(L.Callback):
    """On Ctrl-C or SIGTERM: save `last.ckpt` so the run can resume; a second Ctrl-C exits at once."""

    def __init__(self, checkpoint_path: Path):
        self.checkpoint_path = checkpoint_path
        self.interrupted = False

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, (KeyboardInterrupt, SystemExit)):
            return
        self.interrupted = True
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))  # Lightning ignores SIGINT while shutting down
        if trainer.state.fn == "fit" and trainer.global_step > 0:
            trainer.save_checkpoint(self.checkpoint_path)
            log.warning(
                "interrupted at step %d: checkpoint saved to %s", trainer.global_step, self.checkpoint_path
            )


class LogProgress(L.Callback):
    """Plain progress lines for logs (SLURM, CI): a few per epoch, plus each validation result.

    Lines fall on steps where the loss is logged anyway (multiples of `log_every_n_steps`), so reading
    the loss adds no host synchronisation of its own.
    """

    def __init__(self, lines_per_epoch: int = 4):
        self.lines_per_epoch = lines_per_epoch
        self._epoch_start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch, idx):
        total = trainer.num_training_batches
        n = trainer.log_every_n_steps
        every = max(1, int(total) // self.lines_per_epoch) if total != float("inf") else 100
        every = max(n, every // n * n)
        if (trainer.global_step - 1) % every == 0:  # the update this batch made was a logged step
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            rate = (idx + 1) / max(time.monotonic() - self._epoch_start, 1e-9)
            log.info(
                "epoch %d/%d batch %d/%s loss %.4f (%.1f batches/s)",
                trainer.current_epoch + 1,
                trainer.max_epochs,
                idx + 1,
                total,
                float(loss),
                rate,
            )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        log.info(
            "epoch %d/%d %s",
            trainer.current_epoch + 1,
            trainer.max_epochs,
            " ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())),
        )
