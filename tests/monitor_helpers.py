"""Run the real monitor inside a real Lightning Trainer on fixed batches and collect what it logs."""

from __future__ import annotations

from collections.abc import Mapping

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.loggers.logger import Logger
from torch import Tensor

import actstudy.train  # noqa: F401  (registers the config resolver)
from actstudy.config import RunConfig, parse_config
from actstudy.models import build_model
from actstudy.module import ClassifierModule
from actstudy.monitor import GradientFlowMonitor
from actstudy.paths import CONF_DIR


class MemoryLogger(Logger):
    """A Lightning logger that keeps every logged point in memory: {step: {key: value}}."""

    def __init__(self) -> None:
        super().__init__()
        self.points: dict[int, dict[str, float]] = {}

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


def config(*overrides: str) -> RunConfig:
    """Return the validated config composed from conf/ with `overrides`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return parse_config(compose("config", overrides=list(overrides)))


def train_steps(
    cfg: RunConfig, batches: list[tuple[Tensor, Tensor]], every_n_steps: int = 1, model=None
) -> tuple[MemoryLogger, ClassifierModule]:
    """Return the logger and module after training on `batches` (one step each) with the monitor on."""
    torch.manual_seed(cfg.seed)
    x0 = batches[0][0]
    model = model or build_model(cfg, tuple(x0.shape[1:]), 10)
    module = ClassifierModule(model, cfg.optimizer, 10)
    logger = MemoryLogger()
    trainer = L.Trainer(
        max_steps=len(batches),
        logger=logger,
        callbacks=[GradientFlowMonitor(cfg.activation, every_n_steps)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        log_every_n_steps=1000,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_dataloaders=FixedBatches(batches))
    return logger, module
