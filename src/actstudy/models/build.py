"""Build the configured model from a `RunConfig`."""

from __future__ import annotations

from hydra.utils import instantiate
from torch import nn

from actstudy.config import RunConfig
from actstudy.models.cnn import CNN
from actstudy.models.init import initialise
from actstudy.models.mlp import MLP


def build_model(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Return the initialised CNN or MLP for `cfg`, for inputs of shape (C, H, W)."""

    def make_activation() -> nn.Module:
        return instantiate(cfg.activation.module)

    m = cfg.model
    if m.name == "cnn":
        model = CNN(
            input_shape[0], num_classes, cfg.depth, m.width, make_activation, m.batch_norm, m.max_pools
        )
    else:
        c, h, w = input_shape
        model = MLP(c * h * w, num_classes, cfg.depth, m.width, make_activation, m.batch_norm)
    initialise(model, m.init)
    return model
