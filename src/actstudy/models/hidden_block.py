"""One hidden block: weight layer -> optional batch norm -> activation -> optional pooling."""

from __future__ import annotations

from torch import Tensor, nn


class HiddenBlock(nn.Module):
    """A hidden layer as the monitor sees it: `layer` holds the weights, `act` produces the outputs."""

    def __init__(self, layer: nn.Module, act: nn.Module, norm: nn.Module | None, pool: nn.Module | None):
        super().__init__()
        self.layer = layer
        self.norm = norm if norm is not None else nn.Identity()
        self.act = act
        self.pool = pool if pool is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.act(self.norm(self.layer(x))))
