"""What the dataset readers share: the tensor cache, downloads and md5 checks (torchvision's public helpers,
imported only when needed: importing torchvision takes seconds), validation and the missing-data message.

The cache `root/actstudy-cache/<name>.pt` holds a dataset's `RawSplits` as plain tensors, so the second
run skips parsing. It is written to a temporary file and moved into place with `os.replace`, so a
concurrent run sees either no cache or a whole one.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from actstudy.data.raw import DatasetUnavailable, RawSplits
from actstudy.errors import one_line
from actstudy.paths import atomic_file

CACHE_DIR = "actstudy-cache"


def cache_path(root: Path, name: str) -> Path:
    """Return where the tensor cache of dataset `name` lives under `root`."""
    return root / CACHE_DIR / f"{name}.pt"


def load_cache(root: Path, name: str, shape: tuple[int, int, int], num_classes: int) -> RawSplits | None:
    """Return dataset `name`'s cached splits, or None when there is no cache or it is unreadable (rebuilt)."""
    path = cache_path(root, name)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        raw = RawSplits(**{key: state[key] for key in RawSplits._fields})
        check_splits(raw, shape, num_classes, str(path))
    except Exception as err:  # any broken cache is rebuilt from the raw files
        warnings.warn(f"ignoring unreadable dataset cache {path}: {one_line(err)}", stacklevel=2)
        return None
    return raw


def save_cache(root: Path, name: str, raw: RawSplits) -> None:
    """Write the splits to dataset `name`'s cache atomically (temporary file, then `os.replace`), or warn."""
    path = cache_path(root, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as file:
            torch.save({key: t.contiguous() for key, t in raw._asdict().items()}, file)
    except OSError as err:  # a read-only data folder still works, just without the cache
        warnings.warn(f"could not write dataset cache {path}: {one_line(err)}", stacklevel=2)


def download(urls: list[str], path: Path, md5: str | None) -> None:
    """Download `path` from the first of `urls` that works, md5-checked if given; return None.

    Raises the last URL's error: OSError (URLError is one), or RuntimeError for a bad md5. The file is
    written under a private name, then renamed into place, so no run ever sees a partial one.
    """
    from torchvision.datasets.utils import download_url

    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    for i, url in enumerate(urls, start=1):
        try:
            download_url(url, str(path.parent), part.name, md5)
            os.replace(part, path)
            return
        except (OSError, RuntimeError):
            if i == len(urls):
                raise
        finally:
            part.unlink(missing_ok=True)


def check_md5(path: Path, md5: str) -> None:
    """Return None if `path` has the official md5; raise `DatasetUnavailable` naming the file otherwise."""
    from torchvision.datasets.utils import check_integrity

    if not check_integrity(str(path), md5):
        raise DatasetUnavailable(
            f"checksum mismatch: {path} is not the official file (md5 should be {md5}); it is truncated or "
            "corrupt: delete it and run again, or set data.verify_checksums=false for a hand-made copy"
        )


def check_splits(raw: RawSplits, image_shape: tuple[int, int, int], num_classes: int, where: str) -> None:
    """Return None if images are uint8 (N, *image_shape) with N int64 labels below num_classes, else raise."""
    for x, y, split in ((raw.train_x, raw.train_y, "train"), (raw.test_x, raw.test_y, "test")):
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != image_shape or len(x) == 0:
            raise DatasetUnavailable(
                f"bad format in {where}: {split} images are {x.dtype} {tuple(x.shape)}, "
                f"expected uint8 (N, {', '.join(map(str, image_shape))})"
            )
        if y.dtype != torch.int64 or y.shape != (len(x),):
            raise DatasetUnavailable(
                f"bad format in {where}: {split} images {tuple(x.shape)} with {y.numel()} labels "
                f"({y.dtype} {tuple(y.shape)}), expected {len(x)} int64 labels"
            )
        if int(y.min()) < 0 or int(y.max()) >= num_classes:
            raise DatasetUnavailable(
                f"bad format in {where}: {split} labels span {int(y.min())}..{int(y.max())}, "
                f"expected 0..{num_classes - 1}"
            )


def unavailable(dataset: str, root: Path, files: str, source: str, reason: str) -> DatasetUnavailable:
    """Return the one-line error for a dataset neither on disk nor downloadable, saying how to fix it."""
    return DatasetUnavailable(
        f"{dataset} not found in {root} ({reason}): put {files} from {source} there, "
        f"or choose the folder with data.root=PATH or ACTSTUDY_DATA=PATH; data=shapes works offline"
    )
