"""Lightning callbacks for the run's life cycle: metrics flushed before checkpoints, a clean stop on a
signal, plain-text progress."""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch

from actstudy import metric_names

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


class GracefulStop(L.Callback):
    """Ctrl-C or SIGTERM: finish the current batch, stop every rank at the same step, save `last.ckpt`.

    A signal only sets a flag. In a multi-process job the ranks agree on it every `agree_every_n_steps`
    steps (the steps where train metrics are synchronised anyway); then every rank calls Lightning's own
    SIGTERM handler at the same point, and Lightning stops them all at the end of that batch, the path
    whose resume continues exactly where the run stopped. A stop that falls on an epoch's last batch
    waits for the end of the epoch, so the epoch's validation always runs whole. A second Ctrl-C exits
    at once. During the test that follows training a signal is only noted: the test (seconds) finishes
    and the run completes, rather than the ranks stopping at different points of a collective.
    """

    def __init__(
        self, checkpoint_path: Path, agree_every_n_steps: int, requested: threading.Event | None = None
    ):
        self.checkpoint_path = checkpoint_path
        self.agree_every_n_steps = agree_every_n_steps
        # Set by a signal (after training: on any rank); the caller may pass one already set by a signal
        # that came while the run was being set up, then training stops after its first batch.
        self.stop_requested = requested or threading.Event()
        self.interrupted = False  # training stopped because of it, with last.ckpt saved
        self._agreed = False
        self._stopping = False
        self._lightning_sigterm: Any = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._lightning_sigterm = signal.getsignal(signal.SIGTERM)  # registered by Lightning for this fit
        self._install()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._install()

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def _install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            os._exit(130)
        if not self.requested:
            log.warning("signal %d: stopping at the end of the batch (Ctrl-C again to exit now)", signum)
        self.stop_requested.set()

    @property
    def requested(self) -> bool:
        """Return True once a stop was asked for (after training: on any rank)."""
        return self.stop_requested.is_set()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch, idx):
        if not self._agreed:
            if trainer.world_size == 1:
                self._agreed = self.requested
            elif (trainer.global_step - 1) % self.agree_every_n_steps == 0:
                self._agreed = any_rank(self.requested, pl_module.device)
        if self._agreed and idx + 1 < trainer.num_training_batches:
            self._stop_after_this_batch()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.world_size == 1:
            self._agreed = self.requested
        if self._agreed:  # after the epoch's validation; Lightning stops once the epoch is complete
            self._stop_after_this_batch()

    def _stop_after_this_batch(self) -> None:
        if not self._stopping and callable(self._lightning_sigterm):
            self._stopping = True
            self._lightning_sigterm(signal.SIGTERM, None)  # Lightning's handler: every rank calls it here

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()
        if trainer.world_size > 1 and any_rank(self.requested, pl_module.device):
            self.stop_requested.set()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
        if not isinstance(exception, (KeyboardInterrupt, SystemExit)):
            return
        self.interrupted = True
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))  # Lightning ignores SIGINT while shutting down
        if trainer.state.fn == "fit" and trainer.global_step > 0:
            trainer.save_checkpoint(self.checkpoint_path)
            log.warning(
                "interrupted at step %d: checkpoint saved to %s", trainer.global_step, self.checkpoint_path
            )


def any_rank(flag: bool, device: torch.device) -> bool:
    """Return True if `flag` is True on any rank of the process group (a collective: call it on all ranks)."""
    import torch.distributed as dist

    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


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
        n = trainer.log_every_n_steps
        every = max(1, int(total) // self.lines_per_epoch) if total != float("inf") else 100
        every = max(n, every // n * n)
        if (trainer.global_step - 1) % every == 0:  # the update this batch made was a logged step
            # already on the host: no sync
            loss = pl_module.train_metrics.get(metric_names.TRAIN_LOSS, math.nan)
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
