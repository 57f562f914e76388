"""The gradient-flow monitor: exact against hand computation, and the classic phenomena it must show."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from actstudy.data.shapes import read_shapes
from actstudy.metric_names import (
    ACT_DEAD,
    ACT_DERIV_MEAN,
    ACT_SATURATED,
    GRAD_BIAS_L2,
    GRAD_FIRST_TO_LAST,
    GRAD_WEIGHT_RMS,
    layer_key,
    parse_layer_key,
)
from actstudy.models import build_model
from actstudy.monitor.gradient_flow import SAMPLE_SIZE, activation_stats
from actstudy.monitor.histogram_file import FILE_NAME, Histograms, read_histograms
from tests.helpers.monitor import config, train_steps


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
    acts, pre, outputs = [], [], []

    def keep(module, inputs, output):
        output.retain_grad()
        acts.append(output.detach()), pre.append(inputs[0].detach()), outputs.append(output)

    for block in reference.blocks:
        block.act.register_forward_hook(keep)
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
        a, z = acts[i], pre[i]
        assert logged[f"act/mean/{key}"] == pytest.approx(a.mean().item(), rel=1e-5)
        assert logged[f"act/std/{key}"] == pytest.approx(a.std().item(), rel=1e-5)
        slope = torch.sigmoid(z) * (1 - torch.sigmoid(z))  # sigmoid'(z), by hand
        assert logged[f"act/deriv_mean/{key}"] == pytest.approx(slope.mean().item(), rel=1e-5)
        saturated = (slope < 0.1 * 0.25).float().mean().item()  # conf/activation/sigmoid.yaml: 0.1 of max
        assert logged[f"act/saturated/{key}"] == pytest.approx(saturated, abs=1e-7)
        for q in (2, 50, 98):
            expected = np.percentile(a.numpy(), q)
            assert logged[f"act/p{q:02d}/{key}"] == pytest.approx(expected, rel=1e-5)
        h = logger.histograms
        a_edges, g_edges = h.activation_edges, h.gradient_edges
        assert (a_edges[0], a_edges[-1], len(a_edges)) == (0.0, 1.0, 51)  # sigmoid's range, 50 bins
        expected_a = np.histogram(a.numpy(), a_edges)[0]
        expected_g = np.histogram(outputs[i].grad.clamp(-1, 1).numpy(), g_edges)[0]
        assert h.activation_counts[0, i].tolist() == expected_a.tolist()
        assert h.gradient_counts[0, i].tolist() == expected_g.tolist()
        assert h.activation_counts[0, i].sum() == h.gradient_counts[0, i].sum() == a.numel()  # 16 x 5
    rms = [logged[f"grad/weight_rms/l{i:02d}"] for i in (1, 2)]
    assert logged["grad/first_to_last"] == pytest.approx(rms[0] / rms[1], rel=1e-5)
    assert not any(k.startswith("act/dead") for k in logged)  # sigmoid defines no dead units
    assert h.steps.tolist() == [0] and h.layers.tolist() == ["l01", "l02"]


def test_dead_and_saturated_fractions_match_a_direct_count():
    relu = config("activation=relu").activation
    z = torch.tensor([[-1.0, 1.0, 0.0], [-2.0, 2.0, -1.0], [-3.0, -1.0, 3.0]])  # unit 0 dead, 1 and 2 alive
    stats = activation_stats(torch.nn.ReLU(), z, relu)
    assert stats[ACT_DEAD].item() == pytest.approx(1 / 3)
    assert ACT_SATURATED not in stats  # ReLU names no saturated region
    assert stats[ACT_DERIV_MEAN].item() == pytest.approx(3 / 9)  # ReLU'(z) = 1 where z > 0, else 0
    conv = torch.zeros(4, 5, 3, 3)
    conv[2, 1, 2, 2] = 0.5  # channel 1 fires once: alive; channels 0, 2, 3, 4 dead
    assert activation_stats(torch.nn.ReLU(), conv, relu)[ACT_DEAD].item() == pytest.approx(4 / 5)
    tanh = config("activation=tanh").activation  # saturated: tanh'(z) < 0.1, i.e. |z| > atanh(sqrt(0.9))
    z = torch.tensor([[-1.9, 0.0], [1.85, 1.75]])
    assert activation_stats(torch.nn.Tanh(), z, tanh)[ACT_SATURATED].item() == pytest.approx(0.5)


def test_the_derivative_of_a_sigmoid_layer_at_zero_is_a_quarter(shapes_batch):
    cfg = config("model=mlp", "activation=sigmoid", "depth=2", "model.width=6", "data=shapes")
    model = build_model(cfg, (3, 32, 32), 10)
    with torch.no_grad():  # every pre-activation of layer 2 is 0
        model.blocks[1].layer.weight.zero_()
        model.blocks[1].layer.bias.zero_()
    step0 = train_steps(cfg, [(shapes_batch[0][:8], shapes_batch[1][:8])], model=model)[0].points[0]
    assert step0["act/deriv_mean/l02"] == pytest.approx(0.25, abs=1e-7)
    assert step0["act/p02/l02"] == step0["act/p98/l02"] == pytest.approx(0.5)
    assert step0["act/saturated/l02"] == 0.0
    assert step0["act/deriv_mean/l01"] < 0.25


def test_a_sigmoid_top_layer_driven_towards_zero_reads_saturated(shapes_batch):
    """Glorot & Bengio's top layer near 0: the derivative-based measure sees what output bands could not."""
    cfg = config("model=mlp", "activation=sigmoid", "depth=3", "model.width=16", "data=shapes")
    model = build_model(cfg, (3, 32, 32), 10)
    with torch.no_grad():
        model.blocks[2].layer.bias.fill_(-6.0)  # outputs about 0.0025, sigmoid' about 0.0025 < 0.025
    step0 = train_steps(cfg, [(shapes_batch[0][:32], shapes_batch[1][:32])], model=model)[0].points[0]
    assert step0["act/p98/l03"] < 0.02
    assert step0["act/saturated/l03"] > 0.95
    assert step0["act/deriv_mean/l03"] < 0.01
    assert step0["act/saturated/l01"] < 0.2


