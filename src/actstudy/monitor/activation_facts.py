"""What the monitor needs to know about an activation, found numerically from its torch module, so that
every file in conf/activation/ works without a formula: its derivative at given pre-activations, the
derivative's maximum, and the range its outputs are binned over.
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

import torch
from hydra.utils import instantiate
from torch import Tensor, nn

GRID = (-10.0, 10.0, 20001)  # pre-activations where the derivative's maximum is looked for (0 included)
BINNED_INPUTS = 6.0  # activation histograms span f([-6, 6]), rounded outward to 0.1


def derivative(module: nn.Module, z: Tensor) -> Tensor:
    """Return f'(z) elementwise for an elementwise activation `module`, by autograd on a detached copy.

    Calls `module.forward` (not the module) so that forward hooks on it do not fire again; works inside
    a training step's forward pass (its own small graph, freed here).
    """
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        (d,) = torch.autograd.grad(module.forward(z).sum(), z)
    return d


def _grid_values(module_json: str) -> tuple[Tensor, Tensor, Tensor]:
    module = instantiate(json.loads(module_json))
    x = torch.linspace(*GRID[:2], GRID[2], dtype=torch.float64)
    return x, module.forward(x).detach(), derivative(module, x)


@cache
def _derivative_max(module_json: str) -> float:
    return float(_grid_values(module_json)[2].max())


@cache
def _binned_range(module_json: str) -> tuple[float, float]:
    x, y, _ = _grid_values(module_json)
    inside = y[(x >= -BINNED_INPUTS) & (x <= BINNED_INPUTS)]
    return math.floor(float(inside.min()) * 10) / 10, math.ceil(float(inside.max()) * 10) / 10


def _key(module: dict[str, Any]) -> str:
    return json.dumps(module, sort_keys=True)


def derivative_max(module: dict[str, Any]) -> float:
    """Return the maximum of the activation's derivative over pre-activations in [-10, 10] (sigmoid:
    0.25, tanh: 1), for the `activation.module` node `{_target_: torch.nn.X, ...}`; cached."""
    return _derivative_max(_key(module))


def binned_range(module: dict[str, Any]) -> tuple[float, float]:
    """Return (low, high): the activation's outputs for pre-activations in [-6, 6], rounded outward to
    0.1 (sigmoid (0, 1), tanh (-1, 1), ReLU (0, 6)); its histograms' fixed range; cached."""
    return _binned_range(_key(module))
