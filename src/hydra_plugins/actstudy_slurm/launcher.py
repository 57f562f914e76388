"""The `hydra/launcher=slurm` launcher (Hydra only loads launchers from the `hydra_plugins` package).

See `actstudy.slurm` for what it changes in hydra-submitit-launcher's `submitit_slurm`.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from actstudy.errors import first_line

log = logging.getLogger("actstudy")


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """`submitit_slurm` with a clean stop on USR2 and a sweep that survives jobs without a result."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        from actstudy.slurm import stop_cleanly_on_timeout_signal

        stop_cleanly_on_timeout_signal()
        return super().__call__(*args, **kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Return upstream's job returns, with a NaN one for each job that ended without a result."""
        # Upstream's launch ends in `[j.results()[0] for j in jobs]`, which raises at the first job without
        # a result and loses all the others'; it has no smaller hook. Rather than copy it, run it with its
        # executor wrapped (a sweep launches from one thread). submitit is imported here, as upstream does:
        # Hydra imports this module at every start, to discover plugins.
        import submitit

        upstream = submitit.AutoExecutor
        submitit.AutoExecutor = lambda *args, **kwargs: _SweepExecutor(upstream(*args, **kwargs))
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            submitit.AutoExecutor = upstream


class _SweepExecutor:
    """A submitit executor whose jobs turn a missing result into one line on stderr and a NaN result."""

    def __init__(self, executor: Any):
        self.executor = executor

    def __getattr__(self, name: str) -> Any:  # update_parameters and the rest: the executor's own
        return getattr(self.executor, name)

    def map_array(self, fn: Any, *iterable: Sequence[Any]) -> list[_ResultOrNan]:
        """Return the submitted jobs; upstream passes each job's overrides as the first iterable."""
        jobs = self.executor.map_array(fn, *iterable)
        if jobs:
            log.info("submitted SLURM job array %s (%d jobs)", jobs[0].job_id.split("_")[0], len(jobs))
        return [_ResultOrNan(job, list(overrides)) for job, overrides in zip(jobs, iterable[0], strict=True)]


class _ResultOrNan:
    """A submitted job whose `results()` does not raise when the job ended without a result."""

    def __init__(self, job: Any, overrides: list[str]):
        self.job, self.overrides = job, overrides

    def results(self) -> list[JobReturn]:
        """Return the job's results (one JobReturn), or one NaN JobReturn if it left none."""
        try:
            return self.job.results()
        except Exception as exc:  # cancelled, timed out without requeue, killed: no result pickle
            first = first_line(exc)
            print(f"actstudy: error: SLURM job {self.job.job_id} ({' '.join(self.overrides)}) ended without "
                  f"a result ({self.job.state}): {first}", file=sys.stderr)  # fmt: skip
            return [JobReturn(overrides=self.overrides, status=JobStatus.COMPLETED, _return_value=math.nan)]
