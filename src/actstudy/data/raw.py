"""What every dataset reader returns, and the error a missing or broken dataset raises."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class RawSplits(NamedTuple):
    """A dataset as read from disk: uint8 images (N, C, H, W) and int64 labels, official train/test."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor


class DatasetUnavailable(RuntimeError):
    """The dataset is missing, cannot be downloaded, or is corrupt; the message says how to fix it."""
