"""Classifiers whose hidden blocks are exposed in order, for the gradient-flow monitor."""

from actstudy.models.build import build_model
from actstudy.models.cnn import CNN
from actstudy.models.hidden_block import HiddenBlock
from actstudy.models.mlp import MLP

__all__ = ["CNN", "MLP", "HiddenBlock", "build_model"]
