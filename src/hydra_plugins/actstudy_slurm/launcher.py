"""The `hydra/launcher=slurm` launcher (Hydra only loads launchers from the `hydra_plugins` package).

See `actstudy.slurm` for what it changes in hydra-submitit-launcher's `submitit_slurm`.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

log = logging.getLogger("actstudy")


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """`submitit_slurm` with a clean stop on USR2 and a sweep that survives jobs without a result."""

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        from actstudy.slurm import stop_cleanly_on_timeout_signal

        stop_cleanly_on_timeout_signal()
        return super().__call__(*args, **kwargs)

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        import submitit

        assert self.config is not None
        params = dict(self.params)
        executor = submitit.AutoExecutor(
            cluster="slurm",
            folder=params.pop("submitit_folder"),
            slurm_max_num_timeout=params.pop("max_num_timeout"),
        )
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("Submitit 'slurm' sweep output dir : %s", sweep_dir)
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            state = Singleton.get_state()
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", state))
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        if jobs:
            log.info("submitted SLURM job array %s (%d jobs)", jobs[0].job_id.split("_")[0], len(jobs))
        returns = []
        for job, (overrides, *_) in zip(jobs, job_params, strict=True):
            try:
                returns.append(job.results()[0])
            except Exception as exc:  # cancelled, timed out without requeue, killed: no result pickle
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                print(f"actstudy: error: SLURM job {job.job_id} ({' '.join(overrides)}) ended without a "
                      f"result ({job.state}): {first}", file=sys.stderr)  # fmt: skip
                nan = JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=math.nan)
                returns.append(nan)
        return returns
