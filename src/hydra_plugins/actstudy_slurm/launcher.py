"""The `hydra/launcher=slurm` launcher (Hydra only loads launchers from the `hydra_plugins` package).

See `actstudy.processes.slurm` for what it changes in hydra-submitit-launcher's `submitit_slurm`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from actstudy.errors import first_line

log = logging.getLogger("actstudy")


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """`submitit_slurm` with a clean stop on USR2 and a sweep that survives jobs without a result."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        from actstudy.processes.stopping import stop_cleanly_on_timeout_signal

        stop_cleanly_on_timeout_signal()
        return super().__call__(*args, **kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Return the job returns of the submitted job array, a NaN one for each job that ended without
        a result.

        Upstream's `BaseSubmititLauncher.launch` (hydra-submitit-launcher 1.2) with its last line changed:
        it ends in `[j.results()[0] for j in jobs]`, which raises at the first job without a result and
        loses all the others'. submitit is imported here, as upstream does: Hydra imports this module at
        every start, to discover plugins.
        """
        import submitit

        assert self.config is not None and len(job_overrides) > 0
        params = dict(self.params)
        init_keys = {"max_num_timeout"}
        init = {f"{self._EXECUTOR}_{k}": v for k, v in params.items() if k in init_keys}
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, folder=params["submitit_folder"], **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            k if k in base else f"{self._EXECUTOR}_{k}": v
            for k, v in params.items() if k not in init_keys | {"submitit_folder"}
        })  # fmt: skip
        log.info("Submitit '%s' sweep output dir : %s", self._EXECUTOR, self.config.hydra.sweep.dir)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        # submitit's job files there are pickles the compute nodes run: only their owner may write them
        private = Path(str(params["submitit_folder"]).split("%", 1)[0])
        if private.resolve().is_relative_to(sweep_dir.resolve()) and private.resolve() != sweep_dir.resolve():
            private.mkdir(parents=True, exist_ok=True)
            private.chmod(0o700)
        else:  # a folder of its own elsewhere (hydra.launcher.submitit_folder): its owner's to protect
            log.warning(
                "submitit folder %s is outside the sweep folder: make it writable only by you", private
            )
        job_params = []
        for idx, overrides in enumerate(job_overrides, initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append(
                (list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state())
            )
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        if jobs:
            log.info("submitted SLURM job array %s (%d jobs)", jobs[0].job_id.split("_")[0], len(jobs))
        return [_result_or_nan(job, list(o)) for job, o in zip(jobs, job_overrides, strict=True)]


def _result_or_nan(job: Any, overrides: list[str]) -> JobReturn:
    """Return the job's JobReturn, or a NaN one (and one line on stderr) if it ended without a result."""
    try:
        return job.results()[0]
    except Exception as exc:  # cancelled, timed out without requeue, killed: no result pickle
        print(f"actstudy: error: SLURM job {job.job_id} ({' '.join(overrides)}) ended without a result "
              f"({job.state}): {first_line(exc)}", file=sys.stderr)  # fmt: skip
        return JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=math.nan)
