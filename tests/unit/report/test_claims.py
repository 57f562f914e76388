"""The claims section's logic on synthetic metric histories: every verdict, and grouping by every factor."""

from __future__ import annotations

import pytest

from actstudy import metric_names as mn
from actstudy.report.claims import CANNOT_TELL, FAILS, HOLDS, evaluate_claims
from actstudy.report.collect import RunData
from actstudy.report.measures import decay_factor
from actstudy.report.stats import end_value, interval


def run(activation: str, depth: int, seed: int, layers: list[float], end: list[float] | None = None,
        acc: float = 0.5, **params: str) -> RunData:  # fmt: skip
    """Return a completed run whose weight-gradient RMS per layer is `layers` at step 0 (`end` after)."""
    metrics = {mn.TEST_BEST_ACC: [(100, acc)]}
    for i, value in enumerate(layers):
        later = (end or layers)[i]
        metrics[mn.layer_key(mn.GRAD_WEIGHT_RMS, i + 1)] = [
            (0, value),
            *((s, later) for s in (60, 70, 80, 90, 100)),
        ]
        metrics[mn.layer_key(mn.GRAD_BIAS_L2, i + 1)] = [(0, value)]
    base = {"activation.name": activation, "depth": str(depth), "seed": str(seed), "model.init": "auto",
            "model.batch_norm": "False", "model.name": "cnn", "model.width": "32"}  # fmt: skip
    return RunData(f"{activation}-d{depth}-s{seed}", base | params, {}, "completed", 1.0, metrics)


def geometric(first: float, factor: float, depth: int) -> list[float]:
    """Return per-layer gradients that grow by 1/`factor` per layer away from the input."""
    return [first / factor**i for i in range(depth)]


def verdicts(runs: list[RunData]) -> dict[tuple[str, str], str]:
    return {(c.claim, c.setting): c.verdict for c in evaluate_claims(runs)}


def test_interval_is_a_t_interval_and_one_seed_has_none():
    value = interval([1.0, 2.0, 3.0])
    assert (value.mean, value.n) == (2.0, 3)
    assert value.high - value.mean == pytest.approx(4.303 * 1.0 / 3**0.5)
    single = interval([0.2])
    assert (single.low, single.high, single.text(str)) == (0.2, 0.2, "0.2 (1 seed)")


def test_decay_factor_recovers_a_geometric_profile_and_end_averages_the_last_points():
    assert decay_factor(geometric(1e-6, 0.25, 8)) == pytest.approx(0.25)
    r = run("sigmoid", 3, 0, [1.0, 2.0, 3.0])
    r.metrics["x"] = [(s, float(s)) for s in range(10)]
    assert end_value(r, "x") == pytest.approx((5 + 6 + 7 + 8 + 9) / 5)


@pytest.mark.parametrize(
    ("factors", "expected"),
    [([0.2, 0.22, 0.25], HOLDS), ([0.9, 0.95, 1.0], FAILS), ([0.1, 0.9, 3.0], CANNOT_TELL), ([0.2], HOLDS)],
)
def test_sigmoid_decay_verdict(factors, expected):
    runs = [run("sigmoid", 8, seed, geometric(1e-5, f, 8)) for seed, f in enumerate(factors)]
    claim = "sigmoid gradients shrink layer by layer towards the input (step 0)"
    assert verdicts(runs)[(claim, "activation=sigmoid, depth=8")] == expected


@pytest.mark.parametrize(
    ("spreads", "expected"),
    [([2.0, 3.0, 2.5], HOLDS), ([100.0, 300.0, 200.0], FAILS), ([1.5, 60.0], CANNOT_TELL)],
)
def test_relu_within_an_order_of_magnitude_verdict(spreads, expected):
    runs = [run("relu", 4, seed, [1.0, 1.0, 1.0, s]) for seed, s in enumerate(spreads)]
    claim = "relu gradients stay within one order of magnitude across layers (step 0)"
    assert verdicts(runs)[(claim, "activation=relu, depth=4")] == expected


