"""CIFAR-10 from the official python pickle batches, downloaded from its home page's URL, md5-checked.

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

from actstudy.data import files
from actstudy.data.raw import DatasetUnavailable, RawSplits
from actstudy.errors import one_line
from actstudy.paths import default_data_root

IMAGE_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE, ARCHIVE_MD5 = "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"  # what the archive holds
BATCHES = {  # file in FOLDER -> md5: the five training batches, then the test batch
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    *((f"numpy.{core}.multiarray", f) for core in ("core", "_core") for f in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}


def read_cifar10(root: str | Path | None, download: bool, verify_checksums: bool) -> RawSplits:
    """Return CIFAR-10's 50,000 train and 10,000 test images (uint8 N x 3 x 32 x 32) with int64 labels."""
    root = Path(root) if root is not None else default_data_root()
    raw = files.load_cache(root, "cifar10", IMAGE_SHAPE, NUM_CLASSES)
    if raw is not None:
        return raw
    folder, archive = root / FOLDER, root / ARCHIVE
    if not folder.is_dir():
        if not archive.is_file():
            if not download:
                raise _missing(root, "download=false")
            try:
                files.download([URL], archive, ARCHIVE_MD5 if verify_checksums else None)
            except (OSError, RuntimeError) as err:
                raise _missing(root, f"download=true but the download failed: {one_line(err)}") from err
        _extract(archive, root, folder, verify_checksums)
    raw = _read_batches(folder, verify_checksums)
    files.save_cache(root, "cifar10", raw)
    return raw


def _missing(root: Path, reason: str) -> DatasetUnavailable:
    return files.unavailable("CIFAR-10", root, ARCHIVE, SOURCE, reason)


def _extract(archive: Path, root: Path, folder: Path, verify_checksums: bool) -> None:
    """Extract into a private folder, then move `cifar-10-batches-py/` into place in one rename."""
    from torchvision.datasets.utils import extract_archive

    if verify_checksums:
        files.check_md5(archive, ARCHIVE_MD5)
    tmp = Path(tempfile.mkdtemp(prefix=".cifar10-extract-", dir=root))
    try:
        extract_archive(str(archive), str(tmp))
        if not (tmp / FOLDER).is_dir():
            raise DatasetUnavailable(f"bad format in {archive}: it has no {FOLDER}/ folder")
        try:
            os.replace(tmp / FOLDER, folder)
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
    batches = [_read_batch(folder / name, md5 if verify_checksums else None) for name, md5 in BATCHES.items()]
    train_x, train_y = map(np.concatenate, zip(*batches[:-1], strict=True))
    test_x, test_y = batches[-1]
    raw = RawSplits(*map(torch.from_numpy, (train_x, train_y, test_x, test_y)))
    files.check_splits(raw, IMAGE_SHAPE, NUM_CLASSES, str(folder))
    return raw


def _read_batch(path: Path, md5: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Return one batch's images (uint8 N x 3 x 32 x 32) and labels (int64), or raise naming the file.

    An md5 match makes it an official batch (10,000 images), so only hand-made copies need the checks.
    """
    if not path.is_file():
        raise DatasetUnavailable(f"bad format in {path.parent}: {path.name} is missing; delete it, run again")
    if md5 is not None:
        files.check_md5(path, md5)
    try:
        with open(path, "rb") as f:
            entry = _BatchUnpickler(f, encoding="latin1").load()
        data, labels = np.asarray(entry["data"]), np.asarray(entry["labels"], dtype=np.int64)
    except Exception as err:  # any unpickling failure means the file is not a CIFAR-10 batch
        raise DatasetUnavailable(f"bad format in {path}: not a CIFAR-10 batch ({one_line(err)})") from err
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise DatasetUnavailable(
            f"bad format in {path}: data is {data.dtype} {data.shape} with {labels.size} labels, "
            f"expected uint8 (N, 3072) with N labels"
        )
    return data.reshape(-1, *IMAGE_SHAPE), labels


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that only builds numpy arrays, lists and dicts: no other class can be named."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}")
        return super().find_class(module, name)
