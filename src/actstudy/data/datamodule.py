"""Train/val/test splits of any dataset, held as tensors, served by `TensorLoader` through Lightning."""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass

import lightning as L
import torch
from hydra.utils import get_object
from torch import Tensor

from actstudy.config.schema import ConfigError, DataConfig
from actstudy.data.raw import RawSplits
from actstudy.data.tensor_loader import TensorLoader


@dataclass
class ImageSplits:
    """uint8 images (N, C, H, W) and int64 labels for train/val/test, with per-channel mean/std in [0, 1]."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int = 10

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Return (C, H, W) of one image."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


def read_raw(data: DataConfig) -> RawSplits:
    """Return the official train/test split of the configured dataset, from the reader its `_target_` names.

    The reader gets the file's own arguments (e.g. root, download) and, if it takes one, `data` itself.
    """
    reader = get_object(data._target_)
    given = {"data": data} if "data" in inspect.signature(reader).parameters else {}
    return reader(**given, **data.arguments)


def split(raw: RawSplits, data: DataConfig) -> ImageSplits:
    """Return the splits: validation carved from train with `data.generator_seed`, sizes as configured.

    Raises ConfigError when the files hold too few training images for the configured split (the config
    check knows only the official sizes).
    """
    available = len(raw.train_y)
    remaining = available - data.val_size
    if remaining < max(data.batch_size, 1) or (data.train_size is not None and data.train_size > remaining):
        raise ConfigError(
            f"data.val_size={data.val_size}: the {data.name} files hold {available} training images, too "
            "few for the validation split and a batch of training; use a smaller data.val_size (or "
            "data.train_size)"
        )
    order = torch.randperm(available, generator=torch.Generator().manual_seed(data.generator_seed))
    val_idx, train_idx = order[: data.val_size], order[data.val_size :]
    if data.train_size is not None:
        train_idx = train_idx[: data.train_size]
    test_x, test_y = raw.test_x, raw.test_y
    if data.test_size is not None:
        test_x, test_y = test_x[: data.test_size], test_y[: data.test_size]
    train_x = raw.train_x[train_idx]
    mean, std = channel_stats(train_x)
    return ImageSplits(
        train_x, raw.train_y[train_idx], raw.train_x[val_idx], raw.train_y[val_idx], test_x, test_y, mean, std
    )


def channel_stats(images: Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return per-channel mean and std of uint8 images, scaled to [0, 1], computed in float64 chunks."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float64) / 255
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = len(images) * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def load_splits(data: DataConfig) -> ImageSplits:
    """Return the configured dataset's splits; raise `DatasetUnavailable` with a fix if it is missing.

    A generated dataset's splits are kept for the next job of a sweep in this process (splitting and the
    channel statistics take seconds); the tensors are shared, never changed in place.
    """
    if data.train_images is not None:  # files: read each time (they may have been fixed in between)
        return split(read_raw(data), data)
    key = json.dumps(dataclasses.asdict(data), sort_keys=True, default=str)
    if key not in _generated:
        _generated.clear()
        _generated[key] = split(read_raw(data), data)
    return _generated[key]


_generated: dict[str, ImageSplits] = {}  # the latest generated dataset's splits, by its config


class TensorDataModule(L.LightningDataModule):
    """Moves the splits to the training device once, then serves whole-batch tensor loaders."""

    def __init__(self, splits: ImageSplits, data: DataConfig, seed: int):
        super().__init__()
        self.splits, self.data, self.seed = splits, data, seed
        self._on_device: dict[str, tuple[Tensor, Tensor]] = {}

    def setup(self, stage: str | None = None) -> None:
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        s = self.splits
        for name, (x, y) in {
            "train": (s.train_x, s.train_y),
            "val": (s.val_x, s.val_y),
            "test": (s.test_x, s.test_y),
        }.items():
            if name not in self._on_device:
                self._on_device[name] = (x.to(device), y.to(device))

    def _loader(self, name: str, train: bool) -> TensorLoader:
        x, y = self._on_device[name]
        trainer = self.trainer
        world_size = trainer.world_size if trainer is not None else 1
        return TensorLoader(
            x,
            y,
            self.data.batch_size // world_size,  # data.batch_size is the global batch, split over the ranks
            *self._scaling(),
            shuffle=train,
            drop_last=train,
            seed=self.seed,
            crop_padding=self.data.crop_padding if train else 0,
            flip=self.data.flip and train,
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=world_size,
            epoch_source=(lambda: trainer.current_epoch) if (train and trainer is not None) else None,
        )

    def _scaling(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Return the per-channel (mean, std) the loader subtracts and divides by, in [0, 1] units: the
        training split's (`data.normalize`), else (0, 1), which serves raw [0, 1] pixels."""
        if self.data.normalize:
            return self.splits.mean, self.splits.std
        channels = len(self.splits.mean)
        return (0.0,) * channels, (1.0,) * channels

    def train_dataloader(self) -> TensorLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> TensorLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> TensorLoader:
        return self._loader("test", train=False)
