"""MNIST from the official IDX files (gzipped or not), downloaded from the mirrors torchvision uses.

Reading order: the tensor cache, else the four IDX files in `root/MNIST/raw/` (torchvision's layout) or
directly in `root/`, else a download into `root/MNIST/raw/`. The md5s are those of the `.gz` files, so a
folder holding only uncompressed files is checked by format and image counts alone.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from actstudy.data import files
from actstudy.data.raw import DatasetUnavailable, RawSplits
from actstudy.errors import one_line
from actstudy.paths import default_data_root

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
FILES = {  # RawSplits field -> (IDX file name without .gz, md5 of the official .gz)
    "train_x": ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_y": ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_x": ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "test_y": ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}
OFFICIAL_COUNTS = {"train": 60_000, "test": 10_000}


def read_mnist(root: str | Path | None, download: bool, verify_checksums: bool) -> RawSplits:
    """Return MNIST's 60,000 train and 10,000 test images (uint8 N x 1 x 28 x 28) with int64 labels."""
    root = Path(root) if root is not None else default_data_root()
    raw = files.load_cache(root, "mnist", IMAGE_SHAPE, NUM_CLASSES)
    if raw is not None:
        return raw
    raw_dir = root / "MNIST" / "raw"
    folder = next((d for d in (raw_dir, root) if all(_path(d, n).is_file() for n, _ in FILES.values())), None)
    if folder is None:
        if not download:
            raise _missing(root, "download=false")
        _download(root, raw_dir, verify_checksums)
        folder = raw_dir
    arrays = {}
    for key, (name, md5) in FILES.items():
        path = _path(folder, name)
        if verify_checksums and path.suffix == ".gz":
            files.check_md5(path, md5)
        data = torch.from_numpy(_read_idx(path, ndim=3 if key.endswith("_x") else 1))
        arrays[key] = data.unsqueeze(1) if key.endswith("_x") else data.long()
    raw = RawSplits(**arrays)
    files.check_splits(raw, IMAGE_SHAPE, NUM_CLASSES, str(folder))
    for split, images in (("train", raw.train_x), ("test", raw.test_x)):
        if verify_checksums and len(images) != OFFICIAL_COUNTS[split]:  # the md5s vouch for .gz files only
            raise DatasetUnavailable(
                f"bad format in {folder}: {len(images)} {split} images, official: {OFFICIAL_COUNTS[split]:,}"
            )
    files.save_cache(root, "mnist", raw)
    return raw


def _missing(root: Path, reason: str) -> DatasetUnavailable:
    names = ", ".join(f"{name}.gz" for name, _ in FILES.values())
    return files.unavailable("MNIST", root / "MNIST" / "raw", names, MIRRORS[0], reason)


def _path(folder: Path, name: str) -> Path:
    """Return the gzipped file if it is there, else the uncompressed one."""
    gz = folder / f"{name}.gz"
    return gz if gz.is_file() else folder / name


def _download(root: Path, raw_dir: Path, verify_checksums: bool) -> None:
    """Download the missing `.gz` files into `raw_dir`, trying each mirror in turn."""
    for name, md5 in FILES.values():
        if not _path(raw_dir, name).is_file():
            urls = [f"{mirror}{name}.gz" for mirror in MIRRORS]
            try:
                files.download(urls, raw_dir / f"{name}.gz", md5 if verify_checksums else None)
            except (OSError, RuntimeError) as err:
                raise _missing(root, f"download=true but the download failed: {one_line(err)}") from err


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Return the uint8 array stored in an IDX file (big-endian dims after a 4-byte magic number)."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetUnavailable(f"bad format in {path}: cannot read it ({one_line(err)})") from err
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
