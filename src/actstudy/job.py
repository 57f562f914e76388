"""The tracked job: everything about one job's record, owned by rank 0 alone.

Resume policy, creating or continuing the MLflow run, the job's state file (`actstudy_run.json`), and
ending the run truthfully. It knows nothing of Lightning's internals: it hands training a logger and a
checkpoint to resume from, and records the `TrainingResult` (or the error) it gets back. Other ranks of a
multi-process job never construct it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from actstudy import outcomes, tracking
from actstudy.config import ConfigError, JobSpec
from actstudy.logger import MlflowRunLogger
from actstudy.run_state import RunState, current_owner
from actstudy.training import LAST_CHECKPOINT, TrainingResult

log = logging.getLogger("actstudy")


def decide_resume(mode: str, state: RunState | None, checkpoint: Path) -> str | None:
    """Return the MLflow run id to continue, or None to start a new run; raise if `resume=true` can't."""
    resumable = (
        state is not None and state.run_id and state.outcome in outcomes.RESUMABLE and checkpoint.exists()
    )
    if state is not None and state.owner_alive():
        raise ConfigError(
            f"job '{state.run_name}' is already running (pid {state.pid}); wait for it or stop it first"
        )
    if mode == "true" and not resumable:
        raise ConfigError(
            f"resume=true but there is no unfinished run with a checkpoint in {checkpoint.parent}"
        )
    if mode == "false" or not resumable:
        return None
    return state.run_id


class TrackedJob:
    """One job's MLflow run and state file, from `start` (create or continue) to `finish` or `fail`."""

    def __init__(self, spec: JobSpec, uri: str, world_size: int = 1):
        self.spec, self.uri, self.world_size = spec, uri, world_size
        self.checkpoint_dir = spec.output_dir / "checkpoints"
        self.client: MlflowClient | None = None
        self.run_id = ""
        self.state: RunState | None = None
        self.logger: MlflowRunLogger | None = None

    @property
    def last_checkpoint(self) -> Path:
        """Return where training keeps the job's latest checkpoint."""
        return self.checkpoint_dir / LAST_CHECKPOINT

    def start(self) -> Path | None:
        """Create or continue the job's run and record it; return the checkpoint to resume from, or None.

        Raises ConfigError (bad resume request, job already running) before any run is created.
        """
        spec, cfg = self.spec, self.spec.cfg
        previous = RunState.load(spec.output_dir)
        resume_run_id = decide_resume(cfg.resume, previous, self.last_checkpoint)
        self.client = client = tracking.open_client(self.uri)
        experiment_id = tracking.experiment_id(client, cfg.tracking.experiment)
        logged: dict[str, int] = {}
        if resume_run_id is not None:
            logged = tracking.last_logged_steps(client, resume_run_id)
            self.run_id = resume_run_id
            tracking.retry(lambda: client.update_run(resume_run_id, status="RUNNING"))
            log.info(
                "resuming run %s from %s (logged through step %d)",
                resume_run_id,
                self.last_checkpoint,
                max(logged.values(), default=-1),
            )
        else:
            if previous is not None and previous.run_id and previous.outcome is None:
                tracking.end_run(
                    client, previous.run_id, outcomes.INTERRUPTED, "the process died; not resumed", "FAILED"
                )
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
            self.run_id = self._create_run(client, experiment_id)
        self.state = RunState(self.run_id, spec.run_name, self.uri, **current_owner())
        owner = {
            outcomes.HOST: self.state.host,
            outcomes.PID: str(self.state.pid),
            outcomes.WORLD_SIZE: str(self.world_size),
        }
        tracking.log_params_and_tags(client, self.run_id, {}, owner)
        self.state.save(spec.output_dir)
        log.info(
            "MLflow run %s (%s) in experiment '%s' at %s",
            spec.run_name,
            self.run_id,
            cfg.tracking.experiment,
            self.uri,
        )
        self.logger = MlflowRunLogger(client, self.run_id, logged)
        return self.last_checkpoint if resume_run_id is not None else None

    def _create_run(self, client: MlflowClient, experiment_id: str) -> str:
        spec = self.spec
        tags = {
            outcomes.RUN_NAME: spec.run_name,
            outcomes.KIND: outcomes.KIND_JOB,
            outcomes.OVERRIDES: " ".join(spec.overrides),
            outcomes.OUTPUT_DIR: str(spec.output_dir.resolve()),
            outcomes.GIT_COMMIT: tracking.git_commit(),
            **tracking.slurm_tags(),
        }
        if spec.parent_run_id:
            tags[outcomes.PARENT] = spec.parent_run_id
            tags[outcomes.SWEEP_ID] = spec.sweep_id or ""
        run = tracking.retry(lambda: client.create_run(experiment_id, run_name=spec.run_name, tags=tags))
        run_id = run.info.run_id
        tracking.log_params_and_tags(client, run_id, tracking.flatten(spec.resolved), {})
        config_dir = spec.output_dir / "actstudy_config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "config.yaml").write_text(yaml.safe_dump(spec.resolved, sort_keys=False))
        (config_dir / "overrides.yaml").write_text(yaml.safe_dump(spec.overrides))
        client.log_artifacts(run_id, str(config_dir), "config")
        return run_id

    def finish(self, result: TrainingResult) -> None:
        """End the run with the result's outcome (completed, diverged or interrupted)."""
        extra = {outcomes.CHECKPOINT: str(self.last_checkpoint.resolve())}
        if result.diverged_step is not None:
            extra[outcomes.DIVERGED_STEP] = str(result.diverged_step)
        self._flush()
        tracking.log_params_and_tags(self.client, self.run_id, {}, extra)
        cfg = self.spec.cfg
        if (
            result.outcome != outcomes.INTERRUPTED
            and cfg.tracking.log_checkpoint
            and self.last_checkpoint.exists()
        ):
            self.client.log_artifact(self.run_id, str(self.last_checkpoint), "checkpoints")
        self._end(result.outcome)

    def fail(self, outcome: str, error: str | None, status: str | None = None) -> None:
        """End the run as `interrupted` or `failed` (with `error`), keeping every metric already logged.

        `status` overrides the outcome's MLflow status (a killed process: FAILED, not KILLED).
        """
        try:
            self._flush()
        finally:
            self._end(outcome, error, status)

    def _flush(self) -> None:
        if self.logger is not None:
            self.logger.flush()

    def _end(self, outcome: str, error: str | None = None, status: str | None = None) -> None:
        tracking.end_run(self.client, self.run_id, outcome, error, status)
        self.state.outcome, self.state.error = outcome, error
        self.state.save(self.spec.output_dir)
        log.info("run %s ended: %s", self.spec.run_name, outcome)
