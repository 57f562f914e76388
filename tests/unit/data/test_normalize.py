"""`data.normalize`: standardised inputs by default, raw [0, 1] pixels when false, for any dataset."""

from __future__ import annotations

import pytest
import torch

from actstudy.data import TensorDataModule, load_splits
from tests.helpers.monitor import config

# One batch holds the whole training split, so it is a permutation of `splits.train_x`.
WHOLE = {
    "shapes": ["data.train_size=64", "data.val_size=0", "data.test_size=8", "data.batch_size=64"],
    "digits": ["data.batch_size=1000"],
}


@pytest.mark.parametrize("dataset", sorted(WHOLE))
def test_normalize_false_serves_raw_pixels_and_true_standardises(dataset: str) -> None:
    batches = {}
    for normalize in ("true", "false"):
        cfg = config(f"data={dataset}", *WHOLE[dataset], f"data.normalize={normalize}")
        splits = load_splits(cfg.data)
        datamodule = TensorDataModule(splits, cfg.data, seed=0)
        datamodule.setup()
        batches[normalize] = next(iter(datamodule.train_dataloader()))
    (raw, y), (standard, y_standard) = batches["false"], batches["true"]
    assert torch.equal(y, y_standard)  # the same images, scaled two ways
    assert len(y) == len(splits.train_y) and raw.min() >= 0 and raw.max() <= 1
    pixels = splits.train_x.float().div(255).flatten()
    assert torch.equal(torch.sort(raw.flatten()).values, torch.sort(pixels).values)
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1)
    std = torch.tensor(splits.std).view(1, -1, 1, 1)
    assert torch.allclose(standard, (raw - mean) / std, atol=1e-5)
