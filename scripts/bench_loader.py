"""Benchmark: torchvision's CIFAR10 + DataLoader against `TensorLoader`, in images per second (not a test).

Writes 50,000 random training images (and a 10,000-image test batch) in CIFAR-10's python pickle
format to a temporary folder, then times the same augmentation (normalise, random crop with 4 px of
padding, horizontal flip) at batch size 128 through
  (a) torchvision `datasets.CIFAR10` with `ToTensor, Normalize, RandomCrop, RandomHorizontalFlip` in a
      `DataLoader(shuffle=True)`, best of num_workers 0, 1, 2 (a fixed number of batches each), and
  (b) `TensorLoader` (one whole epoch) on the tensors `read_cifar10` returns.
Each is timed `--repeats` times and the best kept, so a busy machine disturbs the result less.

    python scripts/bench_loader.py [--batches 120] [--workers 0 1 2] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from actstudy.data.cifar10 import read_cifar10
from actstudy.data.datamodule import channel_stats
from actstudy.data.tensor_loader import TensorLoader

BATCH = 128


class UncheckedCIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR10 without its md5 checks, which random benchmark files cannot pass."""

    meta = {**datasets.CIFAR10.meta, "md5": None}  # check_integrity(path, None) only checks the file exists

    def _check_integrity(self) -> bool:
        return True


def write_fake_cifar(root: Path, train: int = 50_000, test: int = 10_000) -> None:
    """Write random uint8 images as `root/cifar-10-batches-py/` pickle batches in the official format."""
    folder = root / datasets.CIFAR10.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [name for name, _ in datasets.CIFAR10.train_list + datasets.CIFAR10.test_list]
    sizes = [train // 5] * 5 + [test]
    for name, n in zip(names, sizes, strict=True):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        entry = {"data": data, "labels": rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {"label_names": [f"c{i}" for i in range(10)], "num_cases_per_batch": train // 5, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def time_torchvision(root: Path, workers: int, batches: int, repeats: int, mean: tuple, std: tuple) -> float:
    """Return the best images/s of torchvision's pipeline over `batches` batches (after a warm-up batch)."""
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    dataset = UncheckedCIFAR10(str(root), train=True, transform=transform, download=False)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True)
    rates = []
    for _ in range(repeats):
        it = iter(loader)
        next(it)  # worker start-up is not counted
        start = time.perf_counter()
        seen = sum(len(next(it)[0]) for _ in range(batches))
        rates.append(seen / (time.perf_counter() - start))
        del it  # shuts the workers down
    return max(rates)


def time_tensor_loader(root: Path, repeats: int, mean: tuple, std: tuple) -> float:
    """Return the best images/s of `TensorLoader` over one epoch (crop padding 4, flip) of `repeats`."""
    raw = read_cifar10(root, download=False, verify_checksums=False)
    loader = TensorLoader(
        raw.train_x, raw.train_y, BATCH, mean, std, shuffle=True, drop_last=True, crop_padding=4, flip=True
    )
    next(iter(loader))  # warm-up
    rates = []
    for epoch in range(repeats):
        loader.set_epoch(epoch)
        start = time.perf_counter()
        seen = sum(len(x) for x, _y in loader)
        rates.append(seen / (time.perf_counter() - start))
    return max(rates)


def main() -> None:
    """Print one table: images/s of each loader and the ratio TensorLoader / best torchvision."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=120, help="torchvision batches timed per worker count")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="timings per loader; the best is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_fake_cifar(root)
        raw = read_cifar10(root, download=False, verify_checksums=False)
        mean, std = channel_stats(raw.train_x)
        rows = [
            (
                f"(a) torchvision CIFAR10 + DataLoader, num_workers={w}",
                time_torchvision(root, w, args.batches, args.repeats, mean, std),
            )
            for w in args.workers
        ]
        best = max(rate for _, rate in rows)
        ours = time_tensor_loader(root, args.repeats, mean, std)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, crop 4 + flip\n")
    print(f"| {'loader':<52} | {'images/s':>9} | {'vs best (a)':>11} |")
    print(f"|{'-' * 54}|{'-' * 11}:|{'-' * 12}:|")
    for name, rate in [*rows, ("(b) TensorLoader, one epoch", ours)]:
        print(f"| {name:<52} | {rate:>9,.0f} | {rate / best:>10.1f}x |")


if __name__ == "__main__":
    main()
