"""The LightningModule: cross-entropy classification with torchmetrics accuracy and mean loss."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from actstudy.config import OptimizerConfig


class ClassifierModule(L.LightningModule):
    """Trains `model`; logs `train/*`, `val/*`, `test/*` loss and accuracy; exposes the hidden layers."""

    def __init__(self, model: nn.Module, optimizer: OptimizerConfig, num_classes: int):
        super().__init__()
        self.model = model
        self.optimizer_cfg = optimizer
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()

    def hidden_layers(self) -> list[tuple[nn.Module, nn.Module]]:
        """Return (weight layer, activation module) of each hidden block, from the input side."""
        return [(block.layer, block.act) for block in self.model.blocks]

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.train_acc(logits, y)
        self.log("train/loss", loss, on_step=True, on_epoch=False)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=False)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        logits = self.model(x)
        loss_metric, acc_metric = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_acc")
        loss_metric(F.cross_entropy(logits, y), weight=len(y))
        acc_metric(logits, y)
        self.log(f"{stage}/loss", loss_metric, on_step=False, on_epoch=True)
        self.log(f"{stage}/acc", acc_metric, on_step=False, on_epoch=True, prog_bar=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        o = self.optimizer_cfg
        if o.name == "adam":
            return torch.optim.Adam(self.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        return torch.optim.SGD(self.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
