"""Training, nothing else: build data module, model, Lightning module and trainer from the typed config;
fit; test; return a small result. No MLflow, no files of its own besides Lightning's checkpoints.

The same function trains every rank of a multi-process job; the caller passes the logger (rank 0 only)
and, for DDP, has joined the process group already (`actstudy.processes.distributed`).
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning.pytorch.strategies import DDPStrategy

from actstudy import metric_names, outcomes
from actstudy.config.schema import RunConfig
from actstudy.data import ImageSplits, TensorDataModule
from actstudy.models import build_model
from actstudy.monitor.gradient_flow import GradientFlowMonitor
from actstudy.monitor.histograms import HistogramArtifact
from actstudy.monitor.sharpness import SharpnessMonitor
from actstudy.processes import distributed
from actstudy.processes.distributed import SINGLE, World
from actstudy.processes.slurm import lightning_environment
from actstudy.processes.stopping import STOPPED, GracefulStop
from actstudy.training.callbacks import CheckpointMeta, FlushMetricsBeforeCheckpoint, LogProgress
from actstudy.training.checkpoint_file import AtomicCheckpointIO
from actstudy.training.module import ClassifierModule

LAST_CHECKPOINT = "last.ckpt"
CHECKPOINT_KEY = "actstudy"  # what actstudy adds to every checkpoint: the job's fingerprint and config


@dataclass(frozen=True)
class TrainingResult:
    """How training ended: outcome (completed, diverged, interrupted), last val/acc, first non-finite step."""

    outcome: str
    val_acc: float = math.nan
    diverged_step: int | None = None


def trainer_kwargs(cfg: RunConfig) -> dict:
    """Return the lightning.Trainer arguments that come straight from `cfg.trainer`."""
    t = cfg.trainer
    on_cpu = not distributed.on_gpu(t.accelerator)
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


class JoinedEnvironment(ClusterEnvironment):
    """Lightning's cluster environment for a job whose ranks actstudy started and joined (`World.join`):
    rank, size and address come from the World, not from environment variables written for Lightning
    (which would outlive the job in a local sweep's process). The process group exists before Lightning
    sets up, so Lightning connects nothing itself."""

    def __init__(self, world: World):
        super().__init__()
        self.world = world

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return self.world.main_address

    @property
    def main_port(self) -> int:
        return self.world.main_port

    @staticmethod
    def detect() -> bool:
        return False

    def world_size(self) -> int:
        return self.world.size

    def set_world_size(self, size: int) -> None:
        if size != self.world.size:
            raise ValueError(f"Lightning asked for {size} processes; this job has {self.world.size}")

    def global_rank(self) -> int:
        return self.world.rank

    def set_global_rank(self, rank: int) -> None:
        if rank != self.world.rank:
            raise ValueError(f"Lightning gave rank {rank} to this job's rank {self.world.rank}")

    def local_rank(self) -> int:
        return self.world.local_rank

    def node_rank(self) -> int:
        return self.world.rank // self.world.local_size


def _strategy(cfg: RunConfig, world: World) -> DDPStrategy | str:
    if world.size == 1:
        return "auto"
    # Under SLURM, submitit requeues; Lightning must not requeue a second time.
    env = lightning_environment() if world.started_by == "slurm" else JoinedEnvironment(world)
    return DDPStrategy(cluster_environment=env, timeout=timedelta(seconds=cfg.trainer.ddp_timeout_s))


def _show_bar(progress: str) -> bool:
    return progress == "bar" or (progress == "auto" and sys.stderr.isatty())


def build_trainer(
    cfg: RunConfig,
    checkpoint_dir: Path,
    logger: Logger | None = None,
    world: World = SINGLE,
    callbacks: Sequence[L.Callback] = (),
    checkpoint_meta: Mapping[str, Any] | None = None,
    stop_requested: threading.Event | None = None,
) -> tuple[L.Trainer, GracefulStop]:
    """Return the configured Trainer (checkpoints into `checkpoint_dir`) and its stop-on-signal callback.

    `callbacks` (tests, benchmarks) run after the harness's own callbacks at every hook.
    """
    stop = GracefulStop(checkpoint_dir / LAST_CHECKPOINT, cfg.trainer.log_every_n_steps, stop_requested)
    # One ModelCheckpoint saves on validation end or every N steps, not both: best.ckpt follows every
    # validation (the report tests it); last.ckpt (the newest, under one name) every epoch and, with
    # checkpoint_every_n_steps, every N steps too.
    best = ModelCheckpoint(
        dirpath=checkpoint_dir, filename="best", monitor=metric_names.VAL_ACC, mode="max", save_top_k=1
    )
    name, steps = LAST_CHECKPOINT.removesuffix(".ckpt"), cfg.trainer.checkpoint_every_n_steps
    one_file: dict[str, Any] = {"dirpath": checkpoint_dir, "filename": name, "enable_version_counter": False}
    last = [ModelCheckpoint(**one_file)]
    if steps is not None:
        last.append(ModelCheckpoint(**one_file, every_n_train_steps=steps))
    all_callbacks: list[L.Callback] = [FlushMetricsBeforeCheckpoint(), best, *last, stop]
    if checkpoint_meta is not None:
        all_callbacks.append(CheckpointMeta(CHECKPOINT_KEY, checkpoint_meta))
    m = cfg.monitor
    if m.enabled and m.sharpness_every_n_steps is not None:
        # before the gradient monitor: its forward hooks must not see the Hessian-vector products
        all_callbacks.append(SharpnessMonitor(m.sharpness_every_n_steps, m.sharpness_iterations))
    if m.enabled:
        monitor = GradientFlowMonitor(cfg.activation, m.every_n_steps, m.activations)
        all_callbacks.append(monitor)
        if m.activations:
            all_callbacks.append(HistogramArtifact(monitor.histograms, checkpoint_dir))
    show_bar = _show_bar(cfg.trainer.progress) and world.is_zero
    if cfg.trainer.progress != "none" and not show_bar and world.is_zero:
        all_callbacks.append(LogProgress())
    all_callbacks += callbacks  # the caller's run after the harness's own
    plugins: list = [AtomicCheckpointIO()]
    if world.size == 1 and SLURMEnvironment.detect():
        plugins.append(lightning_environment())
    trainer = L.Trainer(
        **trainer_kwargs(cfg),
        strategy=_strategy(cfg, world),
        logger=logger if logger is not None else False,
        callbacks=all_callbacks,
        enable_progress_bar=show_bar,
        enable_checkpointing=True,
        default_root_dir=checkpoint_dir.parent,
        plugins=plugins,
    )
    return trainer, stop


def train(
    cfg: RunConfig,
    splits: ImageSplits,
    checkpoint_dir: Path,
    resume_from: Path | None = None,
    logger: Logger | None = None,
    world: World = SINGLE,
    callbacks: Sequence[L.Callback] = (),
    checkpoint_meta: Mapping[str, Any] | None = None,
    stop_requested: threading.Event | None = None,
) -> TrainingResult:
    """Fit (from `resume_from` if given) and test one model (final weights, then the best-validation
    checkpoint); return how it ended.

    Ctrl-C or SIGTERM during fit stop every rank after the same batch with `last.ckpt` saved: outcome
    `interrupted`; during the test they are noted and the test finishes.
    A non-finite loss stops training without a test: outcome `diverged`. Errors propagate.
    `checkpoint_meta` (the job's fingerprint and config) is saved in every checkpoint. `stop_requested`,
    if already set (a signal while the run was set up), stops training after its first batch.
    """
    L.seed_everything(cfg.seed, workers=False, verbose=False)
    model = build_model(cfg, splits.input_shape, splits.num_classes)
    module = ClassifierModule(model, cfg.optimizer, splits.num_classes, cfg.model.head)
    datamodule = TensorDataModule(splits, cfg.data, cfg.seed)
    trainer, stop = build_trainer(
        cfg, checkpoint_dir, logger, world, callbacks, checkpoint_meta, stop_requested
    )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except STOPPED:  # actstudy.processes.stopping: a signal stops fit with Lightning's SIGTERMException
        if stop.interrupted:
            return TrainingResult(outcomes.INTERRUPTED)
        raise
    final_val_acc = trainer.callback_metrics.get(metric_names.VAL_ACC)  # before test() replaces the metrics
    val_acc = float(final_val_acc) if final_val_acc is not None else math.nan
    if stop.requested:  # the signal came during the last batches: fit finished, the test waits for resume
        return TrainingResult(outcomes.INTERRUPTED, val_acc)
    if module.diverged_step is not None:
        return TrainingResult(outcomes.DIVERGED, val_acc, module.diverged_step)
    trainer.test(module, datamodule=datamodule, verbose=False)
    _test_best_checkpoint(trainer, module, datamodule)
    return TrainingResult(outcomes.COMPLETED, val_acc)


def _test_best_checkpoint(trainer: L.Trainer, module: ClassifierModule, datamodule: TensorDataModule) -> None:
    """Log the best validation accuracy and test the checkpoint that reached it (`test_best/*`)."""
    # Lightning types them as the base Checkpoint; build_trainer's are ModelCheckpoints
    checkpoints = (c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint))
    best = next((c for c in checkpoints if c.monitor == metric_names.VAL_ACC), None)
    if best is None or not best.best_model_path or best.best_model_score is None:
        return
    for logger in trainer.loggers:
        best_val = {metric_names.VAL_ACC_BEST: float(best.best_model_score)}
        logger.log_metrics(best_val, step=trainer.global_step)
    module.test_split = metric_names.TEST_AT_BEST_VAL
    try:
        trainer.test(module, datamodule=datamodule, ckpt_path=best.best_model_path, verbose=False)
    finally:
        module.test_split = "test"
