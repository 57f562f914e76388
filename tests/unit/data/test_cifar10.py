"""`read_cifar10` on tiny archives in the official format: reading, caching, checksums and clear errors."""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from actstudy.config.schema import DataConfig
from actstudy.data import cifar10
from actstudy.data.cifar10 import read_cifar10
from actstudy.data.datamodule import load_splits, read_raw, split
from actstudy.data.raw import DatasetUnavailable
from tests.helpers.fake_datasets import make_cifar_archive, write_cifar_batch, write_cifar_folder
from tests.helpers.monitor import config

CACHE = Path("actstudy-cache") / "cifar10.pt"


def leftovers(root: Path) -> list[str]:
    """Return the temporary files or folders a read left behind in `root` (there should be none)."""
    return [p.name for p in root.rglob("*") if p.name.startswith(".")]


def test_reads_archive_in_official_format(tmp_path: Path) -> None:
    _, arrays = make_cifar_archive(tmp_path)
    raw = read_cifar10(tmp_path, download=False, verify_checksums=False)
    assert raw.train_x.shape == (100, 3, 32, 32) and raw.test_x.shape == (20, 3, 32, 32)
    assert raw.train_x.dtype == raw.test_x.dtype == torch.uint8
    assert raw.train_y.dtype == raw.test_y.dtype == torch.int64
    assert int(raw.train_y.min()) >= 0 and int(raw.train_y.max()) <= 9
    for key, expected in arrays.items():  # the rows are CHW: reshaping gives the exact images
        np.testing.assert_array_equal(getattr(raw, key).numpy(), expected)
    assert (tmp_path / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert (tmp_path / CACHE).is_file()
    assert leftovers(tmp_path) == []


def test_cache_is_reused_without_the_raw_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = make_cifar_archive(tmp_path)
    first = read_cifar10(tmp_path, download=False, verify_checksums=False)
    archive.unlink()
    for path in (tmp_path / "cifar-10-batches-py").iterdir():
        path.unlink()
    (tmp_path / "cifar-10-batches-py").rmdir()
    monkeypatch.setattr(cifar10, "_read_batches", lambda *a: pytest.fail("the cache was not used"))
    second = read_cifar10(tmp_path, download=False, verify_checksums=True)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_unreadable_cache_is_rebuilt(tmp_path: Path) -> None:
    make_cifar_archive(tmp_path)
    (tmp_path / CACHE).parent.mkdir()
    (tmp_path / CACHE).write_bytes(b"half a cache")
    with pytest.warns(UserWarning, match="ignoring unreadable dataset cache"):
        raw = read_cifar10(tmp_path, download=False, verify_checksums=False)
    assert raw.train_x.shape == (100, 3, 32, 32)
    assert torch.load(tmp_path / CACHE, weights_only=True)["train_x"].shape == (100, 3, 32, 32)


def test_reads_extracted_folder_and_any_batch_size(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path, per_batch=7)
    raw = read_cifar10(tmp_path, download=False, verify_checksums=False)
    assert raw.train_x.shape == (35, 3, 32, 32) and raw.test_y.shape == (7,)


def test_checksums_reject_a_hand_made_archive(tmp_path: Path) -> None:
    archive, _ = make_cifar_archive(tmp_path)
    with pytest.raises(DatasetUnavailable, match="checksum mismatch") as err:
        read_cifar10(tmp_path, download=False, verify_checksums=True)
    assert str(archive) in str(err.value) and "\n" not in str(err.value)
    assert "c58f30108f718f92721af3b95e74349a" in str(err.value)
    assert not (tmp_path / "cifar-10-batches-py").exists() and not (tmp_path / CACHE).exists()


def test_checksums_reject_hand_made_batches(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path)
    with pytest.raises(DatasetUnavailable, match="checksum mismatch.*data_batch_1"):
        read_cifar10(tmp_path, download=False, verify_checksums=True)
    assert not (tmp_path / CACHE).exists()


def test_missing_data_without_download_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable) as err:
        read_cifar10(tmp_path / "nowhere", download=False, verify_checksums=True)
    message = str(err.value)
    assert "\n" not in message
    for part in (
        str(tmp_path / "nowhere"),
        "cifar-10-python.tar.gz",
        "https://www.cs.toronto.edu/~kriz/cifar.html",
        "data.root=",
        "ACTSTUDY_DATA",
        "data=shapes",
    ):
        assert part in message


