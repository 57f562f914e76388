"""Weight initialisation schemes compared in the literature."""

from __future__ import annotations

import math

from torch import nn


def initialise(model: nn.Module, scheme: str) -> None:
    """Re-initialise every conv and linear layer of `model` in place; `default` keeps PyTorch's init.

    xavier: Glorot & Bengio (2010) uniform, gain 1, zero biases. kaiming: He et al. (2015) normal for
    ReLU, fan-in, zero biases. nielsen: weights N(0, 1/fan_in), biases N(0, 1) (Nielsen, ch. 3 and 5).
    """
    if scheme == "default":
        return
    for module in model.modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        weight, bias = module.weight, module.bias
        if scheme == "xavier":
            nn.init.xavier_uniform_(weight)
            if bias is not None:
                nn.init.zeros_(bias)
        elif scheme == "kaiming":
            nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
            if bias is not None:
                nn.init.zeros_(bias)
        elif scheme == "nielsen":
            fan_in = weight[0].numel()
            nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(fan_in))
            if bias is not None:
                nn.init.normal_(bias, 0.0, 1.0)
        else:
            raise ValueError(f"unknown init scheme {scheme!r}")
