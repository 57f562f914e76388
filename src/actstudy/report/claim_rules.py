"""What a claim's verdict is made of: the verdicts on an interval, and the per-run measures claims read.

- a threshold (a number against a bound) holds when the whole 95 % interval is on the claimed side, does
  not hold when it is wholly on the other side, and cannot tell when it straddles the bound; with one seed
  the single value decides, and the report says "1 seed";
- a comparison (one setting above another) holds or does not hold only when the two intervals separate.
  Over seeds that needs two or more per setting; an accuracy of one seed has the Wilson interval of its
  test set instead, which covers the finite test set but not seed-to-seed variation; other one-seed
  measures cannot rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actstudy import metric_names as mn
from actstudy import outcomes
from actstudy.config.schema import schema_key
from actstudy.report import measures
from actstudy.report.collect import REGION_PARAMS, RunData
from actstudy.report.stats import Interval, clipped, interval, wilson

HOLDS, FAILS, CANNOT_TELL = "holds", "does not hold", "cannot tell"

# The params claims read: the schema's keys (a renamed field fails here, at import), named once here.
BATCH_NORM, INIT, INIT_SCALE, MODEL, WIDTH, LR, BATCH_SIZE, OPTIMIZER, MOMENTUM = map(schema_key, (
    "model.batch_norm", "model.init", "model.init_scale", "model.name", "model.width", "optimizer.lr",
    "data.batch_size", "optimizer.name", "optimizer.momentum",
))  # fmt: skip
DEAD_REGION = REGION_PARAMS[mn.ACT_DEAD]  # "None" without a dead region, else a node (the ReLU family)

Measure = Callable[[RunData], float | None]


@dataclass(frozen=True)
class Claim:
    """One claim tested on one group of runs: what is claimed, what was measured, and the verdict."""

    key: str  # short and stable: the parent run's tag is actstudy.claim.<key>
    claim: str
    setting: str
    literature: str
    measured: str
    verdict: str
    rule: str
    # The picked values of the tuned keys ({key: value}; a comparison: {key: {arm: value}}).
    tuned: dict[str, Any] = field(default_factory=dict)
    statement: int | None = None  # the study note's statement it tests (actstudy.report.claim_registry)


def at_most(value: Interval, bound: float) -> str:
    """Return the verdict of "value <= bound" on an interval."""
    if value.high <= bound:
        return HOLDS
    return FAILS if value.low > bound else CANNOT_TELL


def at_least(value: Interval, bound: float) -> str:
    """Return the verdict of "value >= bound" on an interval."""
    if value.low >= bound:
        return HOLDS
    return FAILS if value.high < bound else CANNOT_TELL


def exceeds(value: Interval, bound: float) -> str:
    """Return the verdict of "value > bound" on an interval."""
    if value.low > bound:
        return HOLDS
    return FAILS if value.high <= bound else CANNOT_TELL


def within(value: Interval, low: float, high: float) -> str:
    """Return the verdict of "low <= value <= high" on an interval."""
    if low <= value.low and value.high <= high:
        return HOLDS
    return FAILS if value.high < low or value.low > high else CANNOT_TELL


def above(better: Interval, worse: Interval) -> str:
    """Return the verdict of "better > worse": intervals must separate, so both need a spread."""
    if not (better.can_rank and worse.can_rank):
        return CANNOT_TELL
    if better.low > worse.high:
        return HOLDS
    return FAILS if better.high < worse.low else CANNOT_TELL


def plain(run: RunData) -> bool:
    """Return whether the run's net has no batch norm (a missing param counts as plain)."""
    return run.value(BATCH_NORM, False) is False


def auto_init(run: RunData) -> bool:
    """Return whether the run used the init its activation names (`model.init=auto`) at its own scale."""
    return run.value(INIT) == "auto" and run.value(INIT_SCALE, 1.0) == 1.0


def relu_family(run: RunData) -> bool:
    """Return whether the run's activation has a dead region (ReLU and its kin): its params then hold the
    region's own keys (`activation.dead.max_output`), else `activation.dead` is "None"."""
    return any(key.startswith(DEAD_REGION + ".") for key in run.params)


def layer_mean(family: str, at_end: bool) -> Measure:
    """Return the measure "mean over the hidden layers of `family`" at step 0 or @end."""
    return lambda run: measures.layer_mean(run, family, at_end)


def first_to_last(family: str, at_end: bool) -> Measure:
    """Return the measure "`family` of the first hidden layer / that of the last"."""
    return lambda run: measures.family_first_to_last(run, family, at_end)


def gradient_decay(at_end: bool) -> Measure:
    """Return the measure "per-layer factor of the weight gradients' RMS" at step 0 or @end."""
    return lambda run: measures.gradient_decay(run, at_end)


def over_seeds(runs: list[RunData], measure: Measure, log: bool = False) -> Interval | None:
    """Return the 95 % t-interval of `measure` over `runs` (their seeds), None if none has it."""
    return interval((v for r in runs if (v := measure(r)) is not None), log=log)


def accuracy_measure(runs: list[RunData]) -> tuple[Measure, str]:
    """Return the test accuracy every one of `runs` has (the best-validation checkpoint's, else the final
    weights'), and its name."""
    if all(measures.test_acc_at_best_val(r) is not None for r in runs if r.plottable):
        return measures.test_acc_at_best_val, "test accuracy of the best-validation checkpoint"
    return measures.test_acc, "test accuracy of the final weights"


def accuracy_interval(runs: list[RunData], measure: Measure) -> Interval | None:
    """Return the interval of an accuracy over `runs`: over seeds when there are two or more; for one run,
    the Wilson interval of its test set (where it logged how many images that is)."""
    measured = [(r, v) for r in runs if (v := measure(r)) is not None and math.isfinite(v)]
    images = measured[0][0].last(mn.TEST_EXAMPLES) if len(measured) == 1 else None
    if images:
        return wilson(measured[0][1], int(images))
    return clipped(interval(v for _, v in measured))


def diverged_text(runs: list[RunData]) -> str:
    """Return "; 1 of 3 diverged (lr 0.1), left out: see Notes" for the diverged among `runs`, else ""."""
    diverged = [r for r in runs if r.outcome == outcomes.DIVERGED]
    if not diverged:
        return ""
    lrs = ", ".join(sorted({r.params.get(LR, "?") for r in diverged}))
    return f"; {len(diverged)} of {len(runs)} diverged (lr {lrs}), left out: see Notes"


def g3(value: float) -> str:
    """Return a number with 3 significant digits."""
    return f"{value:.3g}"
