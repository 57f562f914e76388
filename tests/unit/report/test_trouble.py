"""A collapsing run and a largely dead layer are flagged in the report's notes, with what the claims read."""

from __future__ import annotations

from actstudy.report.collect import RunData
from actstudy.report.trouble import trouble_notes


def run(name: str, metrics: dict) -> RunData:
    return RunData(name=name, params={}, tags={}, outcome="completed", wall_time_s=1.0, metrics=metrics)


def test_a_collapse_and_a_dead_layer_are_named_with_what_the_claims_read():
    collapsed = run("relu-d8-s0", {
        "val/acc": [(100, 0.5), (200, 0.731), (300, 0.366)],
        "test_best/acc": [(300, 0.729)],
        "act/dead/l01": [(300, 0.02)], "act/dead/l05": [(300, 0.46)],
    })  # fmt: skip
    steady = run(
        "tanh-d8-s0", {"val/acc": [(100, 0.9), (200, 0.95), (300, 0.94)], "act/dead/l01": [(300, 0.1)]}
    )
    assert trouble_notes([collapsed, steady]) == [
        "relu-d8-s0: validation accuracy collapsed from 0.731 (step 200) to 0.366 at the end; the claims on "
        "test accuracy read its best-validation checkpoint (0.729), not the collapsed end.",
        "relu-d8-s0: 46% of layer 5's units are dead at the end (act/dead/l05): they pass no gradient, and "
        "they count in dead_relu_grows_with_lr and in the gradient ratios of its setting.",
    ]
