"""The gradient-flow monitor: exact against hand computation, and the classic phenomena it must show."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from actstudy.data.shapes import read_shapes
from actstudy.metric_names import ACT_DEAD, GRAD_FIRST_TO_LAST, GRAD_WEIGHT_RMS, layer_key, parse_layer_key
from actstudy.monitor import activation_stats
from tests.monitor_helpers import config, train_steps


@pytest.fixture(scope="module")
def shapes_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Return 64 normalised shapes images and labels."""
    raw = read_shapes(64, 1, seed=7)
    return (raw.train_x.float() / 255 - 0.5) / 0.25, raw.train_y


def test_with_batch_norm_the_bias_gradient_is_the_shift_s(shapes_batch):
    from actstudy.models import build_model

    cfg = config("activation=sigmoid", "depth=3", "model.width=8", "data=shapes", "model.batch_norm=true")
    x, y = shapes_batch[0][:16], shapes_batch[1][:16]
    torch.manual_seed(0)
    model = build_model(cfg, tuple(x.shape[1:]), 10)
    reference = copy.deepcopy(model)
    F.cross_entropy(reference(x), y).backward()
    logged = train_steps(cfg, [(x, y)], model=model)[0].points[0]
    for i, block in enumerate(reference.blocks):
        assert block.layer.bias is None  # a conv before batch norm has none: the shift stands in for it
        expected = block.norm.bias.grad.norm().item()
        assert logged[layer_key("grad/bias_l2", i + 1)] == pytest.approx(expected, rel=1e-5)


def test_logged_values_equal_a_direct_computation(shapes_batch):
    cfg = config(
        "model=mlp", "activation=sigmoid", "depth=2", "model.width=5", "data=shapes", "optimizer.lr=0.5"
    )
    x, y = shapes_batch[0][:16], shapes_batch[1][:16]
    torch.manual_seed(0)
    from actstudy.models import build_model

    model = build_model(cfg, tuple(x.shape[1:]), 10)
    reference = copy.deepcopy(model)
    acts = []
    for block in reference.blocks:
        block.act.register_forward_hook(lambda m, i, o: acts.append(o.detach()))
    F.cross_entropy(reference(x), y).backward()

    logger, module = train_steps(cfg, [(x, y)], model=model)
    logged = logger.points[0]
    for i, (block, trained) in enumerate(zip(reference.blocks, module.model.blocks, strict=True)):
        key = f"l{i + 1:02d}"
        w, g = block.layer.weight, block.layer.weight.grad
        assert logged[f"grad/weight_l2/{key}"] == pytest.approx(g.norm().item(), rel=1e-5)
        assert logged[f"grad/weight_rms/{key}"] == pytest.approx(
            g.norm().item() / math.sqrt(g.numel()), rel=1e-5
        )
        assert logged[f"grad/bias_l2/{key}"] == pytest.approx(block.layer.bias.grad.norm().item(), rel=1e-5)
        ratio = (trained.layer.weight.detach() - w.detach()).norm() / w.detach().norm()
        assert logged[f"grad/update_ratio/{key}"] == pytest.approx(ratio.item(), rel=1e-4)
        a = acts[i]
        assert logged[f"act/mean/{key}"] == pytest.approx(a.mean().item(), rel=1e-5)
        assert logged[f"act/std/{key}"] == pytest.approx(a.std().item(), rel=1e-5)
        saturated = ((a < 0.01) | (a > 0.99)).float().mean().item()
        assert logged[f"act/saturated/{key}"] == pytest.approx(saturated, abs=1e-7)
    rms = [logged[f"grad/weight_rms/l{i:02d}"] for i in (1, 2)]
    assert logged["grad/first_to_last"] == pytest.approx(rms[0] / rms[1], rel=1e-5)
    assert not any(k.startswith("act/dead") for k in logged)  # sigmoid defines no dead units


