"""Checkpoints written whole or not at all: Lightning's writer opens the final file and streams into it,
so a full disk or a kill during the write leaves a truncated `last.ckpt` / `best.ckpt` that the next
attempt cannot read (and `ModelCheckpoint` then saves beside it as `best-v1.ckpt`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from actstudy.paths import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's `TorchCheckpointIO`, but each checkpoint replaces its file at once (`atomic_file`)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        """Write `checkpoint` to `path`; on any error `path` keeps the previous checkpoint (or none)."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as file:
            torch.save(checkpoint, file)