def test_the_spread_claim_is_not_made_for_inits_other_than_auto():
    runs = [run("relu", 4, 0, [1e-3, 1.0, 1.0, 1.0], **{"model.init": "default"})]
    assert not [c for c in evaluate_claims(runs) if "order of magnitude" in c.claim]


@pytest.mark.parametrize(
    ("shallow", "deep", "expected"),
    [
        ([0.8, 0.82, 0.81], [0.1, 0.11, 0.1], HOLDS),
        ([0.3, 0.31, 0.3], [0.7, 0.71, 0.72], FAILS),
        ([0.5, 0.8, 0.2], [0.4, 0.7, 0.3], CANNOT_TELL),
        ([0.8], [0.1], CANNOT_TELL),  # one seed cannot rank
    ],
)
def test_deeper_sigmoid_is_worse_verdict(shallow, deep, expected):
    runs = [run("sigmoid", 2, s, [1.0, 1.0], acc=a) for s, a in enumerate(shallow)]
    runs += [run("sigmoid", 8, s, [1.0] * 8, acc=a) for s, a in enumerate(deep)]
    claims = [
        c for c in evaluate_claims(runs) if c.claim == "deeper sigmoid nets reach a lower test accuracy"
    ]
    assert [c.verdict for c in claims] == [expected]


def test_batch_norm_arms_are_separate_groups_and_compared():
    runs = []
    for bn, accs in (("False", [0.1, 0.11, 0.1]), ("True", [0.7, 0.72, 0.71])):
        layers = geometric(1e-5, 0.2, 8)
        runs += [run("sigmoid", 8, s, layers, acc=a, **{"model.batch_norm": bn}) for s, a in enumerate(accs)]
    found = verdicts(runs)
    assert (
        found[("batch norm lifts deep sigmoid nets' test accuracy", "activation=sigmoid, depth=8")] == HOLDS
    )
    decay = "sigmoid gradients shrink layer by layer towards the input (step 0)"
    assert (decay, "activation=sigmoid, depth=8, batch_norm=False") in found  # never pooled with BN's arm
    assert (decay, "activation=sigmoid, depth=8, batch_norm=True") not in found  # a claim on plain nets


def test_nielsens_ratio_is_tested_on_his_network_only():
    nielsen = {"model.name": "mlp", "model.width": "30", "model.init": "nielsen"}
    runs = [run("sigmoid", 4, s, [0.003, 0.017, 0.07, 0.285], **nielsen) for s in range(2)]
    claims = [c for c in evaluate_claims(runs) if "100 times" in c.claim]
    assert [c.verdict for c in claims] == [HOLDS] and "95" in claims[0].measured
    assert not [c for c in evaluate_claims([run("sigmoid", 4, 0, [1.0] * 4)]) if "100 times" in c.claim]


def test_nielsens_ratio_needs_his_init_and_no_batch_norm_and_a_missing_param_is_no_arm():
    book = {"model.name": "mlp", "model.width": "30", "model.init": "nielsen"}
    runs = [run("sigmoid", 4, 0, [0.003, 0.017, 0.07, 0.285], **book, **{"model.batch_norm": "True"})]
    runs += [run("sigmoid", 4, 0, [0.003, 0.017, 0.07, 0.285], **(book | {"model.init": "xavier"}))]
    runs += [run("sigmoid", 4, 1, [1.0] * 4, **{"model.batch_norm": "?"})]
    assert not [c for c in evaluate_claims(runs) if "100 times" in c.claim or "batch norm" in c.claim]


def test_a_diverged_run_counts_at_step_0_only():
    diverged = run("sigmoid", 8, 0, geometric(1e-5, 0.2, 8))
    diverged.outcome = "diverged"
    found = verdicts([diverged])
    assert found[
        ("sigmoid gradients shrink layer by layer towards the input (step 0)", "activation=sigmoid, depth=8")
    ]
    assert not [k for k in found if "@end" in k[0]]
