"""SLURM support: the launcher behind `hydra/launcher=slurm` (hydra_plugins.actstudy_slurm) and its helpers.

The launcher is hydra-submitit-launcher's SLURM launcher, made safe for preemption and requeueing.

Two changes to `submitit_slurm`, both about jobs that SLURM stops before they finish:

* Timeout / preemption signal (USR2, `signal_delay_s` before the time limit): submitit checkpoints the
  submission (the launcher's `checkpoint()` resubmits the same job, so the requeued job reuses the same
  Hydra job folder), runs `scontrol requeue`, then raises `SystemExit` wherever the training happens to
  be, possibly in the middle of an optimiser step. Here that `SystemExit` (and the "not requeued" error)
  is turned into a SIGTERM instead (`actstudy.processes.stopping.stop_cleanly_on_timeout_signal`, the launcher
  installs it), which stops training at the end of the current batch on every rank:
  the `GracefulStop` callback saves `last.ckpt`, the MLflow run ends KILLED / `interrupted`, and the
  requeued job continues the same run from the checkpoint (`job.decide_resume`). This is exactly the
  path of a plain `scontrol requeue` or a preemption (SLURM sends SIGTERM), so both behave the same.
* A job that ends without a result (cancelled, timed out with no requeue left, killed) no longer
  crashes the whole multirun: it is reported on stderr, the sweep goes on, and the sweep's end-of-run
  summary counts it (its `actstudy_run.json` says `interrupted`, or nothing finished) as not completed.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lightning.pytorch.plugins.environments import SLURMEnvironment

log = logging.getLogger("actstudy")


def in_slurm_sweep_job() -> bool:
    """Return True in a job that this launcher submitted to SLURM (one job of a sweep, maybe requeued).

    Such a job being stopped (preemption, requeue, timeout) is not the sweep being stopped: the
    submitting process still owns the sweep. A whole local `-m` sweep run inside one `sbatch` or
    `salloc` allocation is not such a job.
    """
    return bool(os.environ.get("SLURM_JOB_ID")) and os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def lightning_environment() -> SLURMEnvironment:
    """Return Lightning's view of this SLURM job (addresses, ranks) without its own requeue on SIGUSR1:
    submitit requeues the job, after the stop protocol (processes/stopping.py) has saved a checkpoint."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return SLURMEnvironment(auto_requeue=False)