@pytest.mark.usefixtures("offline")
def test_download_without_network_fails_fast_and_clearly(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(DatasetUnavailable, match="download failed") as err:
        read_cifar10(tmp_path, download=True, verify_checksums=True)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message and "data=shapes" in message
    assert "cifar-10-python.tar.gz" in message
    assert list(tmp_path.iterdir()) == []  # no partial archive left to trip up the next run


def test_truncated_archive_is_a_clear_error(tmp_path: Path) -> None:
    archive, _ = make_cifar_archive(tmp_path)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetUnavailable, match="bad format.*cannot extract") as err:
        read_cifar10(tmp_path, download=False, verify_checksums=False)
    assert str(archive) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "cifar-10-batches-py").exists() and not (tmp_path / CACHE).exists()
    assert leftovers(tmp_path) == []


def test_truncated_batch_is_a_clear_error(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])
    with pytest.raises(DatasetUnavailable, match="bad format.*data_batch_3.*not a CIFAR-10 batch"):
        read_cifar10(tmp_path, download=False, verify_checksums=False)
    assert not (tmp_path / CACHE).exists()


def test_wrong_row_size_is_a_clear_error(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path)
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch", np.zeros((4, 1024), np.uint8), [0] * 4)
    with pytest.raises(DatasetUnavailable, match="bad format.*test_batch.*expected uint8 \\(N, 3072\\)"):
        read_cifar10(tmp_path, download=False, verify_checksums=False)


def test_labels_out_of_range_are_rejected_before_caching(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path)
    write_cifar_batch(
        tmp_path / "cifar-10-batches-py" / "test_batch", np.zeros((3, 3072), np.uint8), [0, 10, 1]
    )
    with pytest.raises(DatasetUnavailable, match="test labels span 0..10, expected 0..9"):
        read_cifar10(tmp_path, download=False, verify_checksums=False)
    assert not (tmp_path / CACHE).exists()


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_naming_other_code_is_refused(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": _Exploit()}))
    with pytest.raises(DatasetUnavailable, match="forbidden global"):
        read_cifar10(tmp_path, download=False, verify_checksums=False)


def _config(root: Path | None, **overrides) -> DataConfig:
    values = {"root": root or "null", "batch_size": 8, "val_size": 30, "download": False}
    values |= {"verify_checksums": False} | overrides
    return config("data=cifar10", *(f"data.{k}={v}" for k, v in values.items())).data


def _keys(images: torch.Tensor) -> set[bytes]:
    return {bytes(img.flatten()[:4].tolist()) for img in images}  # each fake image starts with its id


def test_split_carves_a_disjoint_reproducible_validation_set(tmp_path: Path) -> None:
    make_cifar_archive(tmp_path)
    config = _config(tmp_path)
    raw = read_raw(config)
    a, b = split(raw, config), load_splits(config)
    assert len(a.val_y) == 30 and len(a.train_y) == 70 and len(a.test_y) == 20
    assert _keys(a.train_x).isdisjoint(_keys(a.val_x))
    assert _keys(a.train_x) | _keys(a.val_x) == _keys(raw.train_x)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    other = split(raw, _config(tmp_path, generator_seed=99))
    assert _keys(other.val_x) != _keys(a.val_x)
    assert a.input_shape == (3, 32, 32) and len(a.mean) == 3


def test_read_raw_honours_actstudy_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_cifar_archive(tmp_path)
    monkeypatch.setenv("ACTSTUDY_DATA", str(tmp_path))
    assert read_raw(_config(None)).train_x.shape == (100, 3, 32, 32)


def test_an_archive_too_small_for_the_validation_split_is_one_line_before_any_run(tmp_path: Path) -> None:
    """1,000 training images under the default data.val_size=5000 once trained on an empty split."""
    from tests.helpers import run_cli

    write_cifar_folder(tmp_path / "data", per_batch=200)  # 5 x 200 = 1,000 training images
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "data=cifar10",
        f"data.root={tmp_path / 'data'}",
        "data.verify_checksums=false",
        "data.download=false",
    ]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri)
    assert (result.returncode, result.stderr.strip()) == (
        2,
        "actstudy: error: data.val_size=5000: the cifar10 files hold 1000 training images, too few for the "
        "validation split and a batch of training; use a smaller data.val_size (or data.train_size)",
    )
    assert not (tmp_path / "mlflow.db").exists()