def test_large_layers_are_measured_on_a_fixed_sample_whose_histograms_sum_to_its_size(shapes_batch):
    x, y = shapes_batch[0][:16], shapes_batch[1][:16]
    cfg = config("model=cnn", "activation=tanh", "depth=1", "model.width=32", "data=shapes")
    torch.manual_seed(0)
    model = build_model(cfg, (3, 32, 32), 10)
    outputs = []
    model.blocks[0].act.register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
    logger, _ = train_steps(cfg, [(x, y), (x, y)], model=model)
    full = outputs[0]  # 16 x 32 x 32 x 32 values: far more than the sample
    assert full.numel() > 30 * SAMPLE_SIZE
    h, step0 = logger.histograms, logger.points[0]
    assert h.activation_counts.sum(axis=2).tolist() == [[SAMPLE_SIZE]] * 2
    assert h.gradient_counts.sum(axis=2).tolist() == [[SAMPLE_SIZE]] * 2
    for q in (2, 50, 98):  # the sample's percentiles are close to the whole output's
        expected = torch.quantile(full.flatten(), q / 100).item()
        assert step0[f"act/p{q:02d}/l01"] == pytest.approx(expected, abs=0.02)
    assert step0["act/deriv_mean/l01"] == pytest.approx((1 - full**2).mean().item(), abs=0.01)
    assert step0["act/mean/l01"] == pytest.approx(full.mean().item(), rel=1e-5)  # mean, std, dead: all of it


def test_a_resumed_run_writes_the_histograms_of_the_uninterrupted_one(tmp_path):
    from actstudy.data import load_splits
    from actstudy.training import trainer as training

    def train(epochs: int, folder: str, resume: bool = False) -> Histograms:
        cfg = config(
            "model=mlp", "activation=tanh", "depth=2", "model.width=4", "data=shapes", "data.train_size=48",
            "data.val_size=8", "data.test_size=8", "data.batch_size=8", f"trainer.max_epochs={epochs}",
            "trainer.accelerator=cpu", "trainer.progress=none", "monitor.every_n_steps=4",
        )  # fmt: skip
        checkpoints = tmp_path / folder
        resume_from = checkpoints / training.LAST_CHECKPOINT if resume else None
        assert training.train(cfg, load_splits(cfg.data), checkpoints, resume_from).outcome == "completed"
        return read_histograms(checkpoints / FILE_NAME)

    whole = train(2, "whole")
    first = train(1, "parts")
    resumed = train(2, "parts", resume=True)
    assert first.steps.tolist() == [0, 4]
    assert whole.steps.tolist() == resumed.steps.tolist() == [0, 4, 8]
    for name in ("activation_counts", "gradient_counts", "activation_edges", "gradient_edges", "layers"):
        assert np.array_equal(getattr(whole, name), getattr(resumed, name)), name


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


