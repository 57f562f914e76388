"""The LightningModule: classification with the `model.head` loss, torchmetrics accuracy and mean loss."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import cast

import lightning as L
import torch
from hydra.utils import get_object
from torch import Tensor, nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.functional.classification import multiclass_accuracy

from actstudy import metric_names
from actstudy.config.schema import OptimizerConfig
from actstudy.models.head import HEADS
from actstudy.models.hidden_block import HiddenBlock

log = logging.getLogger("actstudy")


class ClassifierModule(L.LightningModule):
    """Trains `model`; logs `train/*`, `val/*`, `test/*` loss and accuracy; exposes the hidden layers.

    Training metrics go straight to the loggers every `trainer.log_every_n_steps` steps, with the step
    number of the update the batch produces (as the monitor does), in one host sync; `self.log` would
    cost about a millisecond per call and step on a CPU, which is most of the harness's overhead. Under
    DDP they are the mean over all ranks' shards, i.e. over the global batch.

    A non-finite loss is noted on the device every step and read on logging steps and at the end of each
    epoch (with the train metrics, no sync of its own); then training stops on every rank at once and
    `diverged_step` holds the first bad step.

    `perf/step_ms` is logged with the train metrics: the wall time per step between two logging steps'
    host syncs (the first window of an epoch starts at the epoch's start, so validation is never in it),
    monitored steps and step checkpoints included: throughput, measured without a sync of its own (each
    logging step's read already waits for the device). It is timed, so no two runs repeat it.

    The loss is `head`'s (`actstudy.models.head.HEADS`): softmax cross-entropy, or Nielsen's cross-entropy
    of sigmoid outputs.
    """

    def __init__(self, model: nn.Module, optimizer: OptimizerConfig, num_classes: int, head: str = "softmax"):
        super().__init__()
        self.model = model
        self.loss_fn = HEADS[head]
        self.optimizer_cfg = optimizer
        self.num_classes = num_classes
        self.val_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.test_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.test_examples = SumMetric()
        self.train_metrics: dict[str, float] = {}  # the last logged train metrics, on the host
        self.test_split = "test"  # metric_names.TEST_AT_BEST_VAL while the best checkpoint is tested
        self.diverged_step: int | None = None
        self._first_bad: Tensor | None = None  # first step with a non-finite loss on this rank, -1: none
        self._window: tuple[float, int] | None = None  # (perf_counter, global step) where the window began

    def _blocks(self) -> Iterable[HiddenBlock]:
        # the models (actstudy.models: MLP, CNN) keep their hidden blocks in the ModuleList `blocks`;
        # nn.Module's attribute lookup is typed Tensor | Module
        return cast(Iterable[HiddenBlock], self.model.blocks)

    def hidden_layers(self) -> list[tuple[nn.Module, nn.Module]]:
        """Return (weight layer, activation module) of each hidden block, from the input side."""
        return [(block.layer, block.act) for block in self._blocks()]

    def hidden_biases(self) -> list[Tensor | None]:
        """Return each hidden block's bias: the layer's own, else batch norm's shift, which sits where the
        bias would (its gradient is the layer's delta, Nielsen's ||delta^l||, in both arms of a BN study)."""
        # a layer's bias is a Parameter (or None); nn.Module's attribute lookup is typed Tensor | Module
        return [
            (
                cast(Tensor, block.layer.bias)
                if block.layer.bias is not None
                else getattr(block.norm, "bias", None)
            )
            for block in self._blocks()
        ]

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        self._note_divergence(loss.detach())
        # set on the Trainer by Lightning's LoggerConnector, not declared on the class
        if self.global_step % self.trainer.log_every_n_steps == 0:  # type: ignore[attr-defined]
            acc = multiclass_accuracy(
                logits.detach(), y, self.num_classes, average="micro", validate_args=False
            )
            self._read_train_metrics(loss.detach().float(), acc.float(), to_loggers=True)
        return loss

    def _note_divergence(self, loss: Tensor) -> None:
        if self._first_bad is None:
            # float32 whatever the precision: bf16 cannot hold step 1001, fp16 no step above 65504
            self._first_bad = torch.full((), -1.0, device=loss.device, dtype=torch.float32)
        bad = ~torch.isfinite(loss) & (self._first_bad < 0)
        self._first_bad = torch.where(
            bad, torch.full_like(self._first_bad, self.global_step), self._first_bad
        )

    def _read_train_metrics(self, loss: Tensor, acc: Tensor, to_loggers: bool) -> None:
        """Bring loss, accuracy and the divergence flag of all ranks to the host in one transfer."""
        assert self._first_bad is not None  # set by _note_divergence, which every training step calls first
        values = torch.stack([loss, acc, self._first_bad]).view(1, 3)
        if self.trainer.world_size > 1:
            values = cast(Tensor, self.all_gather(values)).view(-1, 3)  # gathering a tensor gives a tensor
        rows = values.tolist()  # the one host sync of a logging step
        bad_steps = [int(row[2]) for row in rows if row[2] >= 0]
        if to_loggers:
            self.train_metrics = {
                metric_names.TRAIN_LOSS: sum(row[0] for row in rows) / len(rows),
                metric_names.TRAIN_ACC: sum(row[1] for row in rows) / len(rows),
                "epoch": self.current_epoch,
            }
            now, step = time.perf_counter(), self.global_step
            if self._window is not None and step > self._window[1]:
                self.train_metrics[metric_names.PERF_STEP_MS] = (
                    1000 * (now - self._window[0]) / (step - self._window[1])
                )
            self._window = (now, step)
            for logger in self.loggers:
                logger.log_metrics(self.train_metrics, step=self.global_step)
        if bad_steps and self.diverged_step is None:
            self.diverged_step = min(bad_steps)
            log.warning("loss became non-finite at step %d: stopping (outcome: diverged)", self.diverged_step)
            self.trainer.should_stop = True

    def on_train_epoch_start(self) -> None:
        self._window = (time.perf_counter(), self.global_step)

    def on_train_epoch_end(self) -> None:
        if self._first_bad is not None and self.diverged_step is None:  # a NaN after the last logging step
            nan = torch.full((), math.nan, device=self._first_bad.device, dtype=torch.float32)
            self._read_train_metrics(nan, nan, to_loggers=False)

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        logits = self.model(x)
        loss_metric, acc_metric = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_acc")
        loss_metric(self.loss_fn(logits, y), weight=len(y))
        acc_metric(logits, y)
        split = self.test_split if stage == "test" else stage
        loss_key, acc_key = metric_names.split_key(split, "loss"), metric_names.split_key(split, "acc")
        self.log(loss_key, loss_metric, on_step=False, on_epoch=True)
        self.log(acc_key, acc_metric, on_step=False, on_epoch=True, prog_bar=True)
        if split == "test":  # the same images for the best checkpoint's test: logged once
            self.test_examples(torch.tensor(float(len(y)), device=logits.device))
            self.log(metric_names.TEST_EXAMPLES, self.test_examples, on_step=False, on_epoch=True)
            self.log(metric_names.TEST_CHANCE_ACC, 1.0 / self.num_classes, on_step=False, on_epoch=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        o = self.optimizer_cfg
        return get_object(o._target_)(self.parameters(), lr=o.lr, **o.arguments)
