"""Run the real monitor inside a real Lightning Trainer on fixed batches and collect what it logs."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.loggers.logger import Logger
from omegaconf import OmegaConf
from torch import Tensor

from actstudy.config.schema import RunConfig, parse_config
from actstudy.models import build_model
from actstudy.monitor.histogram_file import FILE_NAME, Histograms, read_histograms
from actstudy.paths import CONF_DIR
from actstudy.training.module import ClassifierModule
from actstudy.training.trainer import build_trainer


class MemoryLogger(Logger):
    """A Lightning logger that keeps every logged point in memory: {step: {key: value}}, and (set by
    `train_steps`) the histogram artifact the run wrote."""

    def __init__(self) -> None:
        super().__init__()
        self.points: dict[int, dict[str, float]] = {}
        self.histograms: Histograms | None = None

    name = "memory"
    version = "0"

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.points.setdefault(int(step or 0), {}).update(metrics)


class FixedBatches:
    """An iterable of ready-made batches (a list would be read by Lightning as several dataloaders)."""

    def __init__(self, batches: list[tuple[Tensor, Tensor]]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def config_dict(*overrides: str) -> dict:
    """Return the resolved config composed from conf/ with `overrides`, as plain data."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=True)


def config(*overrides: str) -> RunConfig:
    """Return the validated config composed from conf/ with `overrides`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return parse_config(compose("config", overrides=list(overrides)))


def train_steps(
    cfg: RunConfig, batches: list[tuple[Tensor, Tensor]], every_n_steps: int = 1, model=None
) -> tuple[MemoryLogger, ClassifierModule]:
    """Return the logger and module after training on `batches` (one step each) with the monitor on.

    The Trainer is the harness's own (`actstudy.training.trainer.build_trainer`), fed with fixed batches.
    """
    cfg = dataclasses.replace(
        cfg,
        monitor=dataclasses.replace(cfg.monitor, enabled=True, every_n_steps=every_n_steps),
        trainer=dataclasses.replace(
            cfg.trainer, max_epochs=1, log_every_n_steps=1000, accelerator="cpu", progress="none"
        ),
    )
    torch.manual_seed(cfg.seed)
    x0 = batches[0][0]
    model = model or build_model(cfg, tuple(x0.shape[1:]), 10)
    module = ClassifierModule(model, cfg.optimizer, 10, cfg.model.head)
    logger = MemoryLogger()
    with tempfile.TemporaryDirectory() as checkpoints:
        trainer, _ = build_trainer(cfg, Path(checkpoints), logger)
        trainer.fit(module, train_dataloaders=FixedBatches(batches))
        artifact = Path(checkpoints) / FILE_NAME
        logger.histograms = read_histograms(artifact) if artifact.exists() else None
    return logger, module