def test_dead_and_saturated_fractions_match_a_direct_count():
    relu = config("activation=relu").activation
    y = torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]])  # unit 0 dead, units 1 and 2 alive
    mean, std, saturated, dead = activation_stats(y, relu)
    assert dead.item() == pytest.approx(1 / 3)
    assert math.isnan(saturated.item())
    conv = torch.zeros(4, 5, 3, 3)
    conv[2, 1, 2, 2] = 0.5  # channel 1 fires once: alive; channels 0, 2, 3, 4 dead
    assert activation_stats(conv, relu)[3].item() == pytest.approx(4 / 5)
    tanh = config("activation=tanh").activation
    t = torch.tensor([[-0.999, 0.0], [0.995, 0.5]])
    assert activation_stats(t, tanh)[2].item() == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nielsen_sigmoid_first_layer_learns_about_100_times_slower(shapes_batch, seed):
    """Nielsen ch. 5: 4 x 30 sigmoid, N(0, 1/fan_in) weights: ||delta^1|| ~ 1/100 of ||delta^4||."""
    torch.manual_seed(seed)
    idx = torch.randperm(64)[:10]  # Nielsen's mini-batch of 10
    batch = [(shapes_batch[0][idx], shapes_batch[1][idx])]
    ratios = {}
    for activation in ("sigmoid", "tanh", "relu"):
        cfg = config(
            "model=mlp", f"activation={activation}", "depth=4", "model.width=30", "model.init=nielsen",
            f"seed={seed}", "data=shapes",
        )  # fmt: skip
        step0 = train_steps(cfg, batch)[0].points[0]
        ratios[activation] = step0["grad/bias_l2/l04"] / step0["grad/bias_l2/l01"]
    assert 30 < ratios["sigmoid"] < 1000, ratios
    assert ratios["tanh"] < 15 and ratios["relu"] < 15, ratios


def test_deep_sigmoid_cnn_gradient_vanishes_where_relu_kaiming_does_not(shapes_batch):
    batch = [(shapes_batch[0][:32], shapes_batch[1][:32])]
    sigmoid = config("model=cnn", "activation=sigmoid", "depth=8", "model.init=default", "data=shapes")
    relu = config("model=cnn", "activation=relu", "depth=8", "model.init=kaiming", "data=shapes")
    f2l_sigmoid = train_steps(sigmoid, batch)[0].points[0]["grad/first_to_last"]
    f2l_relu = train_steps(relu, batch)[0].points[0]["grad/first_to_last"]
    assert f2l_sigmoid < 1e-3 * f2l_relu, (f2l_sigmoid, f2l_relu)
    assert f2l_relu > 0.05


def test_large_negative_bias_kills_relu_units_and_large_weights_saturate_sigmoid(shapes_batch):
    batch = [(shapes_batch[0][:32], shapes_batch[1][:32])]
    relu = config("model=mlp", "activation=relu", "depth=3", "model.width=16", "data=shapes")
    torch.manual_seed(0)
    from actstudy.models import build_model

    model = build_model(relu, (3, 32, 32), 10)
    with torch.no_grad():
        model.blocks[1].layer.bias.fill_(-100.0)
    step0 = train_steps(relu, batch, model=model)[0].points[0]
    assert step0["act/dead/l02"] == 1.0
    assert step0["act/dead/l01"] < 0.5

    sigmoid = config("model=mlp", "activation=sigmoid", "depth=2", "model.width=16", "data=shapes")
    model = build_model(sigmoid, (3, 32, 32), 10)
    with torch.no_grad():
        model.blocks[0].layer.weight.mul_(50.0)
    step0 = train_steps(sigmoid, batch, model=model)[0].points[0]
    assert step0["act/saturated/l01"] > 0.8


def test_logs_only_on_monitored_steps_and_step_zero(shapes_batch):
    cfg = config("model=mlp", "activation=tanh", "depth=2", "model.width=8", "data=shapes")
    x, y = shapes_batch
    batches = [(x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8]) for i in range(5)]
    logger, _ = train_steps(cfg, batches, every_n_steps=2)
    assert sorted(logger.points) == [0, 2, 4]
    expected = {f"{m}/l{i:02d}" for m in ("grad/weight_l2", "grad/weight_rms", "grad/bias_l2",
                "grad/update_ratio", "act/mean", "act/std", "act/saturated") for i in (1, 2)}  # fmt: skip
    assert set(logger.points[2]) == expected | {"grad/first_to_last"}


def test_layer_keys_are_one_based_two_digits():
    assert layer_key(ACT_DEAD, 1) == "act/dead/l01"
    assert layer_key(GRAD_WEIGHT_RMS, 12) == "grad/weight_rms/l12"
    assert parse_layer_key("grad/weight_rms/l03") == (GRAD_WEIGHT_RMS, 3)
    assert parse_layer_key(GRAD_FIRST_TO_LAST) is None
