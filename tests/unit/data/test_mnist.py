"""`read_mnist` on tiny IDX files in the official format: gz or plain, caching, checksums, clear errors."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from actstudy.data import mnist
from actstudy.data.datamodule import load_splits
from actstudy.data.mnist import read_mnist
from actstudy.data.raw import DatasetUnavailable
from tests.helpers.fake_datasets import idx_bytes, write_mnist
from tests.helpers.monitor import config as compose_config

CACHE = Path("actstudy-cache") / "mnist.pt"


def _check(raw, arrays: dict[str, np.ndarray]) -> None:
    assert raw.train_x.shape == (30, 1, 28, 28) and raw.test_x.shape == (10, 1, 28, 28)
    assert raw.train_x.dtype == raw.test_x.dtype == torch.uint8
    assert raw.train_y.dtype == raw.test_y.dtype == torch.int64
    assert int(raw.train_y.min()) >= 0 and int(raw.train_y.max()) <= 9
    np.testing.assert_array_equal(raw.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(raw.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])


def test_reads_gzipped_idx_in_torchvision_layout(tmp_path: Path) -> None:
    arrays = write_mnist(tmp_path / "MNIST" / "raw")
    _check(read_mnist(tmp_path, download=False, verify_checksums=False), arrays)
    assert (tmp_path / CACHE).is_file()


def test_reads_plain_idx_directly_in_root(tmp_path: Path) -> None:
    arrays = write_mnist(tmp_path, gz=False)
    _check(read_mnist(tmp_path, download=False, verify_checksums=False), arrays)


def test_cache_is_reused_without_the_raw_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = write_mnist(tmp_path / "MNIST" / "raw")
    read_mnist(tmp_path, download=False, verify_checksums=False)
    for path in (tmp_path / "MNIST" / "raw").iterdir():
        path.unlink()
    monkeypatch.setattr(mnist, "_read_idx", lambda *a, **k: pytest.fail("the cache was not used"))
    _check(read_mnist(tmp_path, download=False, verify_checksums=True), arrays)


def test_checksums_reject_hand_made_files(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw")
    with pytest.raises(DatasetUnavailable, match="checksum mismatch.*train-images-idx3-ubyte.gz") as err:
        read_mnist(tmp_path, download=False, verify_checksums=True)
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / CACHE).exists()


def test_uncompressed_files_are_checked_for_official_counts(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=False)
    with pytest.raises(DatasetUnavailable, match="30 train images, official: 60,000"):
        read_mnist(tmp_path, download=False, verify_checksums=True)


def test_missing_data_without_download_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable) as err:
        read_mnist(tmp_path, download=False, verify_checksums=True)
    message = str(err.value)
    assert "\n" not in message
    for part in (
        str(tmp_path / "MNIST" / "raw"),
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "data.root=",
        "ACTSTUDY_DATA",
        "data=shapes",
    ):
        assert part in message


@pytest.mark.usefixtures("offline")
def test_download_without_network_fails_fast_and_clearly(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(DatasetUnavailable, match="download failed") as err:
        read_mnist(tmp_path, download=True, verify_checksums=True)
    assert time.monotonic() - start < 10
    assert "\n" not in str(err.value) and "data=shapes" in str(err.value)
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []  # no partial download left behind


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw")
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetUnavailable, match="bad format.*train-images-idx3-ubyte.gz.*cannot read"):
        read_mnist(tmp_path, download=False, verify_checksums=False)
    assert not (tmp_path / CACHE).exists()


def test_truncated_idx_is_a_clear_error(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetUnavailable, match="dims \\(10, 28, 28\\) need 7856 bytes, it has 7851"):
        read_mnist(tmp_path, download=False, verify_checksums=False)


def test_wrong_magic_is_a_clear_error(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((30, 2), np.uint8)))
    with pytest.raises(DatasetUnavailable, match="not an IDX file of 1-d unsigned bytes"):
        read_mnist(tmp_path, download=False, verify_checksums=False)


def test_label_count_and_range_are_checked(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=False)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(9, np.uint8)))
    with pytest.raises(DatasetUnavailable, match="test images .* with 9 labels"):
        read_mnist(tmp_path, download=False, verify_checksums=False)
    labels.write_bytes(idx_bytes(np.full(10, 12, np.uint8)))
    with pytest.raises(DatasetUnavailable, match="test labels span 12..12"):
        read_mnist(tmp_path, download=False, verify_checksums=False)
    assert not (tmp_path / CACHE).exists()


def test_splits_through_the_config(tmp_path: Path) -> None:
    write_mnist(tmp_path / "MNIST" / "raw")
    overrides = [f"data.root={tmp_path}", "data.val_size=5", "data.verify_checksums=false"]
    config = compose_config("data=mnist", "data.batch_size=4", *overrides).data
    splits = load_splits(config)
    assert splits.input_shape == (1, 28, 28) and len(splits.train_y) == 25 and len(splits.val_y) == 5
    assert torch.equal(load_splits(config).val_x, splits.val_x)
    assert len(splits.mean) == 1


def test_gzip_header_of_official_format(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz") as f:
        assert f.read(8) == bytes([0, 0, 8, 3, 0, 0, 0, 30])  # the fixture really writes IDX
