"""The LightningModule: cross-entropy classification with torchmetrics accuracy and mean loss."""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.functional.classification import multiclass_accuracy

from actstudy.config import OptimizerConfig


class ClassifierModule(L.LightningModule):
    """Trains `model`; logs `train/*`, `val/*`, `test/*` loss and accuracy; exposes the hidden layers.

    Training metrics go straight to the loggers every `trainer.log_every_n_steps` steps, with the step
    number of the update the batch produces (as the monitor does), in one host sync; `self.log` would
    cost about a millisecond per call and step on a CPU, which is most of the harness's overhead.
    """

    def __init__(self, model: nn.Module, optimizer: OptimizerConfig, num_classes: int):
        super().__init__()
        self.model = model
        self.optimizer_cfg = optimizer
        self.num_classes = num_classes
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
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
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self._log_train(logits.detach(), y, loss.detach())
        return loss

    def _log_train(self, logits: Tensor, y: Tensor, loss: Tensor) -> None:
        acc = multiclass_accuracy(logits, y, self.num_classes, average="micro", validate_args=False)
        train_loss, train_acc = torch.stack([loss.float(), acc.float()]).tolist()
        metrics = {"train/loss": train_loss, "train/acc": train_acc, "epoch": self.current_epoch}
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)

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
