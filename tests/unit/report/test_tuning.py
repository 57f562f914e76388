"""The tuned selection on synthetic histories: what is picked, what never is, and what the claims use."""

from __future__ import annotations

import pytest

from actstudy import metric_names as mn
from actstudy.report.claims import CANNOT_TELL, FAILS, HOLDS, evaluate_claims
from actstudy.report.collect import RunData
from actstudy.report.stats import TEST_IMAGES, wilson
from actstudy.report.tuning import instability_notes, setting_factors, tune

LR = ("optimizer.lr",)


def run(activation: str, depth: int, seed: int, lr: float, val: float, test: float | None = None,
        outcome: str = "completed", images: int | None = None, chance: float | None = None,
        ) -> RunData:  # fmt: skip
    """Return a run with a best validation accuracy `val`, a test accuracy and flat gradients per layer."""
    metrics = {mn.VAL_ACC_BEST: [(100, val)], mn.VAL_ACC: [(100, val)]}
    if outcome == "completed":
        metrics[mn.TEST_BEST_ACC] = [(100, val if test is None else test)]
    if images:
        metrics[mn.TEST_EXAMPLES] = [(100, float(images))]
    if chance:
        metrics[mn.TEST_CHANCE_ACC] = [(100, chance)]
    for layer in range(1, depth + 1):
        metrics[mn.layer_key(mn.GRAD_WEIGHT_RMS, layer)] = [(0, 1.0), (100, 1.0)]
    params = {"activation.name": activation, "depth": str(depth), "seed": str(seed), "optimizer.lr": str(lr),
              "model.init": "auto", "model.batch_norm": "False", "model.name": "cnn"}  # fmt: skip
    tags = {"actstudy.diverged_step": "37"} if outcome == "diverged" else {}
    return RunData(f"{activation}-d{depth}-s{seed}_lr={lr}", params, tags, outcome, 1.0, metrics)


def picks(runs: list[RunData], keys: tuple[str, ...] = LR) -> dict[tuple[str, ...], tuple[str, ...] | None]:
    return {s.setting: (s.picked.values if s.picked else None) for s in tune(runs, keys).selections}


def test_the_value_with_the_best_mean_validation_accuracy_over_seeds_is_picked_per_setting():
    runs = [run("relu", 8, s, 0.03, v) for s, v in enumerate((0.9, 0.92, 0.91))]
    runs += [run("relu", 8, s, 0.1, v) for s, v in enumerate((0.99, 0.5, 0.6))]  # best seed, worse mean
    runs += [run("sigmoid", 8, s, 0.1, 0.1) for s in range(3)]
    runs += [run("sigmoid", 8, s, 1.0, 0.3) for s in range(3)]
    assert picks(runs) == {("relu", "8"): ("0.03",), ("sigmoid", "8"): ("1.0",)}


def test_a_value_whose_runs_diverged_or_failed_is_never_picked_and_none_is_when_all_did():
    runs = [run("relu", 8, 0, 0.3, 0.95), run("relu", 8, 1, 0.3, 0.2, outcome="diverged")]
    runs += [run("relu", 8, s, 0.01, 0.5) for s in range(2)]
    runs += [run("tanh", 8, 0, 1.0, 0.9, outcome="failed"), run("tanh", 8, 0, 0.3, 0.9, outcome="diverged")]
    found = tune(runs, LR)
    assert picks(runs) == {("relu", "8"): ("0.01",), ("tanh", "8"): None}
    tanh = next(s for s in found.selections if s.setting == ("tanh", "8"))
    assert "no lr can be picked" in tanh.reason
    assert tune([r for r in runs if r.activation == "tanh"], LR).runs(runs) == []  # drops out of claims


def test_a_tie_goes_to_the_smaller_value_and_one_seed_is_enough_to_pick():
    runs = [run("tanh", 4, 0, 0.3, 0.8), run("tanh", 4, 0, 0.1, 0.8), run("tanh", 4, 0, 1.0, 0.7)]
    assert picks(runs) == {("tanh", "4"): ("0.1",)}


def test_a_tuned_key_that_does_not_vary_picks_its_one_value_and_says_so():
    runs = [run("relu", 2, s, 0.1, 0.8) for s in range(2)] + [run("relu", 4, s, 0.1, 0.7) for s in range(2)]
    found = tune(runs, LR)
    assert picks(runs) == {("relu", "2"): ("0.1",), ("relu", "4"): ("0.1",)}
    assert all("does not vary" in s.reason for s in found.selections)
    assert found.runs(runs) == runs


def test_the_edge_of_the_grid_is_said():
    runs = [run("relu", 8, 0, lr, v) for lr, v in ((0.01, 0.9), (0.1, 0.5), (1.0, 0.1))]
    assert "edge of the values tried" in tune(runs, LR).selections[0].reason


def test_claims_use_each_settings_picked_runs_and_carry_the_picked_values():
    runs = []
    for depth, good_lr in ((2, 1.0), (8, 0.1)):
        for lr in (0.1, 1.0):
            acc = 0.6 if (depth, lr) == (2, 1.0) else 0.1
            runs += [run("sigmoid", depth, s, lr, acc + 0.01 * s + (0.001 if lr == good_lr else 0))
                     for s in range(3)]  # fmt: skip
    found = tune(runs, LR)
    claims = evaluate_claims(runs, found)
    depth_claim = next(c for c in claims if c.key == "deeper_sigmoid_worse")
    assert depth_claim.verdict == HOLDS and depth_claim.setting == "activation=sigmoid"
    assert depth_claim.tuned == {"optimizer.lr": {"2": 1.0, "8": 0.1}}
    assert "depth=2 (lr=1)" in depth_claim.measured
    decay = next(c for c in claims if c.key == "sigmoid_decay_step0" and "depth=8" in c.setting)
    assert decay.tuned == {"optimizer.lr": 0.1} and "(tuned: lr=0.1)" in decay.setting
    untuned = [c for c in evaluate_claims(runs) if c.key == "deeper_sigmoid_worse"]
    assert len(untuned) == 2  # one per lr: the lr is a setting of its own when nothing is tuned


