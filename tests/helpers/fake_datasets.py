"""Tiny datasets written in the official on-disk formats (CIFAR-10 pickle batches, MNIST IDX files)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def cifar_images(n: int, start: int) -> np.ndarray:
    """Return `n` distinct uint8 images as CIFAR rows (N, 3072): image i begins with the id start + i."""
    rng = np.random.default_rng(start)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    ids = np.arange(start, start + n, dtype=">u4").view(np.uint8).reshape(n, 4)
    data[:, :4] = ids
    return data


def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    """Write one batch as the official python pickle (a dict with `data` N x 3072 uint8 and `labels`)."""
    entry = {
        "batch_label": path.name,
        "labels": labels,
        "data": data,
        "filenames": [f"img_{i}.png" for i in range(len(labels))],
    }
    path.write_bytes(pickle.dumps(entry, protocol=2))


def write_cifar_folder(root: Path, per_batch: int = 20) -> dict[str, np.ndarray]:
    """Write `root/cifar-10-batches-py/` with 5 train batches and a test batch; return the arrays written."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i, name in enumerate([*CIFAR_TRAIN, "test_batch"]):
        data = cifar_images(per_batch, i * per_batch)
        labels = [(i + j) % 10 for j in range(per_batch)]
        write_cifar_batch(folder / name, data, labels)
        xs.append(data)
        ys.append(labels)
    meta = {"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return {
        "train_x": np.concatenate(xs[:5]).reshape(-1, 3, 32, 32),
        "train_y": np.concatenate(ys[:5]),
        "test_x": xs[5].reshape(-1, 3, 32, 32),
        "test_y": np.asarray(ys[5]),
    }


def make_cifar_archive(root: Path, per_batch: int = 20) -> tuple[Path, dict[str, np.ndarray]]:
    """Write `root/cifar-10-python.tar.gz` as the official archive; return its path and the arrays inside."""
    staging = root / "staging"
    arrays = write_cifar_folder(staging, per_batch)
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    for path in sorted((staging / "cifar-10-batches-py").iterdir()):
        path.unlink()
    (staging / "cifar-10-batches-py").rmdir()
    staging.rmdir()
    return archive, arrays


def idx_bytes(array: np.ndarray) -> bytes:
    """Return `array` (uint8) encoded as an IDX file: magic 0x0000 08 ndim, big-endian int32 dims, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> dict[str, np.ndarray]:
    """Write the four MNIST IDX files (gzipped or plain) of random images in `folder`; return the arrays."""
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    train_y, test_y = np.arange(n_train) % 10, np.arange(n_test) * 3 % 10
    return write_mnist_arrays(folder, train_x, train_y, test_x, test_y, gz)


def write_mnist_arrays(
    folder: Path,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    gz: bool = True,
) -> dict[str, np.ndarray]:
    """Write the given images (N, 28, 28) and labels as MNIST's four IDX files; return them by file name."""
    arrays = {
        "train-images-idx3-ubyte": np.asarray(train_x, dtype=np.uint8),
        "train-labels-idx1-ubyte": np.asarray(train_y, dtype=np.uint8),
        "t10k-images-idx3-ubyte": np.asarray(test_x, dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.asarray(test_y, dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            buf = io.BytesIO()
            with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
                f.write(data)
            (folder / f"{name}.gz").write_bytes(buf.getvalue())
        else:
            (folder / name).write_bytes(data)
    return arrays
