"""Instability flagged where it happens: a run whose validation accuracy collapses, a layer whose units
died. Each note names the run, the step or layer, and what the claims read of it, so that a verdict is
never taken for a property of the activation when one run went wrong."""

from __future__ import annotations

from actstudy import metric_names as mn
from actstudy.report.collect import RunData

COLLAPSE = 0.2  # validation accuracy this far below the run's best at the end: it collapsed
DEAD_SHARE = 0.3  # a layer with at least this share of dead units at the end


def trouble_notes(runs: list[RunData]) -> list[str]:
    """Return one note per run whose validation accuracy collapsed, and per run with a largely dead layer."""
    notes = []
    for run in runs:
        val = run.series(mn.VAL_ACC)
        if len(val) >= 2:
            step, best = max(val, key=lambda point: point[1])
            end = val[-1][1]
            if best - end >= COLLAPSE:
                at_best = run.last(mn.TEST_BEST_ACC)
                read = (
                    f"the claims on test accuracy read its best-validation checkpoint ({at_best:.3f}), "
                    "not the collapsed end"
                    if at_best is not None
                    else "the claims on test accuracy read the collapsed end (no best-validation checkpoint)"
                )
                notes.append(
                    f"{run.name}: validation accuracy collapsed from {best:.3f} (step {step}) to {end:.3f} "
                    f"at the end; {read}."
                )
        dead = run.by_layer(mn.ACT_DEAD)
        if dead:
            layer, share = max(dead.items(), key=lambda item: item[1])
            if share >= DEAD_SHARE:
                notes.append(
                    f"{run.name}: {share:.0%} of layer {layer}'s units are dead at the end "
                    f"({mn.layer_key(mn.ACT_DEAD, layer)}): they pass no gradient, and they count in "
                    "dead_relu_grows_with_lr and in the gradient ratios of its setting."
                )
    return notes
