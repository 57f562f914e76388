"""What every dataset reader returns, and the error a missing or broken dataset raises."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from actstudy.errors import DatasetUnavailable

__all__ = ["DatasetUnavailable", "RawSplits"]


class RawSplits(NamedTuple):
    """A dataset as read from disk: uint8 images (N, C, H, W) and int64 labels, official train/test."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
