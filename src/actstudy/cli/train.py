"""Entry point: `python -m actstudy.train [overrides]`, or `-m` for a sweep (one MLflow parent run).

Hydra composes `conf/`; this module only turns Hydra's view of the job into a `JobSpec`, runs it, and
maps failures to exit codes with one line on stderr: 2 for bad input (config, tracking store, dataset),
130 for an interrupted run, 1 for a failed one. In a sweep a failed job is recorded and the sweep goes
on; the sweep callback exits non-zero at the end and lists the failures.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import warnings
from pathlib import Path
from typing import Any, cast

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from actstudy import credentials, outcomes
from actstudy.cli.job_log import job_log
from actstudy.config import identity, overrides
from actstudy.config.schema import ConfigError, JobSpec, parse_config, run_name
from actstudy.errors import (
    DatasetUnavailable,
    JobFailed,
    RunInterrupted,
    TrackingUnavailable,
    error_text,
    one_line_summary,
)
from actstudy.jobs import dry_run
from actstudy.jobs.run_state import RunState
from actstudy.jobs.sweep import SweepInfo, mark_sweep_interrupted
from actstudy.paths import CONF_DIR, writable_problem
from actstudy.processes import distributed
from actstudy.processes.slurm import in_slurm_sweep_job

log = logging.getLogger("actstudy")
USER_ERRORS = (ConfigError, DatasetUnavailable, TrackingUnavailable)

_NOISE = ("💡 Tip", "was configured so 100% of the batches")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: not any(text in record.getMessage() for text in _NOISE)
)
warnings.filterwarnings("ignore", message=r".*The `srun` command is available.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def job_spec(cfg: DictConfig) -> JobSpec:
    """Return the validated job description of the current Hydra job; raise ConfigError on bad input."""
    hc = HydraConfig.get()
    typed = parse_config(cfg)
    container = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))  # the root: string keys
    resolved = {k: v for k, v in container.items() if k != "hydra"}
    sweep = SweepInfo.load(Path(hc.sweep.dir)) if hc.mode == RunMode.MULTIRUN else None
    named = ("activation", "depth", "seed")
    varying = [o for o in hc.overrides.task if sweep and o.split("=")[0] in sweep.varying_keys]
    varying = [o for o in varying if o.split("=")[0] not in named]
    return JobSpec(
        cfg=typed,
        resolved=resolved,
        fingerprint=identity.job_fingerprint(resolved),
        run_name=run_name(typed.activation.name, typed.depth, typed.seed, varying),
        output_dir=Path(hc.runtime.output_dir),
        overrides=list(hc.overrides.task),
        parent_run_id=sweep.parent_run_id if sweep else None,
        sweep_id=sweep.sweep_id if sweep else None,
    )


def concurrent_jobs(hc: DictConfig) -> int:
    """Return how many jobs of this sweep run at once on this machine: joblib's `n_jobs`, else 1."""
    launcher = hc.launcher
    if "joblib" not in str(launcher.get("_target_", "")):
        return 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    cpus = distributed.cpus_available()
    return min(cpus, n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs))  # joblib: -1 is every core


def _record_failure(output_dir: Path, message: str) -> None:
    """Note a job that failed before its run existed, for the end-of-sweep summary.

    A state that already names a run is left alone: the runner recorded that run's outcome itself, or
    it belongs to another live process running the same job.
    """
    state = RunState.load(output_dir)
    if state is None and RunState.path(output_dir).exists():
        return  # a damaged state file is the user's to look at (its error said so): left as it is
    if state is None or state.run_id is None:
        with contextlib.suppress(OSError):  # a full disk: the line on stderr already says what failed
            RunState(None, output_dir.name, "", outcome=outcomes.FAILED, error=message).save(output_dir)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float:
    """Run one job; return its final validation accuracy, for sweepers (NaN if it failed in a sweep)."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    output_dir = Path(hc.runtime.output_dir)
    world = None
    try:
        spec = job_spec(cfg)
        world = distributed.world_of(spec.cfg)
        if not world.is_zero:  # a SLURM task of a multi-process job: it only trains, rank 0 records
            from actstudy.cli.worker import run_worker

            run_worker(spec.cfg, spec.resolved, world)
            return math.nan
        from actstudy.tracking import store as tracking  # an unreachable store fails here, before any run

        tracking.check_reachable(tracking.resolve_uri(spec.cfg.tracking.uri))
        distributed.check_devices(spec.cfg, world)
        from actstudy.jobs.runner import run_job

        # HydraConfig.get() is typed as the HydraConf dataclass; it returns the DictConfig of it
        return run_job(spec, world, concurrent_jobs(cast(DictConfig, hc)) if multirun else 1)
    except USER_ERRORS as exc:
        print(f"actstudy: error: {exc}", file=sys.stderr)
        if world is not None:  # SLURM's other tasks of this job wait for rank 0: tell them to stop
            distributed.abort_other_ranks(world, str(exc))
        if multirun:
            _record_failure(output_dir, str(exc))  # for the sweep's summary
            return math.nan
        sys.exit(2)
    except RunInterrupted as exc:
        print(f"actstudy: {exc}", file=sys.stderr)
        if multirun and not in_slurm_sweep_job():  # a preempted SLURM job is requeued, the sweep goes on
            mark_sweep_interrupted(Path(hc.sweep.dir))
        sys.exit(130)
    except Exception as exc:
        log.exception("job %s failed", output_dir.name)
        error = one_line_summary(str(exc) if isinstance(exc, JobFailed) else error_text(exc))
        details = f" (traceback in {log_file})" if (log_file := job_log()) else ""
        print(f"actstudy: error: job {output_dir.name} failed: {error}{details}", file=sys.stderr)
        _record_failure(output_dir, error)
        if multirun:
            return math.nan
        sys.exit(1)


def asks_hydra_only(argv: list[str]) -> bool:
    """Return whether the command only asks Hydra something (help, the config): no job runs."""
    return any(a.split("=", 1)[0] in overrides.ASKS_HYDRA for a in argv)


def output_problem(argv: list[str]) -> str | None:
    """Return why the job folders cannot be written where this command puts them, or None if they can."""
    if asks_hydra_only(argv):
        return None
    key = "hydra.sweep.dir=" if ("-m" in argv or "--multirun" in argv) else "hydra.run.dir="
    chosen = [a[len(key) :] for a in argv if a.startswith(key)]
    folder = Path(chosen[-1]).absolute() if chosen else Path.cwd()
    while not folder.exists():
        folder = folder.parent
    problem = writable_problem(folder)
    if problem is None:
        return None
    return (
        f"cannot write the job's folder in {folder} ({problem}); run from a writable folder or set "
        f"{key}<writable path>"
    )


def cli() -> None:
    """The command line: check the overrides and the output folder (one line and exit 2), then run."""
    argv = sys.argv[1:]
    if dry_run.FLAG in argv:
        argv = [a for a in argv if a != dry_run.FLAG]
        if not ("-m" in argv or "--multirun" in argv):
            print(f"actstudy: error: {dry_run.FLAG} lists a sweep's jobs: add -m", file=sys.stderr)
            sys.exit(2)
        sys.argv = [sys.argv[0], *argv, dry_run.OVERRIDE]
    wrong = (
        credentials.override_problem(argv)
        or overrides.modes_problem(argv)
        or overrides.config_dir_problem(argv)
        or overrides.problem(argv)
        or output_problem(argv)
    )
    if wrong is not None:
        print(f"actstudy: error: {wrong}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
