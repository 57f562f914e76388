"""Weight initialisation schemes compared in the literature: `SCHEMES` is their one list."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor, nn


def _xavier(weight: Tensor, bias: Tensor | None) -> None:
    """Glorot & Bengio (2010): uniform, gain 1, zero biases."""
    nn.init.xavier_uniform_(weight)
    if bias is not None:
        nn.init.zeros_(bias)


def _kaiming(weight: Tensor, bias: Tensor | None) -> None:
    """He et al. (2015): normal for ReLU, fan-in, zero biases."""
    nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
    if bias is not None:
        nn.init.zeros_(bias)


def _nielsen(weight: Tensor, bias: Tensor | None) -> None:
    """Nielsen, ch. 3 and 5: weights N(0, 1/fan_in), biases N(0, 1)."""
    nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(weight[0].numel()))
    if bias is not None:
        nn.init.normal_(bias, 0.0, 1.0)


#: `model.init` name -> how it initialises one layer's (weight, bias); None keeps PyTorch's init.
SCHEMES: dict[str, Callable[[Tensor, Tensor | None], None] | None] = {
    "default": None,
    "xavier": _xavier,
    "kaiming": _kaiming,
    "nielsen": _nielsen,
}


def initialise(model: nn.Module, scheme: str) -> None:
    """Re-initialise every conv and linear layer of `model` in place with `SCHEMES[scheme]`."""
    init = SCHEMES[scheme]
    if init is None:
        return
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init(module.weight, module.bias)
