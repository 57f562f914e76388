"""One job across its processes. Rank 0 checks the data, opens the tracked job, tells the other ranks
the plan and trains; the other ranks (`actstudy.cli.worker`) wait for the plan and train.

Order matters: everything that can fail because of bad input (config, tracking store, dataset, resume
state) is checked before a run is created, so a bad command never leaves a run behind.
"""

from __future__ import annotations

import logging
import sys
import threading

import torch

from actstudy import outcomes
from actstudy.config.schema import JobSpec
from actstudy.data import ImageSplits, load_splits
from actstudy.errors import JobFailed, RunInterrupted, error_text
from actstudy.jobs.job import Start, TrackedJob
from actstudy.jobs.run_state import RunState
from actstudy.processes import distributed, stopping
from actstudy.processes.distributed import Rendezvous, World
from actstudy.tracking import store as tracking
from actstudy.training import trainer as training

log = logging.getLogger("actstudy")
RESUME_HINT = "re-run the same command to resume"


def run_job(spec: JobSpec, world: World, concurrent_jobs: int = 1) -> float:
    """Train one job as rank 0 (or its only process) into its MLflow run; return the final val/acc.

    `concurrent_jobs`: how many jobs a local sweep runs at once, sharing this machine's cores.

    The caller has validated the config and checked that the tracking store is reachable. Raises
    ConfigError / DatasetUnavailable before any run exists, RunInterrupted after Ctrl-C or SIGTERM (run
    KILLED, resumable), and JobFailed when training failed (run FAILED, with the cause: rank 0's own
    error, or the failing rank's when rank 0 only saw a broken collective).
    """
    cfg = spec.cfg
    if logging.getLogger().hasHandlers():
        # Hydra's handlers (conf/hydra/job_logging) take Lightning's and MLflow's messages: each library's
        # own stream handler would print them a second time, past the console filter
        for library in ("lightning", "mlflow"):
            logging.getLogger(library).handlers.clear()
            logging.getLogger(library).propagate = True
    job = TrackedJob(spec, tracking.resolve_uri(cfg.tracking.uri), world.size)
    # before anything expensive: a second identical command stops here; the folder is this process's
    # until the job has ended, however it ends
    with job.claim():
        rendezvous = Rendezvous.open(world) if world.size > 1 else None
        threads = distributed.share_threads(world, cfg.trainer.threads, concurrent_jobs)
        try:
            if rendezvous is not None and world.started_by == "rank0":
                rendezvous.start_local_ranks(spec.resolved)  # they import torch while rank 0 checks data
            try:
                start = job.decide()
                if start.finished is not None:
                    return _keep_finished(spec, job, start.finished, rendezvous)
                splits = load_splits(cfg.data)
            except BaseException as exc:
                if rendezvous is not None:
                    rendezvous.abort(error_text(exc))
                raise
            stop_requested = threading.Event()
            with stopping.sigterm_noted(stop_requested):
                result = _train_and_record(spec, world, job, splits, start, rendezvous, stop_requested)
        finally:
            if rendezvous is not None:
                rendezvous.close()
            distributed.restore_threads(threads)
    if result.outcome == outcomes.INTERRUPTED:
        raise RunInterrupted(f"run {spec.run_name} interrupted; {RESUME_HINT}")
    return result.val_acc


def _train_and_record(
    spec: JobSpec,
    world: World,
    job: TrackedJob,
    splits: ImageSplits,
    start: Start,
    rendezvous: Rendezvous | None,
    stop_requested: threading.Event,
) -> training.TrainingResult:
    """Open the run, tell the other ranks the plan, train, and end the run (truthfully on any error)."""
    cfg = spec.cfg
    published = False
    try:
        job.open(start)
        used = {outcomes.THREADS_USED: str(torch.get_num_threads())}  # a tag: a resumed attempt may differ
        assert job.client is not None  # job.open opened the store
        tracking.log_params_and_tags(job.client, job.run_id, {}, used)
        if rendezvous is not None:
            digest = distributed.config_digest(spec.resolved)
            rendezvous.publish(distributed.plan_for(start.resume_from, job.checkpoint_dir, digest))
            published = True
            world = world.join(rendezvous, cfg.trainer.accelerator, cfg.trainer.ddp_timeout_s)
        meta = {"fingerprint": spec.fingerprint, "config": spec.resolved}
        result = training.train(
            cfg, splits, job.checkpoint_dir, start.resume_from, job.logger, world,
            callbacks=job.callbacks(), checkpoint_meta=meta, stop_requested=stop_requested,
        )  # fmt: skip
        job.finish(result)
        return result
    except BaseException as exc:
        if rendezvous is not None and not published:
            rendezvous.abort(error_text(exc))
        outcome, error, status = _classify(exc, None)  # what rank 0 knows without the other ranks
        try:  # waits for the other ranks' reports: a second signal must still leave a truthful run
            outcome, error, status = _classify(exc, rendezvous)
        finally:
            job.fail(outcome, error, status)
        if outcome == outcomes.INTERRUPTED:
            raise RunInterrupted(
                f"run {spec.run_name} interrupted ({error or 'signal'}); {RESUME_HINT}"
            ) from exc
        raise JobFailed(error) from exc


INTERRUPTIONS = (*stopping.STOPPED, RunInterrupted)


def _keep_finished(
    spec: JobSpec, job: TrackedJob, finished: RunState, rendezvous: Rendezvous | None
) -> float:
    """A job that finished already is kept, not trained again; return the val/acc its run recorded."""
    if rendezvous is not None:
        rendezvous.abort("the job has finished already")
    print(
        f"actstudy: job {spec.output_dir.name} finished already as run {finished.run_id} "
        f"({finished.outcome}); resume=false trains it again as a new run",
        file=sys.stderr,
    )
    assert finished.run_id is not None  # TrackedJob.decide keeps only a run that has one
    return job.recorded_val_acc(finished.run_id)


def _classify(exc: BaseException, rendezvous: Rendezvous | None) -> tuple[str, str | None, str | None]:
    """Return (outcome, error, MLflow status or None for the outcome's own) of a job that raised `exc`.

    Rank 0's own error is the cause unless it only says a collective broke; then the other ranks' own
    errors (reported through the rendezvous) or their exit signals say what happened.
    """
    if isinstance(exc, INTERRUPTIONS):
        return outcomes.INTERRUPTED, None, None
    own = error_text(exc)
    if rendezvous is None:
        return outcomes.FAILED, own, None
    codes = rendezvous.close()  # wait for the other ranks: their errors and exit codes are the cause
    reported = rendezvous.rank_errors()
    if not distributed.is_collective_error(exc):
        return outcomes.FAILED, "; ".join([f"rank 0: {own}", *reported]) if reported else own, None
    if reported:
        return outcomes.FAILED, "; ".join(reported), None
    killed = rendezvous.describe_exit(codes)
    if killed:
        return outcomes.INTERRUPTED, f"{killed}; rank 0 then stopped with {own}", "FAILED"
    return outcomes.FAILED, own, None
