"""A tensor-resident batch loader in the style of airbench: no Dataset, no workers, no per-image Python.

The whole split lives as one uint8 tensor on the training device. Each batch is one gather, then
normalisation and augmentation (random crop with padding, horizontal flip) run on the whole batch with
tensor ops. Shuffling is `torch.randperm` seeded by (seed, epoch), so the same seed gives the same
batches, and `state_dict` lets Lightning resume mid-epoch at the right batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor


class TensorLoader:
    """Iterate (images float32 normalised, labels int64) batches of a device-resident uint8 dataset."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        crop_padding: int = 0,
        flip: bool = False,
        rank: int = 0,
        world_size: int = 1,
        epoch_source: Callable[[], int] | None = None,
    ):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if crop_padding >= min(images.shape[2:]):
            raise ValueError(f"crop_padding {crop_padding} is not below the image size {images.shape[2:]}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.crop_padding, self.flip = seed, crop_padding, flip
        self.rank, self.world_size = rank, world_size
        self.epoch_source = epoch_source
        device = images.device
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255
        self._epoch = 0
        self._position = 0  # batches served in the current epoch (for mid-epoch checkpoints)
        self._skip = 0

    @property
    def shard_size(self) -> int:
        """Return how many examples this rank sees per epoch.

        Training (`drop_last`): every rank the same number, as DDP's gradient all-reduce needs; evaluation:
        every example exactly once over all ranks (ranks may differ by one).
        """
        n = len(self.labels)
        if self.drop_last:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n, bs = self.shard_size, self.batch_size
        return n // bs if self.drop_last else -(-n // bs)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle and augmentation the next iteration uses."""
        self._epoch = epoch

    def state_dict(self) -> dict[str, int]:
        """Return the position within the epoch, saved by Lightning in mid-epoch checkpoints."""
        return {"epoch": self._epoch, "position": self._position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume: the next iteration of `state['epoch']` skips the batches already served."""
        self._epoch, self._skip = int(state["epoch"]), int(state["position"])

    def _order(self, generator: torch.Generator) -> Tensor:
        n = len(self.labels)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        if self.world_size > 1:  # rank r takes every world_size-th example: its share of each global batch
            order = order[: self.shard_size * self.world_size] if self.drop_last else order
            order = order[self.rank :: self.world_size]
        return order.to(self.images.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self.epoch_source is not None:
            epoch = self.epoch_source()
            if epoch != self._epoch:
                self._skip = 0
            self._epoch = epoch
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self._epoch)
        order = self._order(generator)
        augment = self.shuffle and (self.crop_padding > 0 or self.flip)
        if augment:  # all of the epoch's random draws at once: one host-to-device copy per epoch
            n, pad, device = len(order), self.crop_padding, self.images.device
            offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).to(device, non_blocking=True)
            flips = (torch.rand(n, generator=generator) < 0.5).to(device, non_blocking=True)
        start, self._skip = self._skip, 0
        for i in range(start, len(self)):
            self._position = i + 1
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images.index_select(0, idx)  # much faster than images[idx] on CPU
            if augment:
                sl = slice(i * self.batch_size, i * self.batch_size + len(idx))
                x = self._augment(x, offsets[sl], flips[sl])
            yield (x.float() - self.mean) / self.std, self.labels.index_select(0, idx)
        self._position = 0

    def _augment(self, x: Tensor, offsets: Tensor, flips: Tensor) -> Tensor:
        """Return the uint8 batch cropped from its reflect-padded self at `offsets`, mirrored where `flips`.

        Padding, crop and flip are one gather: each output pixel's source pixel is computed directly
        (a padded position maps back into the image by reflection), so no padded copy is made.
        """
        b, c, h, w = x.shape
        pad, device = self.crop_padding, x.device
        cols = torch.arange(w, device=device)
        if self.flip:
            cols = torch.where(flips.view(b, 1), w - 1 - cols, cols)
        rows = _reflect(h, pad, device)[offsets[:, :1] + torch.arange(h, device=device)]
        cols = _reflect(w, pad, device)[offsets[:, 1:] + cols]
        source = (rows.view(b, h, 1) * w + cols.view(b, 1, w)).view(b, 1, h * w).expand(b, c, h * w)
        return x.reshape(b, c, h * w).gather(2, source).view(b, c, h, w)


def _reflect(n: int, pad: int, device: torch.device) -> Tensor:
    """Return, for each position of a length-`n` axis reflect-padded by `pad`, its source index in 0..n-1."""
    before = torch.arange(pad, 0, -1, device=device)
    after = torch.arange(n - 2, n - 2 - pad, -1, device=device)
    return torch.cat([before, torch.arange(n, device=device), after])
