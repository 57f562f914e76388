"""Weight initialisation schemes compared in the literature: `SCHEMES` is their one list.

`auto` (the default) uses the scheme the activation's config names (`activation.init`): Glorot/Xavier
for the saturating ones, He/Kaiming for the ReLU family, with the gain that keeps the signal's scale
through a layer of *that* activation, so a comparison of activations is not one of PyTorch's init.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

Init = Callable[[Tensor, Tensor | None, float], None]  # (weight, bias, gain) -> None, in place


def _xavier(weight: Tensor, bias: Tensor | None, gain: float) -> None:
    """Glorot & Bengio (2010): uniform, gain 1, zero biases."""
    nn.init.xavier_uniform_(weight)
    if bias is not None:
        nn.init.zeros_(bias)


def _kaiming(weight: Tensor, bias: Tensor | None, gain: float) -> None:
    """He et al. (2015): N(0, gain^2 / fan_in), zero biases."""
    nn.init.normal_(weight, 0.0, gain / math.sqrt(weight[0].numel()))
    if bias is not None:
        nn.init.zeros_(bias)


def _nielsen(weight: Tensor, bias: Tensor | None, gain: float) -> None:
    """Nielsen, ch. 3 and 5: weights N(0, 1/fan_in), biases N(0, 1)."""
    nn.init.normal_(weight, 0.0, 1.0 / math.sqrt(weight[0].numel()))
    if bias is not None:
        nn.init.normal_(bias, 0.0, 1.0)


#: `model.init` name -> how it initialises one layer's (weight, bias); None keeps PyTorch's init; "auto"
#: takes the activation's scheme.
SCHEMES: dict[str, Init | None] = {
    "auto": None,
    "default": None,
    "xavier": _xavier,
    "kaiming": _kaiming,
    "nielsen": _nielsen,
}
ACTIVATION_SCHEMES = ("xavier", "kaiming")  # what an activation's config may name for `auto`
RELU_GAIN = math.sqrt(2.0)  # `model.init=kaiming` chosen by hand: He's gain for ReLU, whatever the activation


def signal_gain(activation: nn.Module) -> float:
    """Return 1 / sqrt(E[f(z)^2]) for z ~ N(0, 1): the weight gain that keeps a layer's output scale.

    sqrt(2) for ReLU, sqrt(2 / (1 + slope^2)) for leaky ReLU (He et al. 2015); computed by Gauss-Hermite
    quadrature for the others (ELU, GELU, SiLU, ...).
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(101)
    with torch.no_grad():  # float32 in, as in training (a module with parameters refuses float64)
        values = activation(torch.as_tensor(nodes, dtype=torch.float32)).double().numpy()
    second_moment = float(np.sum(weights * values**2) / math.sqrt(2 * math.pi))
    return 1.0 / math.sqrt(second_moment)


def initialise(
    model: nn.Module, scheme: str, activation: nn.Module, activation_scheme: str, scale: float = 1.0
) -> None:
    """Re-initialise every conv and linear layer of `model` in place with `scheme`, then multiply every such
    weight by `scale` (`model.init_scale`; PyTorch's own init too).

    `auto` takes `activation_scheme` (the activation's config's `init`), with the activation's own gain for
    Kaiming; the head (the last layer) is initialised like the hidden layers.
    """
    gain = RELU_GAIN
    if scheme == "auto":
        scheme = activation_scheme
        gain = signal_gain(activation) if scheme == "kaiming" else 1.0
    init = SCHEMES[scheme]
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if init is not None:
                init(module.weight, module.bias, gain)
            if scale != 1.0:
                with torch.no_grad():
                    module.weight.mul_(scale)
