"""One training job from validated config to a truthfully ended MLflow run.

Order matters: everything that can fail because of bad input (config, tracking store, dataset, resume
state) is checked before a run is created, so a bad command never leaves a run behind.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.environments import SLURMEnvironment
from mlflow.tracking import MlflowClient

from actstudy import tracking
from actstudy.callbacks import DivergenceGuard, FlushMetricsBeforeCheckpoint, InterruptCheckpoint, LogProgress
from actstudy.config import ConfigError, JobSpec, RunConfig
from actstudy.data import TensorDataModule, load_splits
from actstudy.errors import RunInterrupted
from actstudy.logger import MlflowRunLogger
from actstudy.models import build_model
from actstudy.module import ClassifierModule
from actstudy.monitor import GradientFlowMonitor
from actstudy.run_state import RESUMABLE, RunState, current_owner

log = logging.getLogger("actstudy")
if logging.getLogger().hasHandlers():  # Hydra's handlers print Lightning's messages: no duplicate
    logging.getLogger("lightning").handlers.clear()


def global_rank() -> int:
    """Return this process's rank in a multi-process (DDP / SLURM multi-task) job."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def decide_resume(mode: str, state: RunState | None, checkpoint: Path) -> str | None:
    """Return the MLflow run id to continue, or None to start a new run; raise if `resume=true` can't."""
    resumable = state is not None and state.run_id and state.outcome in RESUMABLE and checkpoint.exists()
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


def _trainer_kwargs(cfg: RunConfig) -> dict:
    t = cfg.trainer
    on_cpu = t.accelerator == "cpu" or (t.accelerator == "auto" and not torch.cuda.is_available())
    deterministic = {"auto": on_cpu, "true": True, "false": False}[t.deterministic]
    return dict(
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        precision=t.precision,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        limit_test_batches=t.limit_test_batches,
        log_every_n_steps=t.log_every_n_steps,
        deterministic=deterministic,
        gradient_clip_val=t.gradient_clip_val,
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )


def _show_bar(progress: str) -> bool:
    return progress == "bar" or (progress == "auto" and sys.stderr.isatty())


def _start_run(client: MlflowClient, spec: JobSpec, experiment_id: str) -> str:
    tags = {
        "mlflow.runName": spec.run_name,
        "actstudy.kind": "job",
        "actstudy.overrides": " ".join(spec.overrides),
        "actstudy.output_dir": str(spec.output_dir.resolve()),
        "git.commit": tracking.git_commit(),
        **tracking.slurm_tags(),
    }
    if spec.parent_run_id:
        tags["mlflow.parentRunId"] = spec.parent_run_id
        tags["actstudy.sweep_id"] = spec.sweep_id or ""
    run = tracking.retry(lambda: client.create_run(experiment_id, run_name=spec.run_name, tags=tags))
    run_id = run.info.run_id
    tracking.log_params_and_tags(client, run_id, tracking.flatten(spec.resolved), {})
    config_dir = spec.output_dir / "actstudy_config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.yaml").write_text(yaml.safe_dump(spec.resolved, sort_keys=False))
    (config_dir / "overrides.yaml").write_text(yaml.safe_dump(spec.overrides))
    client.log_artifacts(run_id, str(config_dir), "config")
    return run_id


