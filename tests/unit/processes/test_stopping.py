"""What the stop protocol (actstudy.processes.stopping) relies on in Lightning: fails loudly if that changes.

The protocol calls the SIGTERM handler that `Trainer.fit` registers, on every rank at the same batch, and
expects fit to end after that batch with `SIGTERMException` (a SystemExit) through `on_exception`. These
tests check exactly that on a plain Lightning Trainer, without actstudy's own callbacks in between.
"""

from __future__ import annotations

import signal

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn

from actstudy.processes import stopping


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class CallsLightningsHandler(L.Callback):
    """Call the SIGTERM handler fit registered, as GracefulStop does, at the end of batch `at`."""

    def __init__(self, at: int) -> None:
        self.at, self.handler, self.seen, self.exception = at, None, [], None

    def on_train_start(self, trainer, pl_module) -> None:
        self.handler = signal.getsignal(signal.SIGTERM)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, idx) -> None:
        self.seen.append(idx)
        if idx == self.at:
            self.handler(signal.SIGTERM, None)

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.exception = exception


def _fit(callback: L.Callback) -> L.Trainer:
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(40, 2)), batch_size=4)
    trainer = L.Trainer(
        max_epochs=1, callbacks=[callback], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(Tiny(), train_dataloaders=data)
    return trainer


def test_fit_registers_a_sigterm_handler_that_stops_it_after_the_current_batch():
    callback = CallsLightningsHandler(at=2)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SIGTERMException) as raised:
        _fit(callback)
    assert callable(callback.handler) and callback.handler is not before  # fit's own handler
    assert callback.seen == [0, 1, 2]  # the batch that asked ran to its end, and no batch after it
    assert callback.exception is raised.value  # every callback's on_exception sees it (last.ckpt saved)
    assert isinstance(raised.value, stopping.STOPPED)  # what training catches as a stop


def test_without_a_call_fit_runs_through():
    callback = CallsLightningsHandler(at=-1)
    trainer = _fit(callback)
    assert callback.seen == list(range(10)) and trainer.global_step == 10
