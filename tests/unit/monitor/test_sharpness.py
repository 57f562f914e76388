"""The sharpness measure: the exact Hessian's top eigenvalue, no trace on training, continued on resume."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.func import functional_call

from actstudy.data.shapes import read_shapes
from actstudy.metric_names import CURV_SHARPNESS, CURV_TWO_OVER_LR, TIMED_PREFIXES
from actstudy.models import build_model
from actstudy.monitor.sharpness import top_hessian_eigenvalue
from actstudy.training.module import ClassifierModule
from tests.helpers.monitor import config, train_steps


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Return 16 normalised 8x8 shapes images, one channel, and their labels."""
    raw = read_shapes(16, 1, seed=3)
    x = (raw.train_x.float() / 255 - 0.5) / 0.25
    return x[:, :1, ::4, ::4].contiguous(), raw.train_y


def exact_eigenvalues(model: torch.nn.Module, loss_fn, x, y) -> torch.Tensor:
    """Return the eigenvalues, ascending, of the full Hessian of the loss over all parameters."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()]).double()

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        params, offset = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            params[name] = theta[offset : offset + shape.numel()].view(shape)
            offset += shape.numel()
        return loss_fn(functional_call(model, params, (x.double(),)), y)

    return torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss_of, flat))


# At this init the tanh net's most negative eigenvalue is the largest in magnitude: plain power iteration
# would return it, so this case tests the shifted second run.
@pytest.mark.parametrize(
    ("activation", "negative_dominates"), [("sigmoid", False), ("tanh", True), ("relu", False)]
)
def test_power_iteration_finds_the_exact_hessians_top_eigenvalue(batch, activation, negative_dominates):
    x, y = batch
    cfg = config("model=mlp", f"activation={activation}", "depth=2", "model.width=4", "data=shapes")
    torch.manual_seed(0)
    model = build_model(cfg, tuple(x.shape[1:]), 10).double()
    module = ClassifierModule(model, cfg.optimizer, 10, cfg.model.head)
    exact = exact_eigenvalues(model, module.loss_fn, x, y)
    assert (-exact.min() > exact.max()) == negative_dominates
    measured = top_hessian_eigenvalue(model, module.loss_fn, x.double(), y, iterations=300).item()
    assert measured == pytest.approx(exact.max().item(), rel=1e-4)


def test_the_measurement_leaves_batch_norms_running_statistics_alone(batch):
    x, y = batch
    cfg = config("model=cnn", "activation=sigmoid", "depth=2", "model.width=4", "model.batch_norm=true")
    torch.manual_seed(0)
    model = build_model(cfg, tuple(x.shape[1:]), 10)
    before = {name: b.clone() for name, b in model.named_buffers()}
    assert before, "the model has batch norm buffers"
    module = ClassifierModule(model, cfg.optimizer, 10, cfg.model.head)
    assert top_hessian_eigenvalue(model, module.loss_fn, x, y, iterations=3).isfinite()
    for name, b in model.named_buffers():
        assert torch.equal(b, before[name]), name


def _trained(batch, sharpness: bool):
    x, y = batch
    cfg = config("model=mlp", "activation=tanh", "depth=2", "model.width=4", "data=shapes")
    every = 2 if sharpness else None
    cfg = dataclasses.replace(cfg, monitor=dataclasses.replace(cfg.monitor, sharpness_every_n_steps=every))
    batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 16, 4)]
    return train_steps(cfg, batches, every_n_steps=1)


def test_sharpness_is_logged_beside_two_over_lr_and_changes_nothing_of_training(batch):
    with_logger, with_module = _trained(batch, sharpness=True)
    without_logger, without_module = _trained(batch, sharpness=False)
    curv = {s: p for s, p in with_logger.points.items() if CURV_SHARPNESS in p}
    assert sorted(curv) == [0, 2]
    lr = config("data=shapes").optimizer.lr
    assert all(p[CURV_TWO_OVER_LR] == pytest.approx(2 / lr) and p[CURV_SHARPNESS] > 0 for p in curv.values())

    def trained(points):
        skip = (*TIMED_PREFIXES, "curv/")
        return {s: {k: v for k, v in p.items() if not k.startswith(skip)} for s, p in points.items()}

    assert trained(with_logger.points) == trained(without_logger.points)
    for a, b in zip(with_module.parameters(), without_module.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_resumed_run_measures_the_sharpness_of_the_uninterrupted_one(tmp_path):
    from actstudy.data import load_splits
    from actstudy.training import trainer as training
    from tests.helpers.monitor import MemoryLogger

    def train(epochs: int, folder: str, resume: bool = False) -> dict[int, float]:
        cfg = config(
            "model=mlp", "activation=tanh", "depth=2", "model.width=4", "data=shapes", "data.train_size=48",
            "data.val_size=8", "data.test_size=8", "data.batch_size=8", f"trainer.max_epochs={epochs}",
            "trainer.accelerator=cpu", "trainer.progress=none", "monitor.sharpness_every_n_steps=2",
            "monitor.sharpness_iterations=5",
        )  # fmt: skip
        checkpoints, logger = tmp_path / folder, MemoryLogger()
        resume_from = checkpoints / training.LAST_CHECKPOINT if resume else None
        result = training.train(cfg, load_splits(cfg.data), checkpoints, resume_from, logger=logger)
        assert result.outcome == "completed"
        return {s: p[CURV_SHARPNESS] for s, p in logger.points.items() if CURV_SHARPNESS in p}

    whole = train(2, "whole")
    train(1, "parts")
    resumed = train(2, "parts", resume=True)
    later = {step: value for step, value in whole.items() if step >= 6}  # the second epoch's steps
    assert later and resumed == later