def test_one_seeds_accuracy_compares_by_the_wilson_interval_of_its_test_set():
    value = wilson(0.38, 1000)
    assert value.over == TEST_IMAGES and value.low == pytest.approx(0.3506, abs=1e-3)
    assert value.high == pytest.approx(0.4102, abs=1e-3)  # Wilson (1927), z = 1.96
    shallow, deep = run("sigmoid", 2, 0, 1.0, 0.38, images=1000), run("sigmoid", 8, 0, 1.0, 0.1, images=1000)
    claim = next(c for c in evaluate_claims([shallow, deep]) if c.key == "deeper_sigmoid_worse")
    assert claim.verdict == HOLDS and "1 seed, 1000 test images" in claim.measured
    close = [run("sigmoid", 2, 0, 1.0, 0.12, images=100), run("sigmoid", 8, 0, 1.0, 0.1, images=100)]
    assert next(c for c in evaluate_claims(close) if c.key == "deeper_sigmoid_worse").verdict == CANNOT_TELL
    unknown = [run("sigmoid", 2, 0, 1.0, 0.38), run("sigmoid", 8, 0, 1.0, 0.1)]  # no test-set size logged
    assert next(c for c in evaluate_claims(unknown) if c.key == "deeper_sigmoid_worse").verdict == CANNOT_TELL


@pytest.mark.parametrize(
    ("accs", "expected"), [((0.99,), HOLDS), ((0.3,), FAILS), ((0.52, 0.6, 0.58), CANNOT_TELL)]
)
def test_deep_tanh_and_relu_nets_train_when_half_way_from_chance_to_perfect(accs, expected):
    runs = [run("relu", 8, s, 0.03, a, images=1000, chance=0.1) for s, a in enumerate(accs)]
    claim = next(c for c in evaluate_claims(runs) if c.key == "deep_relu_trains")
    assert claim.verdict == expected and "0.55" in claim.rule
    assert not [c for c in evaluate_claims([run("relu", 2, 0, 0.03, 0.9, chance=0.1)]) if "trains" in c.key]


def test_a_diverged_run_is_named_with_its_step_lr_and_whether_smaller_lrs_trained():
    runs = [run("relu", 8, 0, 0.3, 0.1, outcome="diverged"), run("relu", 8, 0, 0.03, 0.99)]
    runs += [run("tanh", 8, 0, 0.3, 0.1, outcome="diverged")]
    notes = instability_notes(runs, tune(runs, LR))
    assert "relu-d8-s0_lr=0.3: 1 of 1 run(s) at lr 0.3 diverged (non-finite loss at step 37)" in notes[0]
    assert "trained at smaller learning rates: 0.03 (best val acc 0.990 (1 seed))" in notes[0]
    assert "compared at lr 0.03" in notes[0]
    assert "no smaller learning rate was tried" in notes[1] and "not that the activation cannot" in notes[1]
    deep = [run("relu", 8, s, 0.1, 0.9, chance=0.1) for s in range(2)]
    deep += [run("relu", 8, 2, 0.1, 0.1, outcome="diverged", chance=0.1)]
    claim = next(c for c in evaluate_claims(deep) if c.key == "deep_relu_trains")
    assert "1 of 3 diverged (lr 0.1), left out: see Notes" in claim.measured
    assert "test/acc" not in deep[2].missing() and "val/acc" not in deep[2].missing()  # never tested
    assert len(instability_notes(deep + [run("relu", 8, 3, 0.1, 0.1, outcome="diverged")], None)) == 1


def test_the_chance_level_comes_from_any_tested_run_of_the_group():
    """A diverged run is never tested, so it has no chance level: the claim must not hinge on it coming
    first."""
    runs = [run("relu", 8, 0, 0.1, 0.1, outcome="diverged")]  # no test/chance_acc, as a real diverged run
    runs += [run("relu", 8, s, 0.1, 0.95, images=1000, chance=0.1) for s in (1, 2)]
    claim = next(c for c in evaluate_claims(runs) if c.key == "deep_relu_trains")
    assert claim.verdict == HOLDS and "1 of 3 diverged" in claim.measured


def test_a_key_that_changes_nothing_trained_is_never_a_setting():
    """resume=false on a re-run (and any tracking.* or trainer.progress override) varies between runs but
    is not a factor: the runs table and every setting leave it out."""
    from actstudy.report.tables import setting_columns

    runs = [run("relu", 2, seed, 0.1, 0.8) for seed in (0, 1)]
    for r, resume in zip(runs, ("auto", "false"), strict=True):
        r.params |= {"resume": resume, "trainer.progress": resume, "model.width": str(8 + len(resume))}
        r.tags["actstudy.overrides"] = (
            f"seed={r.params['seed']},resume={resume},trainer.progress={resume},model.width=1"
        )
    keys = [k for k, _ in setting_columns(runs)]
    assert "resume" not in keys and "trainer.progress" not in keys
    assert "model.width" in keys  # an override that changes what is trained still is
    assert [k for k, _ in setting_factors(runs)] == [k for k in keys if k != "seed"]