@pytest.mark.parametrize(("depth", "scale", "exploding"), [(8, 2.0, True), (8, 1.0, False)])
def test_experiment_exploding_grows_the_first_layers_delta_at_tiny_size(
    shapes_batch, depth, scale, exploding
):
    """experiment=exploding (ReLU CNN at twice He's scale) at width 8: ||delta^1|| / ||delta^L|| > 10 at
    step 0, about 2^(L-1); He's own scale, the preset's control, stays within it."""
    cfg = config(
        "experiment=exploding", f"depth={depth}", f"model.init_scale={scale}", "model.width=8", "data=shapes"
    )
    step0 = train_steps(cfg, [(shapes_batch[0][:32], shapes_batch[1][:32])])[0].points[0]
    ratio = step0[layer_key(GRAD_BIAS_L2, 1)] / step0[layer_key(GRAD_BIAS_L2, depth)]
    assert (ratio > 10) == exploding, ratio


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
                "grad/update_ratio", "act/mean", "act/std", "act/zero_fraction", "weight/norm",
                "weight/distance_from_init", "act/saturated", "act/deriv_mean", "act/p02",
                "act/p50", "act/p98") for i in (1, 2)}  # fmt: skip
    assert set(logger.points[2]) == expected | {"grad/first_to_last"}


def test_layer_keys_are_one_based_two_digits():
    assert layer_key(ACT_DEAD, 1) == "act/dead/l01"
    assert layer_key(GRAD_WEIGHT_RMS, 12) == "grad/weight_rms/l12"
    assert parse_layer_key("grad/weight_rms/l03") == (GRAD_WEIGHT_RMS, 3)
    assert parse_layer_key(GRAD_FIRST_TO_LAST) is None


def test_zero_fraction_and_distance_from_init_equal_a_direct_computation(shapes_batch):
    cfg = config(
        "model=mlp", "activation=relu", "depth=2", "model.width=6", "data=shapes", "optimizer.lr=0.5"
    )
    x, y = shapes_batch
    batches = [(x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8]) for i in range(3)]
    torch.manual_seed(0)
    model = build_model(cfg, tuple(x.shape[1:]), 10)
    reference = copy.deepcopy(model)
    outputs: list[torch.Tensor] = []
    for block in reference.blocks:
        block.act.register_forward_hook(lambda m, i, out: outputs.append(out.detach()))
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5)
    initial = [b.layer.weight.detach().clone() for b in reference.blocks]
    direct = []  # per step: (zero fractions, norms, distances) of the weights before that step's update
    for bx, by in batches:
        outputs.clear()
        weights = [b.layer.weight.detach().clone() for b in reference.blocks]
        optimizer.zero_grad()
        F.cross_entropy(reference(bx), by).backward()
        zeros = [(out == 0).float().mean().item() for out in outputs]
        norms = [w.norm().item() for w in weights]
        moved = [((w - w0).norm() / w0.norm()).item() for w, w0 in zip(weights, initial, strict=True)]
        direct.append((zeros, norms, moved))
        optimizer.step()

    logger, _ = train_steps(cfg, batches, model=model)
    for step, (zeros, norms, moved) in enumerate(direct):
        logged = logger.points[step]
        for i in range(2):
            key = f"l{i + 1:02d}"
            assert logged[f"act/zero_fraction/{key}"] == pytest.approx(zeros[i], abs=1e-7)
            assert logged[f"weight/norm/{key}"] == pytest.approx(norms[i], rel=1e-5)
            assert logged[f"weight/distance_from_init/{key}"] == pytest.approx(moved[i], rel=1e-4, abs=1e-7)
    assert 0.2 < direct[0][0][0] < 0.8  # ReLU outputs are sparse: a real fraction of exact zeros
    assert direct[0][2] == [0.0, 0.0] and min(direct[2][2]) > 0  # step 0 is the init itself


def test_a_resumed_run_continues_the_distance_from_the_same_init(tmp_path):
    from actstudy.data import load_splits
    from actstudy.training import trainer as training
    from tests.helpers.monitor import MemoryLogger

    def train(epochs: int, folder: str, resume: bool = False) -> dict[int, dict[str, float]]:
        cfg = config(
            "model=mlp", "activation=tanh", "depth=2", "model.width=4", "data=shapes", "data.train_size=48",
            "data.val_size=8", "data.test_size=8", "data.batch_size=8", f"trainer.max_epochs={epochs}",
            "trainer.accelerator=cpu", "trainer.progress=none", "monitor.every_n_steps=2",
        )  # fmt: skip
        checkpoints, logger = tmp_path / folder, MemoryLogger()
        resume_from = checkpoints / training.LAST_CHECKPOINT if resume else None
        result = training.train(cfg, load_splits(cfg.data), checkpoints, resume_from, logger=logger)
        assert result.outcome == "completed"
        return logger.points

    def distances(points: dict[int, dict[str, float]]) -> dict[tuple[int, str], float]:
        return {(s, k): v for s, p in points.items() for k, v in p.items() if k.startswith("weight/")}

    whole = distances(train(2, "whole"))
    train(1, "parts")
    resumed = distances(train(2, "parts", resume=True))
    later = {key: value for key, value in whole.items() if key[0] >= 6}  # the second epoch's steps
    assert later and resumed == later
