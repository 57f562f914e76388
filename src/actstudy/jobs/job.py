"""The tracked job: everything about one job's record, owned by rank 0 alone.

Resume policy, creating or continuing the MLflow run, the job's state file (`actstudy_run.json`), and
ending the run truthfully. It knows nothing of Lightning's internals: it hands training a logger and a
checkpoint to resume from, and records the `TrainingResult` (or the error) it gets back. Other ranks of a
multi-process job never construct it.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from actstudy import logs, metric_names, outcomes
from actstudy.config.schema import ConfigError, JobSpec
from actstudy.credentials import redact
from actstudy.errors import TrackingUnavailable, first_line
from actstudy.jobs.run_state import FolderLock, RunState, current_owner
from actstudy.report.collect import RunData
from actstudy.report.layer_figure import DrawAtCheckpoint, LayerFigures
from actstudy.tracking import store as tracking
from actstudy.tracking import system_metrics
from actstudy.tracking.logger import MlflowRunLogger
from actstudy.training.trainer import CHECKPOINT_KEY, LAST_CHECKPOINT, TrainingResult

log = logging.getLogger("actstudy")


@dataclass(frozen=True)
class Start:
    """What `TrackedJob.start` decided: train (from `resume_from`, if set), or keep a finished run."""

    resume_from: Path | None = None
    finished: RunState | None = None  # the job had finished already: nothing to train
    previous: RunState | None = None  # the job's last run in this store, if it was of the same config


def checkpoint_fingerprint(path: Path) -> str | None:
    """Return the job fingerprint stored in a checkpoint (None for one written without it, or unreadable).

    Read with `weights_only=True`, as Lightning reads it to resume: a job folder may sit on a shared file
    system, and a pickle that names anything but tensors and plain data would run code as whoever
    resumes. Such a file is refused (ConfigError, one line naming it) before any run is touched.
    """
    import pickle

    import torch

    try:
        meta = torch.load(path, map_location="cpu", weights_only=True).get(CHECKPOINT_KEY) or {}
    except pickle.UnpicklingError as exc:  # it names a global that a weights-only load refuses
        found = re.search(r"(?i)unsupported(?: global:)? GLOBAL (\S+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise ConfigError(
            f"{path} holds more than tensors and plain data{what}: it was not loaded, since loading it "
            "could run code; move it away (the job then starts a new run) or resume=false"
        ) from exc
    except Exception as exc:  # truncated by a kill during the save, a full disk: not resumable
        log.warning("cannot read the checkpoint %s (%s): starting a new run", path, first_line(exc))
        return None
    return meta.get("fingerprint")


class TrackedJob:
    """One job's MLflow run and state file: `claim`, `decide`, `open`, then `finish` or `fail`."""

    def __init__(self, spec: JobSpec, uri: str, world_size: int = 1):
        self.spec, self.uri, self.world_size = spec, uri, world_size
        self.lock = FolderLock(spec.output_dir)
        self.client: MlflowClient | None = None
        self.run_id = ""
        self.state: RunState | None = None
        self.logger: MlflowRunLogger | None = None
        self.figures: LayerFigures | None = None
        self.system_monitor = None  # MLflow's SystemMetricsMonitor while the run is open

    def claim(self) -> FolderLock:
        """Return the job folder's lock, taken for this process (ConfigError if another process holds it):
        the `with` block around the job's life, the one place it is let go."""
        self.lock.acquire(self.spec.output_dir.name)
        return self.lock

    def checkpoints_of(self, run_id: str) -> Path:
        """Return the checkpoint folder of one run of this job (each run has its own; none is deleted)."""
        return self.spec.output_dir / "checkpoints" / run_id[:12]

    @property
    def checkpoint_dir(self) -> Path:
        """Return this run's checkpoint folder."""
        return self.checkpoints_of(self.run_id)

    @property
    def last_checkpoint(self) -> Path:
        """Return where training keeps this run's latest checkpoint."""
        return self.checkpoint_dir / LAST_CHECKPOINT

    def decide(self) -> Start:
        """Return what this attempt does: continue the job's unfinished run, keep a finished one, or begin.

        Only a run of the same config (fingerprint) in the same store continues. Changes nothing; raises
        ConfigError for a `resume=true` that cannot be honoured.
        """
        spec, mode = self.spec, self.spec.cfg.resume
        previous = RunState.load(spec.output_dir, strict=mode != "false")
        same = (
            previous is not None
            and previous.run_id is not None
            and (previous.fingerprint, previous.tracking_uri, previous.experiment)
            == (spec.fingerprint, redact(self.uri), spec.cfg.tracking.experiment)
            and tracking.run_exists(self._client(), previous.run_id)
        )
        resume_from, kept = None, None
        if same:
            assert previous is not None and previous.run_id is not None  # what `same` checked first
            if mode != "false" and previous.outcome in outcomes.SUCCESSFUL:
                if mode == "true":
                    raise ConfigError(
                        f"resume=true but this job's run {previous.run_id} has finished "
                        f"({previous.outcome}); resume=false trains it again as a new run"
                    )
                return Start(finished=previous, previous=previous)
            checkpoint = self.checkpoints_of(previous.run_id) / LAST_CHECKPOINT
            if (
                mode != "false"  # a new run: the checkpoint is not read at all
                and previous.outcome in outcomes.RESUMABLE
                and checkpoint.exists()
                and checkpoint_fingerprint(checkpoint) == spec.fingerprint
            ):
                resume_from = checkpoint
            kept = previous
        if mode == "true" and resume_from is None:
            raise ConfigError(
                "resume=true but there is no unfinished run of this config with a checkpoint in "
                f"{spec.output_dir}"
            )
        return Start(resume_from=resume_from, previous=kept)

    def open(self, start: Start) -> None:
        """Continue the decided run or create a new one; record it in the state file; make its logger."""
        spec, cfg, client = self.spec, self.spec.cfg, self._client()
        experiment_id = tracking.experiment_id(client, cfg.tracking.experiment)
        logged: dict[str, int] = {}
        previous = start.previous  # from decide: only a run with a run id is kept as the previous one
        if start.resume_from is not None:
            assert previous is not None and previous.run_id is not None  # decide resumes only that run
            self.run_id = previous.run_id
            logged = tracking.last_logged_steps(client, self.run_id)
            client.update_run(self.run_id, status="RUNNING")
            tracking.delete_tags(client, self.run_id, [outcomes.OUTCOME, outcomes.ERROR])
            last = max((s for k, s in logged.items() if not k.startswith("system/")), default=-1)
            log.info("resuming run %s from %s (logged through step %d)", self.run_id, start.resume_from, last)
        else:
            previous_id = None
            if previous is not None:
                assert previous.run_id is not None  # see above
                previous_id = previous.run_id
                if previous.outcome is None:  # died; cannot continue
                    why = "the process died; not resumed"
                    tracking.end_run(client, previous_id, outcomes.INTERRUPTED, why, "FAILED")
            self.run_id = self._create_run(client, experiment_id)
            if previous_id is not None:
                superseded = {outcomes.SUPERSEDED_BY: self.run_id}
                tracking.log_params_and_tags(client, previous_id, {}, superseded)
        self.state = RunState(
            self.run_id,
            spec.run_name,
            redact(self.uri),
            spec.fingerprint,
            cfg.tracking.experiment,
            **current_owner(),
        )
        owner = {
            outcomes.HOST: self.state.host,
            outcomes.PID: str(self.state.pid),
            outcomes.WORLD_SIZE: str(self.world_size),
        }
        tracking.log_params_and_tags(client, self.run_id, {}, owner)
        self.state.save(spec.output_dir)
        # a sweep's job says its run in its end line and the sweep its link: the id goes to the log file
        (logs.detail() if spec.sweep_id else log).info(
            "MLflow run %s (%s) in experiment '%s' at %s",
            spec.run_name,
            self.run_id,
            cfg.tracking.experiment,
            self.state.tracking_uri,  # redacted
        )
        self.logger = MlflowRunLogger(client, self.run_id, logged)
        self.figures = LayerFigures(client, self.run_id, spec.run_name)
        if cfg.tracking.system_metrics:
            resumed = start.resume_from is not None
            self.system_monitor = system_metrics.start_monitor(self.uri, self.run_id, resumed)

    def callbacks(self) -> list[DrawAtCheckpoint]:
        """Return the callbacks training runs for this run: the per-layer figure at every checkpoint."""
        return [DrawAtCheckpoint(self.figures)] if self.figures is not None else []

    def _client(self) -> MlflowClient:
        """Open the store on first use (a job without an earlier run opens it after its data is checked)."""
        if self.client is None:
            self.client = tracking.open_client(self.uri, self.spec.cfg.tracking.server_wait_s)
        return self.client

    def recorded_val_acc(self, run_id: str) -> float:
        """Return the last val/acc a finished run recorded (NaN if none)."""
        return self._client().get_run(run_id).data.metrics.get(metric_names.VAL_ACC, math.nan)

    def _create_run(self, client: MlflowClient, experiment_id: str) -> str:
        spec = self.spec
        tags = {
            outcomes.RUN_NAME: spec.run_name,
            outcomes.KIND: outcomes.KIND_JOB,
            outcomes.FINGERPRINT: spec.fingerprint,
            outcomes.OVERRIDES: " ".join(spec.overrides),
            outcomes.OUTPUT_DIR: str(spec.output_dir.resolve()),
            outcomes.GIT_COMMIT: tracking.git_commit(),
            **tracking.slurm_tags(),
        }
        if spec.parent_run_id:
            tags[outcomes.PARENT] = spec.parent_run_id
            tags[outcomes.SWEEP_ID] = spec.sweep_id or ""
        run = client.create_run(experiment_id, run_name=spec.run_name, tags=tags)
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
        assert self.figures is not None  # made by open
        self.figures.finish()  # after the last step: off the hot path
        tracking.log_params_and_tags(self._client(), self.run_id, {}, extra)
        cfg = self.spec.cfg
        if (
            result.outcome != outcomes.INTERRUPTED
            and cfg.tracking.log_checkpoint
            and self.last_checkpoint.exists()
        ):
            checkpoint = str(self.last_checkpoint)
            self._client().log_artifact(self.run_id, checkpoint, "checkpoints")
        self._end(result.outcome)

    def fail(self, outcome: str, error: str | None, status: str | None = None) -> None:
        """End the run as `interrupted` or `failed` (with `error`), keeping every metric already logged.

        `status` overrides the outcome's MLflow status (a killed process: FAILED, not KILLED). Before the run
        exists (its creation failed) there is nothing to end.
        """
        if self.state is None:  # opening failed: end the run if it was created
            if self.run_id:
                tracking.end_run(self._client(), self.run_id, outcome, error, status)
            return
        try:
            self._flush()
        finally:
            try:
                self._end(outcome, error, status)
            except TrackingUnavailable as exc:  # the state file says so; the job's own error goes on up
                log.error("run %s not ended in MLflow: %s", self.spec.run_name, exc)

    def _flush(self) -> None:
        if self.logger is not None:
            self.logger.flush()

    def _stop_recorders(self) -> None:
        """Stop the system metrics monitor (its last samples written) and wait for a figure being drawn."""
        monitor, self.system_monitor = self.system_monitor, None
        if monitor is not None:
            monitor.finish()
        if self.figures is not None:
            self.figures.wait()

    def _describe(self, outcome: str) -> None:
        """Write the run's description (its key numbers) and say the job's end line; a failure to write
        the description only warns."""
        from actstudy.jobs.progress import job_line, log_file
        from actstudy.jobs.sweep import SweepInfo
        from actstudy.report.description import describe_run

        try:
            figure = self.figures.final if self.figures is not None else None
            run = describe_run(self._client(), self.run_id, outcome, figure)
        except Exception as exc:
            log.warning("writing the description of run %s failed: %s", self.run_id, exc)
            log.info("run %s ended: %s", self.spec.run_name, outcome)
            return
        if outcome in outcomes.SUCCESSFUL:  # once per run: an interrupted attempt's would repeat
            self._log_summary(run)
        sweep = SweepInfo.load(self.spec.output_dir.parent) if self.spec.sweep_id else None
        log.info(job_line(run, sweep.jobs if sweep else [], self.spec.output_dir, log_file()))

    def _log_summary(self, run: RunData) -> None:
        """Log the run's summary metrics at its last step (`measures.summary`); a failure only warns."""
        from actstudy.report.measures import summary

        step = max((points[-1][0] for points in run.metrics.values() if points), default=0)
        try:
            self._client().log_batch(self.run_id, metrics=tracking.metric_points(summary(run), step))
        except Exception as exc:
            log.warning("logging the summary metrics of run %s failed: %s", self.run_id, exc)

    def _end(self, outcome: str, error: str | None = None, status: str | None = None) -> None:
        assert self.state is not None  # made by open: a run is ended here only once it has its state
        try:
            self._stop_recorders()
        finally:
            try:
                tracking.end_run(self._client(), self.run_id, outcome, error, status)
            except TrackingUnavailable as exc:  # the server stayed down: only the state file can tell
                self.state.outcome = outcomes.FAILED
                self.state.error = f"{error or outcome}; its MLflow run could not be ended: {exc}"
                self.state.save(self.spec.output_dir)
                raise
        self.state.outcome, self.state.error = outcome, error
        self.state.save(self.spec.output_dir)
        self._describe(outcome)  # after the end: a second Ctrl-C here leaves the run ended truthfully
