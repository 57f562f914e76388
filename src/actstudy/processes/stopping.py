"""The stop protocol: how a signal ends a run in a truthful, resumable state, on every rank at one step.

1. **While the run is set up** (opened, model built), `sigterm_noted` turns SIGTERM into a flag instead
   of a kill, so no run stays RUNNING.
2. **During training** `GracefulStop` catches Ctrl-C and SIGTERM and only sets that flag. In a
   multi-process job the ranks agree on it (`any_rank`) on logging steps; then every rank calls
   Lightning's own SIGTERM handler at the same batch. Lightning raises `SIGTERMException` (a
   `SystemExit`) after that batch; `GracefulStop.on_exception` saves `last.ckpt`, and training returns
   the outcome `interrupted` (`STOPPED` is what it catches). A stop on an epoch's last batch waits for the
   epoch's validation. A second Ctrl-C exits at once (130).
3. **During the test** a signal is only noted: the test (seconds) finishes on every rank.
4. **Under SLURM** the time-limit / preemption signal USR2 first lets submitit requeue the job, then
   becomes a SIGTERM (`stop_cleanly_on_timeout_signal`): the same path as a preemption or `scontrol
   requeue`, and the requeued job resumes the run from `last.ckpt`.
5. The command exits 130 for an interrupted run (`actstudy.train`).
6. During the end-of-sweep report, Ctrl-C and SIGTERM end the sweep's parent run interrupted, with its
   jobs' outcomes kept, and exit 128 + the signal (`actstudy.jobs.sweep`: kept there because this module
   imports Lightning, which a SLURM sweep's submitting process otherwise never loads).

What this relies on in Lightning (2.4 to 2.6, pinned in pyproject.toml;
`tests/unit/processes/test_stopping.py` fails if it changes): `Trainer.fit` registers a SIGTERM handler
of its own before `on_train_start`, and calling it makes fit raise `SIGTERMException`, a `SystemExit`, at
the end of the current batch, after `on_train_batch_end`, through every callback's `on_exception`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch

from actstudy.processes.signals import signals_handled

log = logging.getLogger("actstudy")

STOPPED = (KeyboardInterrupt, SystemExit)  # how a stopped fit ends (Lightning's SIGTERMException included)


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


@contextmanager
def sigterm_noted(stop_requested: threading.Event) -> Iterator[None]:
    """While the run is opened and the model built, a SIGTERM sets `stop_requested` instead of killing.

    Training's own handling takes over once it starts and, finding the event set, stops after its first
    batch: the run ends interrupted rather than staying RUNNING. (Not raising here on purpose: Lightning
    chains the handler it finds into its own, which training calls to stop all ranks at one step.)
    """
    with signals_handled(lambda signum, frame: stop_requested.set(), signal.SIGTERM):
        yield


def stop_cleanly_on_timeout_signal() -> None:
    """Wrap submitit's USR2 handler so that it ends in a clean Lightning stop instead of a SystemExit."""
    usr2 = signal.SIGUSR2
    submitit_handler = signal.getsignal(usr2)
    if not callable(submitit_handler):
        return

    def handler(signum: int, frame: Any) -> None:
        try:
            submitit_handler(signum, frame)  # checkpoint() + scontrol requeue, then sys.exit(-1)
            return  # not rank 0: SLURM's SIGTERM reaches this task too
        except SystemExit:
            log.warning("SLURM job requeued after signal %d: stopping at the end of the batch", signum)
        except Exception as exc:  # submitit's UncompletedJobError: timed out too many times
            log.warning("SLURM job not requeued (%s): stopping at the end of the batch", exc)
        signal.raise_signal(signal.SIGTERM)  # Lightning: SIGTERMException after this batch

    signal.signal(usr2, handler)
