"""Fully connected net: flatten -> `depth` hidden layers of `width` units -> linear head."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor, nn

from actstudy.models.hidden_block import HiddenBlock


class MLP(nn.Module):
    """`depth` x [linear -> (BN) -> activation] -> linear, on flattened inputs."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        depth: int,
        make_activation: Callable[[], nn.Module],
        width: int,
        batch_norm: bool,
    ):
        super().__init__()
        in_features = math.prod(input_shape)
        self.blocks = nn.ModuleList(
            HiddenBlock(
                nn.Linear(in_features if i == 0 else width, width, bias=not batch_norm),
                make_activation(),
                nn.BatchNorm1d(width) if batch_norm else None,
                None,
            )
            for i in range(depth)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for block in self.blocks:
            x = block(x)
        return self.head(x)
