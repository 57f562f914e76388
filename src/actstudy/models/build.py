"""Build the configured model from a `RunConfig`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hydra.utils import get_object, instantiate
from torch import nn

from actstudy.models.init import initialise

if TYPE_CHECKING:  # a type only: models sit below config (config checks names against models' lists)
    from actstudy.config.schema import RunConfig


def build_model(cfg: RunConfig, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Return the initialised model `cfg.model` names, for inputs of shape (C, H, W)."""
    m = cfg.model
    model = get_object(m._target_)(
        input_shape=input_shape,
        num_classes=num_classes,
        depth=cfg.depth,
        make_activation=lambda: instantiate(cfg.activation.module),
        width=m.width,
        batch_norm=m.batch_norm,
        **m.arguments,
    )
    initialise(model, m.init, instantiate(cfg.activation.module), cfg.activation.init, m.init_scale)
    return model
