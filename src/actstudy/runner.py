"""One job across its processes. Rank 0 checks the data, opens the tracked job, tells the other ranks
the plan and trains; the other ranks (`actstudy.worker`) wait for the plan and train.

Order matters: everything that can fail because of bad input (config, tracking store, dataset, resume
state) is checked before a run is created, so a bad command never leaves a run behind.
"""

from __future__ import annotations

import logging
import math

from actstudy import distributed, outcomes, tracking, training
from actstudy.config import JobSpec
from actstudy.data import load_splits
from actstudy.distributed import Rendezvous, World
from actstudy.errors import JobFailed, RunInterrupted
from actstudy.job import TrackedJob

log = logging.getLogger("actstudy")
RESUME_HINT = "re-run the same command to resume"


def run_job(spec: JobSpec, world: World) -> float:
    """Train one job as rank 0 (or its only process) into its MLflow run; return the final val/acc.

    The caller has validated the config and checked that the tracking store is reachable. Raises
    ConfigError / DatasetUnavailable before any run exists, RunInterrupted after Ctrl-C or SIGTERM (run
    KILLED, resumable), and JobFailed when training raised (run FAILED, with the failing rank's error).
    """
    cfg = spec.cfg
    distributed.share_threads(world)
    rendezvous = Rendezvous.open(world) if world.size > 1 else None
    try:
        if rendezvous is not None and world.started_by == "rank0":
            rendezvous.start_local_ranks(spec.resolved)  # they import torch while rank 0 checks the data
        job = TrackedJob(spec, tracking.resolve_uri(cfg.tracking.uri), world.size)
        try:
            splits = load_splits(cfg.data)
            resume_from = job.start()
        except BaseException as exc:
            if rendezvous is not None:
                rendezvous.publish({"abort": f"{type(exc).__name__}: {exc}"})
            raise
        if rendezvous is not None:
            digest = distributed.config_digest(spec.resolved)
            rendezvous.publish(distributed.plan_for(resume_from, job.checkpoint_dir, digest))
            world.join(rendezvous, cfg.trainer.accelerator, cfg.trainer.ddp_timeout_s)
        try:
            result = training.train(cfg, splits, job.checkpoint_dir, resume_from, job.logger, world)
        except BaseException as exc:
            outcome, error, status = _classify(exc, rendezvous)
            job.fail(outcome, error, status)
            if outcome == outcomes.INTERRUPTED:
                raise RunInterrupted(
                    f"run {spec.run_name} interrupted ({error or 'signal'}); {RESUME_HINT}"
                ) from exc
            raise JobFailed(error) from exc
        job.finish(result)
    finally:
        if rendezvous is not None:
            rendezvous.close()
    if result.outcome == outcomes.INTERRUPTED:
        raise RunInterrupted(f"run {spec.run_name} interrupted; {RESUME_HINT}")
    return result.val_acc if result.val_acc is not None else math.nan


def _classify(exc: BaseException, rendezvous: Rendezvous | None) -> tuple[str, str | None, str | None]:
    """Return (outcome, error, MLflow status or None for the outcome's own) of a job that raised `exc`.

    In a multi-process job the error seen on rank 0 is often only a broken collective; the other ranks'
    own errors (reported through the rendezvous) or exit signals say what really happened.
    """
    if isinstance(exc, (KeyboardInterrupt, SystemExit, RunInterrupted)):
        return outcomes.INTERRUPTED, None, None
    own = f"{type(exc).__name__}: {exc}"
    if rendezvous is None:
        return outcomes.FAILED, own, None
    codes = rendezvous.close()  # wait for the other ranks: their errors and exit codes are the cause
    reported = rendezvous.rank_errors()
    if reported:
        return outcomes.FAILED, "; ".join(reported), None
    killed = rendezvous.describe_exit(codes)
    if killed:
        return outcomes.INTERRUPTED, f"{killed}; rank 0 then stopped with {own}", "FAILED"
    return outcomes.FAILED, own, None
