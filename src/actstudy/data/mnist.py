"""MNIST from the official IDX files (gzipped or not), downloaded with torchvision's mirrors and checksums.

Reading order: the tensor cache, else the four IDX files in `root/MNIST/raw/` (torchvision's layout) or
directly in `root/`, else a download into `root/MNIST/raw/`. The md5s are those of the `.gz` files, so a
folder holding only uncompressed files is checked by format and image counts alone.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import MNIST
from torchvision.datasets.utils import download_url

from actstudy.data import files
from actstudy.data.raw import DatasetUnavailable, RawSplits

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
FILES = {  # RawSplits field -> IDX file name without .gz
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
OFFICIAL_COUNTS = {"train": 60_000, "test": 10_000}
SOURCE = MNIST.mirrors[0]


def read_mnist(root: Path, download: bool, verify_checksums: bool) -> RawSplits:
    """Return MNIST's 60,000 train and 10,000 test images (uint8 N x 1 x 28 x 28) with int64 labels."""
    root = Path(root)
    cache = files.cache_path(root, "mnist")
    raw = files.load_cache(cache, IMAGE_SHAPE, NUM_CLASSES)
    if raw is not None:
        return raw
    raw_dir = root / "MNIST" / "raw"
    folder = next((d for d in (raw_dir, root) if all(_path(d, n).is_file() for n in FILES.values())), None)
    if folder is None:
        if not download:
            raise _missing(root, "download=false")
        _download(root, raw_dir, verify_checksums)
        folder = raw_dir
    arrays = {}
    for key, name in FILES.items():
        path = _path(folder, name)
        if verify_checksums and path.suffix == ".gz":
            files.check_md5(path, dict(MNIST.resources)[path.name])
        arrays[key] = _read_idx(path, ndim=3 if key.endswith("_x") else 1)
    raw = _to_splits(arrays, folder, verify_checksums)
    files.save_cache(cache, raw)
    return raw


def _missing(root: Path, reason: str) -> DatasetUnavailable:
    names = ", ".join(f"{name}.gz" for name in FILES.values())
    return files.unavailable("MNIST", root / "MNIST" / "raw", names, SOURCE, reason)


def _path(folder: Path, name: str) -> Path:
    """Return the gzipped file if it is there, else the uncompressed one."""
    gz = folder / f"{name}.gz"
    return gz if gz.is_file() else folder / name


def _download(root: Path, raw_dir: Path, verify_checksums: bool) -> None:
    """Download the missing `.gz` files over torchvision's mirrors; each appears in place in one rename."""
    for filename, md5 in MNIST.resources:
        target = raw_dir / filename
        if _path(raw_dir, filename.removesuffix(".gz")).is_file():
            continue
        part = raw_dir / f".{filename}.{os.getpid()}.part"
        errors = []
        for mirror in MNIST.mirrors:
            try:
                download_url(mirror + filename, str(raw_dir), part.name, md5 if verify_checksums else None)
                os.replace(part, target)
                break
            except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad md5 is a RuntimeError
                errors.append(files.one_line(err))
            finally:
                part.unlink(missing_ok=True)
        else:
            raise _missing(root, f"download=true but the download failed: {errors[-1]}")


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Return the uint8 array stored in an IDX file (big-endian dims after a 4-byte magic number)."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetUnavailable(f"bad format in {path}: cannot read it ({files.one_line(err)})") from err
    if len(data) < 4 + 4 * ndim or data[:4] != bytes([0, 0, 0x08, ndim]):
        raise DatasetUnavailable(
            f"bad format in {path}: not an IDX file of {ndim}-d unsigned bytes (magic {data[:4].hex()}, "
            f"expected {bytes([0, 0, 0x08, ndim]).hex()})"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    header, size = 4 + 4 * ndim, int(np.prod(dims))
    if len(data) != header + size:
        raise DatasetUnavailable(
            f"bad format in {path}: dims {dims} need {header + size} bytes, it has {len(data)} (truncated?)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _to_splits(arrays: dict[str, np.ndarray], folder: Path, verify_checksums: bool) -> RawSplits:
    """Return the arrays as `RawSplits` after checking image size, label counts and (if verifying) totals."""
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.shape[1:] != IMAGE_SHAPE[1:] or len(x) != len(y):
            raise DatasetUnavailable(
                f"bad format in {folder}: {split} images {x.shape} with {len(y)} labels, need (N, 28, 28), N"
            )
        if verify_checksums and len(x) != OFFICIAL_COUNTS[split]:
            raise DatasetUnavailable(
                f"bad format in {folder}: {len(x)} {split} images, official: {OFFICIAL_COUNTS[split]:,}"
            )
    raw = RawSplits(
        torch.from_numpy(arrays["train_x"]).unsqueeze(1),
        torch.from_numpy(arrays["train_y"]).long(),
        torch.from_numpy(arrays["test_x"]).unsqueeze(1),
        torch.from_numpy(arrays["test_y"]).long(),
    )
    files.check_splits(raw, IMAGE_SHAPE, NUM_CLASSES, str(folder))
    return raw
