"""Plain CNN of `depth` conv blocks of constant width, global average pooling and a linear head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from actstudy.models.hidden_block import HiddenBlock


def pool_positions(depth: int, max_pools: int) -> set[int]:
    """Return the 0-based block indices followed by a 2x2 max-pool: evenly spread, at most `max_pools`."""
    n_pools = min(depth, max_pools)
    return {round((i + 1) * depth / n_pools) - 1 for i in range(n_pools)}


class CNN(nn.Module):
    """`depth` x [conv3x3 -> (BN) -> activation (-> maxpool)] -> global avg pool -> linear."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        depth: int,
        make_activation: Callable[[], nn.Module],
        width: int,
        batch_norm: bool,
        max_pools: int,
    ):
        super().__init__()
        in_channels = input_shape[0]
        pools = pool_positions(depth, max_pools)
        blocks = []
        for i in range(depth):
            conv = nn.Conv2d(in_channels if i == 0 else width, width, 3, padding=1, bias=not batch_norm)
            norm = nn.BatchNorm2d(width) if batch_norm else None
            pool = nn.MaxPool2d(2) if i in pools else None
            blocks.append(HiddenBlock(conv, make_activation(), norm, pool))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(torch.flatten(x.mean(dim=(2, 3)), 1))
