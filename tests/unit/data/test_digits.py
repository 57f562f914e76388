"""`data=digits`: scikit-learn's bundled UCI digits in MNIST's layout, read offline through the config."""

from __future__ import annotations

import torch

from actstudy.data.datamodule import load_splits
from actstudy.data.digits import read_digits
from tests.helpers.monitor import config


def test_reads_1797_digits_as_28x28_uint8_images_with_balanced_labels() -> None:
    raw = read_digits()
    assert raw.train_x.shape == (1297, 1, 28, 28) and raw.test_x.shape == (500, 1, 28, 28)
    assert raw.train_x.dtype == torch.uint8 and raw.train_y.dtype == raw.test_y.dtype == torch.int64
    assert torch.bincount(raw.train_y).tolist() == [128, 131, 128, 132, 130, 131, 130, 129, 128, 130]
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    assert int(raw.train_x[:, 0][:, border].max()) == 0  # the digit fills MNIST's 20x20 box, no more


def test_pixel_statistics_are_close_to_mnists() -> None:
    """MNIST on the [0, 1] scale: mean 0.131, std 0.308, mean squared norm of an image 88."""
    x = read_digits().train_x.float() / 255
    assert 0.12 < x.mean() < 0.2 and 0.27 < x.std() < 0.34
    assert 75 < x.pow(2).sum(dim=(1, 2, 3)).mean() < 100


def test_the_config_leaves_nielsens_1000_training_images() -> None:
    splits = load_splits(config("data=digits").data)
    assert (len(splits.train_y), len(splits.val_y), len(splits.test_y)) == (1000, 297, 500)
    assert splits.input_shape == (1, 28, 28)
