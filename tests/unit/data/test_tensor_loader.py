"""`TensorLoader`: coverage, drop_last, augmentation, determinism, mid-epoch resume and DDP sharding."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from actstudy.data.tensor_loader import TensorLoader

MEAN, STD = (0.5, 0.25, 0.1), (0.2, 0.3, 0.4)


def dataset(n: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Return `n` random uint8 images (N, 3, size, size) and labels equal to their index (ids)."""
    g = torch.Generator().manual_seed(n)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8), torch.arange(n)


def loader(n: int = 50, **kwargs) -> TensorLoader:
    x, y = dataset(n)
    return TensorLoader(x, y, kwargs.pop("batch_size", 8), MEAN, STD, **kwargs)


def ids(batches) -> list[int]:
    return [i for _, y in batches for i in y.tolist()]


def test_epoch_covers_every_example_once() -> None:
    ld = loader(50, shuffle=True, drop_last=False)
    batches = list(ld)
    assert len(batches) == len(ld) == 7 and [len(y) for _, y in batches] == [8] * 6 + [2]
    assert sorted(ids(batches)) == list(range(50)) and ids(batches) != list(range(50))


def test_drop_last_gives_only_full_batches() -> None:
    ld = loader(50, shuffle=True, drop_last=True)
    batches = list(ld)
    assert len(batches) == len(ld) == 6 and all(len(y) == 8 for _, y in batches)
    assert len(set(ids(batches))) == 48


def test_normalises_without_augmentation() -> None:
    x, y = dataset(10)
    ld = TensorLoader(x, y, 4, MEAN, STD)
    out = torch.cat([b for b, _ in ld])
    expected = (x.float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert out.dtype == torch.float32 and torch.allclose(out, expected, atol=1e-5)
    assert ids([(None, b) for _, b in ld]) == list(range(10))  # no shuffle: in order


def test_augmentation_is_a_reflect_padded_crop_or_its_mirror() -> None:
    x, y = dataset(24)
    pad = 2
    ld = TensorLoader(x, y, 8, (0.0,) * 3, (1 / 255,) * 3, shuffle=True, crop_padding=pad, flip=True)
    changed = 0
    for out, labels in ld:
        assert out.shape == (len(labels), 3, 8, 8) and out.dtype == torch.float32
        for img, i in zip(out, labels.tolist(), strict=True):
            padded = F.pad(x[i : i + 1].float(), (pad,) * 4, mode="reflect")[0]
            crops = [padded[:, r : r + 8, c : c + 8] for r in range(2 * pad + 1) for c in range(2 * pad + 1)]
            assert any(torch.equal(img, crop) or torch.equal(img, crop.flip(2)) for crop in crops)
            changed += not torch.equal(img, x[i].float())
    assert changed > 12  # the augmentation really happens


def test_same_seed_same_batches_other_epoch_other_order() -> None:
    a, b = (
        loader(shuffle=True, seed=3, crop_padding=2, flip=True),
        loader(shuffle=True, seed=3, crop_padding=2, flip=True),
    )
    first = list(a)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(first, b, strict=True))
    assert ids(a) == ids(first)  # iterating again repeats the same epoch until set_epoch
    a.set_epoch(1)
    assert ids(a) != ids(first) and sorted(ids(a)) == sorted(ids(first))
    assert ids(loader(shuffle=True, seed=4)) != ids(first)


def test_state_dict_resumes_at_the_right_batch() -> None:
    ld = loader(shuffle=True, seed=1, crop_padding=2, flip=True)
    ld.set_epoch(2)
    full = list(ld)
    it = iter(ld)
    for _ in range(3):
        next(it)
    state = ld.state_dict()
    assert state == {"epoch": 2, "position": 3}
    resumed = loader(shuffle=True, seed=1, crop_padding=2, flip=True)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(full) - 3
    assert all(
        torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(rest, full[3:], strict=True)
    )
    assert len(list(resumed)) == len(full)  # the next pass is a whole epoch again


def test_epoch_source_drives_the_epoch_and_discards_a_stale_resume() -> None:
    epoch = [0]
    ld = loader(shuffle=True, epoch_source=lambda: epoch[0])
    e0 = ids(ld)
    epoch[0] = 1
    e1 = ids(ld)
    assert e0 != e1 and ld.state_dict()["epoch"] == 1
    ld.load_state_dict({"epoch": 1, "position": 2})
    assert ids(ld) == e1[16:]
    ld.load_state_dict({"epoch": 0, "position": 2})  # a checkpoint of epoch 0 while the trainer is at 1
    assert ids(ld) == e1


@pytest.mark.parametrize("n", [50, 51])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_shards_are_disjoint_and_cover_the_data(n: int, drop_last: bool) -> None:
    shards = [ids(loader(n, shuffle=True, seed=5, drop_last=drop_last, rank=r, world_size=2)) for r in (0, 1)]
    assert set(shards[0]).isdisjoint(shards[1])
    if drop_last:  # training: every rank the same number of batches, as DDP's all-reduce needs
        lengths = [len(loader(n, drop_last=True, rank=r, world_size=2)) for r in (0, 1)]
        assert lengths[0] == lengths[1]
    else:  # evaluation: every example exactly once over the ranks, none dropped
        assert sorted(shards[0] + shards[1]) == list(range(n))
        assert abs(len(shards[0]) - len(shards[1])) <= 1


def test_ddp_ranks_split_each_global_batch() -> None:
    """Rank r's i-th batch of size B/2 holds half of the single process's i-th batch of size B."""
    whole = loader(64, batch_size=16, shuffle=True, seed=3, drop_last=True)
    halves = [
        loader(64, batch_size=8, shuffle=True, seed=3, drop_last=True, rank=r, world_size=2) for r in (0, 1)
    ]
    for (_, y), (_, y0), (_, y1) in zip(whole, *halves, strict=True):
        assert sorted(y0.tolist() + y1.tolist()) == sorted(y.tolist())
        assert set(y0.tolist()).isdisjoint(y1.tolist())


def test_rejects_non_uint8_images_and_padding_beyond_the_image() -> None:
    with pytest.raises(ValueError, match="uint8"):
        TensorLoader(torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), 2, MEAN, STD)
    with pytest.raises(ValueError, match="crop_padding 8"):
        loader(crop_padding=8)