def _build_trainer(
    spec: JobSpec, logger: MlflowRunLogger | bool, checkpoint_dir: Path
) -> tuple[L.Trainer, DivergenceGuard, InterruptCheckpoint]:
    """Return the Trainer and the callbacks whose state decides the run's outcome."""
    cfg = spec.cfg
    guard = DivergenceGuard(cfg.trainer.log_every_n_steps)
    interrupt = InterruptCheckpoint(checkpoint_dir / "last.ckpt")
    checkpointing = ModelCheckpoint(
        dirpath=checkpoint_dir,
        filename="best",
        monitor="val/acc",
        mode="max",
        save_top_k=1,
        save_last=True,
        every_n_train_steps=cfg.trainer.checkpoint_every_n_steps,
    )
    callbacks: list[L.Callback] = [FlushMetricsBeforeCheckpoint(), checkpointing, guard, interrupt]
    if cfg.monitor.enabled:
        m = cfg.monitor
        callbacks.append(GradientFlowMonitor(cfg.activation, m.every_n_steps, m.activations))
    show_bar = _show_bar(cfg.trainer.progress)
    if cfg.trainer.progress != "none" and not show_bar:
        callbacks.append(LogProgress())
    # Under SLURM the launcher (submitit) requeues; Lightning must not requeue a second time.
    plugins = [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None
    trainer = L.Trainer(
        **_trainer_kwargs(cfg),
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=show_bar,
        enable_checkpointing=True,
        default_root_dir=spec.output_dir,
        plugins=plugins,
    )
    return trainer, guard, interrupt


def run_job(spec: JobSpec) -> float:
    """Train, validate and test one job into its MLflow run; return the final validation accuracy.

    The caller has checked that the tracking store is reachable (`actstudy.train` does so before
    importing this module). Raises ConfigError / DatasetUnavailable before any run exists,
    RunInterrupted after Ctrl-C or SIGTERM (run KILLED, resumable), and re-raises training errors
    (run FAILED).
    """
    cfg = spec.cfg
    uri = tracking.resolve_uri(cfg.tracking.uri)
    splits = load_splits(cfg.data)
    checkpoint_dir = spec.output_dir / "checkpoints"
    last_ckpt = checkpoint_dir / "last.ckpt"
    state = RunState.load(spec.output_dir)
    resume_run_id = decide_resume(cfg.resume, state, last_ckpt)
    rank_zero = global_rank() == 0

    client = tracking.open_client(uri)
    experiment_id = tracking.experiment_id(client, cfg.tracking.experiment)
    skip_through_step = -1
    if resume_run_id is not None:
        skip_through_step = tracking.last_logged_step(client, resume_run_id)
        run_id = resume_run_id
        if rank_zero:
            tracking.retry(lambda: client.update_run(run_id, status="RUNNING"))
            log.info("resuming run %s from %s (logged through step %d)", run_id, last_ckpt, skip_through_step)
    else:
        if state is not None and state.run_id and state.outcome is None and rank_zero:
            tracking.end_run(client, state.run_id, "interrupted", "the process died; not resumed", "FAILED")
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        run_id = _start_run(client, spec, experiment_id) if rank_zero else ""
    state = RunState(run_id, spec.run_name, uri, **current_owner())
    if rank_zero:
        owner = {"actstudy.host": state.host, "actstudy.pid": str(state.pid)}
        tracking.log_params_and_tags(client, run_id, {}, owner)
        state.save(spec.output_dir)
        log.info(
            "MLflow run %s (%s) in experiment '%s' at %s", spec.run_name, run_id, cfg.tracking.experiment, uri
        )

    logger = MlflowRunLogger(client, run_id, skip_through_step) if rank_zero else False
    interrupt: InterruptCheckpoint | None = None
    try:
        L.seed_everything(cfg.seed, workers=False, verbose=False)
        model = build_model(cfg, splits.input_shape, splits.num_classes)
        module = ClassifierModule(model, cfg.optimizer, splits.num_classes)
        datamodule = TensorDataModule(splits, cfg.data, cfg.seed)
        trainer, guard, interrupt = _build_trainer(spec, logger, checkpoint_dir)
        trainer.fit(module, datamodule=datamodule, ckpt_path=last_ckpt if resume_run_id else None)
        if interrupt.interrupted:
            raise RunInterrupted()
        final_val_acc = trainer.callback_metrics.get("val/acc")  # before test() replaces the metrics
        if guard.diverged_step is None:
            trainer.test(module, datamodule=datamodule, verbose=False)
        if logger:
            logger.flush()
    except BaseException as exc:
        interrupted = (interrupt is not None and interrupt.interrupted) or isinstance(
            exc, (KeyboardInterrupt, RunInterrupted)
        )
        outcome = "interrupted" if interrupted else "failed"
        error = None if interrupted else f"{type(exc).__name__}: {exc}"
        if rank_zero:
            try:
                if logger:
                    logger.flush()
            finally:
                tracking.end_run(client, run_id, outcome, error)
                state.outcome, state.error = outcome, error
                state.save(spec.output_dir)
        if interrupted:
            raise RunInterrupted(
                f"run {spec.run_name} interrupted; re-run the same command to resume"
            ) from exc
        raise

    outcome = "completed" if guard.diverged_step is None else "diverged"
    if rank_zero:
        extra = {"actstudy.checkpoint": str(last_ckpt.resolve())}
        if guard.diverged_step is not None:
            extra["actstudy.diverged_step"] = str(guard.diverged_step)
        tracking.log_params_and_tags(client, run_id, {}, extra)
        if cfg.tracking.log_checkpoint and last_ckpt.exists():
            client.log_artifact(run_id, str(last_ckpt), "checkpoints")
        tracking.end_run(client, run_id, outcome)
        state.outcome = outcome
        state.save(spec.output_dir)
        log.info("run %s ended: %s", spec.run_name, outcome)
    return float(final_val_acc) if final_val_acc is not None else math.nan
