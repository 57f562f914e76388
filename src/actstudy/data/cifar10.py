"""CIFAR-10 from the official python pickle batches, downloaded with torchvision's URL and checksums.

Reading order: the tensor cache, else the extracted `cifar-10-batches-py/`, else the archive
`cifar-10-python.tar.gz` (md5-checked, extracted), else a download. The pickles are read with an
unpickler that only accepts numpy arrays, so a tampered batch cannot run code.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.datasets import CIFAR10
from torchvision.datasets.utils import download_url, extract_archive

from actstudy.data.files import (
    cache_path,
    check_md5,
    check_splits,
    load_cache,
    one_line,
    save_cache,
    unavailable,
)
from actstudy.data.raw import DatasetUnavailable, RawSplits

IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
OFFICIAL_BATCH_SIZE = 10_000
SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html"

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    *((f"numpy.{core}.multiarray", f) for core in ("core", "_core") for f in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}


def read_cifar10(root: Path, download: bool, verify_checksums: bool) -> RawSplits:
    """Return CIFAR-10's 50,000 train and 10,000 test images (uint8 N x 3 x 32 x 32) with int64 labels."""
    root = Path(root)
    cache = cache_path(root, "cifar10")
    raw = load_cache(cache, IMAGE_SHAPE, NUM_CLASSES)
    if raw is not None:
        return raw
    folder, archive = root / CIFAR10.base_folder, root / CIFAR10.filename
    if not folder.is_dir():
        if not archive.is_file():
            if not download:
                raise _missing(root, "download=false")
            _download(root, archive, verify_checksums)
        _extract(archive, root, folder, verify_checksums)
    raw = _read_batches(folder, verify_checksums)
    save_cache(cache, raw)
    return raw


def _missing(root: Path, reason: str) -> DatasetUnavailable:
    return unavailable("CIFAR-10", root, CIFAR10.filename, SOURCE, reason)


def _download(root: Path, archive: Path, verify_checksums: bool) -> None:
    """Download the archive under a private name, then move it into place so no run sees a partial file."""
    part = archive.with_name(f".{archive.name}.{os.getpid()}.part")
    try:
        download_url(CIFAR10.url, str(root), part.name, CIFAR10.tgz_md5 if verify_checksums else None)
        os.replace(part, archive)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; a bad md5 is a RuntimeError
        raise _missing(root, f"download=true but the download failed: {one_line(err)}") from err
    finally:
        part.unlink(missing_ok=True)


def _extract(archive: Path, root: Path, folder: Path, verify_checksums: bool) -> None:
    """Extract into a private folder, then move `cifar-10-batches-py/` into place in one rename."""
    if verify_checksums:
        check_md5(archive, CIFAR10.tgz_md5)
    tmp = Path(tempfile.mkdtemp(prefix=".cifar10-extract-", dir=root))
    try:
        extract_archive(str(archive), str(tmp))
        extracted = tmp / CIFAR10.base_folder
        if not extracted.is_dir():
            raise DatasetUnavailable(f"bad format in {archive}: it has no {CIFAR10.base_folder}/ folder")
        try:
            os.replace(extracted, folder)
        except OSError:
            if not folder.is_dir():  # else a concurrent run extracted it first
                raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DatasetUnavailable(
            f"bad format in {archive}: cannot extract it ({one_line(err)}); delete it and run again"
        ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_batches(folder: Path, verify_checksums: bool) -> RawSplits:
    """Return the splits parsed from the five training batches and the test batch in `folder`."""
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"train": [], "test": []}
    for split, files in (("train", CIFAR10.train_list), ("test", CIFAR10.test_list)):
        for name, md5 in files:
            path = folder / name
            if not path.is_file():
                raise DatasetUnavailable(f"bad format in {folder}: {name} is missing; delete it, run again")
            if verify_checksums:
                check_md5(path, md5)
            parts[split].append(_read_batch(path, OFFICIAL_BATCH_SIZE if verify_checksums else None))
    arrays = [np.concatenate([batch[i] for batch in parts[s]]) for s in ("train", "test") for i in (0, 1)]
    raw = RawSplits(*(torch.from_numpy(a) for a in arrays))
    check_splits(raw, IMAGE_SHAPE, NUM_CLASSES, str(folder))
    return raw


def _read_batch(path: Path, expected: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Return one batch's images (uint8 N x 3 x 32 x 32) and labels (int64), or raise naming the file."""
    try:
        with open(path, "rb") as f:
            entry = _BatchUnpickler(f, encoding="latin1").load()
        data, labels = np.asarray(_field(entry, "data")), np.asarray(_field(entry, "labels"), dtype=np.int64)
    except Exception as err:  # any unpickling failure means the file is not a CIFAR-10 batch
        raise DatasetUnavailable(f"bad format in {path}: not a CIFAR-10 batch ({one_line(err)})") from err
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise DatasetUnavailable(
            f"bad format in {path}: data is {data.dtype} {data.shape} with {labels.size} labels, "
            f"expected uint8 (N, 3072) with N labels"
        )
    if expected is not None and len(data) != expected:
        raise DatasetUnavailable(f"bad format in {path}: has {len(data)} images, official ones {expected}")
    return data.reshape(-1, *IMAGE_SHAPE), labels


def _field(entry: Any, key: str) -> Any:
    if not isinstance(entry, dict):
        raise TypeError(f"expected a dict, got {type(entry).__name__}")
    for k in (key, key.encode()):
        if k in entry:
            return entry[k]
    raise KeyError(key)


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that only builds numpy arrays, lists and dicts: no other class can be named."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return super().find_class(module, name)
