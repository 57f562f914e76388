"""`digits`: the UCI handwritten digits bundled with scikit-learn, offline, laid out as MNIST is.

scikit-learn ships the 1,797 images of the UCI set's test part (13 writers) inside its package, so
`sklearn.datasets.load_digits` reads them without a download. They are 8x8 counts (0..16) of a 32x32
bitmap; here each is enlarged (bicubic) to 20x20 and set in the middle of a 28x28 frame, as MNIST fits
its digits into a 20x20 box of a 28x28 image. So `data=digits` stands in for MNIST: the same 784 inputs
(Nielsen's [784, 30, ..., 10] net unchanged) and nearly MNIST's pixel statistics on the [0, 1] scale
(mean 0.16, std 0.30, mean squared norm 90; MNIST: 0.13, 0.31, 88), which set the first layer's
pre-activations and so the size of the gradients the vanishing-gradient study measures.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from actstudy.data.raw import DatasetUnavailable, RawSplits

IMAGE_SHAPE = (1, 28, 28)
BOX = 20  # MNIST's digit box inside its 28x28 frame
TRAIN_IMAGES = 1297  # the first 1,297 images train, the last 500 test (the set has no official split)


def digits_as_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    """Return all 1,797 digits as uint8 images (N, 1, 28, 28) in MNIST's layout, and int64 labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DatasetUnavailable(
            f"data=digits needs scikit-learn, which ships the images ({err}): pip install scikit-learn"
        ) from err
    digits = load_digits()
    small = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16  # (N, 1, 8, 8) in [0, 1]
    box = F.interpolate(small, size=(BOX, BOX), mode="bicubic", align_corners=False).clamp(0, 1)
    images = torch.zeros(len(small), *IMAGE_SHAPE, dtype=torch.uint8)
    start = (IMAGE_SHAPE[1] - BOX) // 2
    images[:, :, start : start + BOX, start : start + BOX] = (box * 255).round().to(torch.uint8)
    return images, torch.as_tensor(digits.target, dtype=torch.int64)


def read_digits() -> RawSplits:
    """Return the digits' 1,297 train and 500 test images (uint8 N x 1 x 28 x 28) with int64 labels."""
    images, labels = digits_as_mnist()
    n = TRAIN_IMAGES
    return RawSplits(images[:n], labels[:n], images[n:], labels[n:])
