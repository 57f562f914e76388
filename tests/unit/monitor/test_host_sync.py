"""The training loop reads device values on the host only where designed: one transfer per logging step
(train metrics and the divergence flag) and one per monitored step (the monitor's statistics).

On a GPU each such read is a host synchronisation; here, on a CPU, every Python-level read of a tensor
value (`item`, `tolist`, `bool`, `float`, `int`, `cpu`, `numpy`) is counted instead, per training step.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch

from actstudy.data import load_splits
from actstudy.monitor.histogram_file import FILE_NAME, read_histograms
from actstudy.training import trainer as training
from tests.helpers.monitor import config

READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy")
STEPS, LOG_EVERY, MONITOR_EVERY = 120, 10, 50


class StepReads(L.Callback):
    """Count tensor reads inside each training step, from its batch start to its batch end."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.reads: Counter[int] = Counter()
        self.steps_seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, idx):
        self.step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, idx):
        self.steps_seen += 1
        self.step = None  # the last callback: every other batch-end hook has run


def test_host_reads_happen_only_on_logging_and_monitored_steps(monkeypatch, tmp_path: Path):
    cfg = config(
        "data=shapes", f"data.train_size={STEPS * 8}", "data.val_size=16", "data.test_size=16",
        "data.batch_size=8", "model.width=4", "depth=2", "trainer.max_epochs=1", "trainer.accelerator=cpu",
        f"trainer.log_every_n_steps={LOG_EVERY}", f"monitor.every_n_steps={MONITOR_EVERY}",
        "trainer.progress=log",
    )  # fmt: skip
    splits = load_splits(cfg.data)
    counter = StepReads()
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            if counter.step is not None:
                counter.reads[counter.step] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    result = training.train(cfg, splits, tmp_path / "checkpoints", callbacks=[counter])

    assert result.outcome == "completed" and counter.steps_seen == STEPS
    designed = Counter(
        {s: (s % LOG_EVERY == 0) + (s % MONITOR_EVERY == 0) for s in range(STEPS) if s % LOG_EVERY == 0}
    )
    assert dict(counter.reads) == dict(designed)
    # the same transfer carried the histograms (activations and gradients) of every monitored step
    histograms = read_histograms(tmp_path / "checkpoints" / FILE_NAME)
    assert histograms.steps.tolist() == list(range(0, STEPS, MONITOR_EVERY))
    assert histograms.gradient_counts.sum(axis=2).min() > 0
    print(
        f"\nhost reads over {STEPS} steps: {sum(counter.reads.values())} (designed {sum(designed.values())})"
    )


@pytest.mark.parametrize("name", READS)
def test_the_counter_sees_each_kind_of_read(monkeypatch, name):
    """The patched methods are the ones Python calls: a read the loop made would not go unnoticed."""
    seen = []
    original = getattr(torch.Tensor, name)
    monkeypatch.setattr(torch.Tensor, name, lambda self, *a, **k: seen.append(1) or original(self, *a, **k))
    t = torch.ones((), dtype=torch.long)
    {"__bool__": bool, "__float__": float, "__int__": int, "__index__": lambda x: [0, 1][x]}.get(
        name, lambda x: getattr(x, name)()
    )(t)
    assert seen
