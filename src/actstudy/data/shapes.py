"""`shapes`: an offline, procedural 10-class dataset of 32x32 RGB images (after Glorot & Bengio's Shapeset).

Each image is one shape (its kind is the label) of random size, position, small rotation and colour on a
random-colour background with Gaussian pixel noise. Everything is vectorised over the whole dataset and
generated from a seed, so the same seed gives the same bytes on any machine.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import torch
from torch import Tensor

from actstudy.config.schema import DataConfig
from actstudy.data.generated_cache import cached
from actstudy.data.raw import RawSplits

_CODE = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]  # a changed generator: new data
CLASSES = ("disk", "square", "triangle", "ring", "plus", "diamond", "frame", "ellipse", "half-disk", "x")
SIZE = 32


def _class_masks(a: Tensor, b: Tensor) -> Tensor:
    """Return (10, N, H, W) boolean masks of every shape kind in normalised coordinates (a, b)."""
    r = torch.sqrt(a * a + b * b)
    m = torch.maximum(a.abs(), b.abs())
    return torch.stack(
        [
            r <= 1.0,
            m <= 0.8,
            (a.abs() <= (b + 0.9) * 0.6) & (b <= 0.7),
            (r >= 0.55) & (r <= 1.0),
            ((a.abs() <= 0.25) | (b.abs() <= 0.25)) & (m <= 1.0),
            a.abs() + b.abs() <= 1.0,
            (m <= 0.9) & (m >= 0.6),
            a * a + (b / 0.45) ** 2 <= 1.0,
            (r <= 1.0) & (b >= 0.0),
            (((a - b).abs() <= 0.3) | ((a + b).abs() <= 0.3)) & (m <= 0.85),
        ]
    )


def generate_shapes(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Return `n` images (uint8, N x 3 x 32 x 32) and their labels (int64), determined by `seed`."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(CLASSES), (n,), generator=g)
    radius = 6.0 + 7.0 * torch.rand(n, generator=g)
    cx = radius + (SIZE - 1 - 2 * radius) * torch.rand(n, generator=g)
    cy = radius + (SIZE - 1 - 2 * radius) * torch.rand(n, generator=g)
    angle = (torch.rand(n, generator=g) - 0.5) * (math.pi / 4.5)  # +-20 degrees keeps square != diamond
    # Light shapes on dark backgrounds (any hue): edges have one sign, so shape, not colour, is the signal.
    background = 0.45 * torch.rand(n, 3, generator=g)
    foreground = 0.55 + 0.45 * torch.rand(n, 3, generator=g)
    noise = 0.1 * torch.randn(n, 3, SIZE, SIZE, generator=g)

    coords = torch.arange(SIZE, dtype=torch.float32)
    dy = coords.view(1, SIZE, 1) - cy.view(n, 1, 1)
    dx = coords.view(1, 1, SIZE) - cx.view(n, 1, 1)
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    a = (cos * dx + sin * dy) / radius.view(n, 1, 1)
    b = (-sin * dx + cos * dy) / radius.view(n, 1, 1)
    mask = _class_masks(a, b)[labels, torch.arange(n)]  # (N, H, W): each image's own kind

    image = torch.where(mask.unsqueeze(1), foreground.view(n, 3, 1, 1), background.view(n, 3, 1, 1))
    image = (image + noise).clamp(0.0, 1.0)
    return (image * 255).round().to(torch.uint8), labels


def read_shapes(train_size: int, test_size: int, seed: int) -> RawSplits:
    """Return a `shapes` dataset: `train_size` training and `test_size` test images from `seed`.

    Generated once per parameters and this file's code (`actstudy.data.generated_cache`).
    """
    params = {"name": "shapes", "train": train_size, "test": test_size, "seed": seed, "code": _CODE}
    make = lambda: (*generate_shapes(train_size, seed), *generate_shapes(test_size, seed + 1))  # noqa: E731
    return RawSplits(*cached(params, make))


def read(data: DataConfig) -> RawSplits:
    """Return the `shapes` splits `data` asks for (conf/data/shapes.yaml's `_target_`)."""
    # DataConfig.check: a generated data set (no train_images) must say both sizes
    assert data.train_size is not None and data.test_size is not None
    return read_shapes(data.train_size + data.val_size, data.test_size, data.generator_seed)
