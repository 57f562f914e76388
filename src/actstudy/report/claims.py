"""The classic claims, each tested against the sweep's own numbers: holds, does not hold, or cannot tell.

A claim is tested only where the sweep's factors can test it (e.g. batch norm must vary to test that it
rescues deep sigmoid nets). Runs are grouped by every factor the sweep varies except the seed; a group's
number is the mean over its seeds with a 95 % t-interval (n shown). Thresholds are stated below, once,
and printed in the report beside each verdict:

- a threshold claim (a number against a bound) holds when the whole interval is on the claimed side,
  does not hold when it is wholly on the other side, and cannot tell when it straddles the bound; with
  one seed the single value decides, and the report says "1 seed";
- a comparison claim (one setting above another) holds or does not hold only when the two intervals
  separate. Over seeds that needs two or more per setting; an accuracy of one seed has the Wilson
  interval of its test set instead, which covers the finite test set but not seed-to-seed variation
  (the row says which: "n=3" or "1 seed, 1000 test images"); other one-seed measures cannot rank.

Where the sweep tunes keys (`actstudy.report.tuning`), each setting is tested at its picked value's runs,
and the row carries the picked values.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actstudy import metric_names as mn
from actstudy import outcomes
from actstudy.report.collect import RunData
from actstudy.report.render import Table
from actstudy.report.stats import END_POINTS, Interval, clipped, end_value, interval, wilson
from actstudy.report.tables import chance_level, number
from actstudy.report.tuning import Tuning, setting_factors

HOLDS, FAILS, CANNOT_TELL = "holds", "does not hold", "cannot tell"

DECAY_BOUND = 0.5  # sigmoid: a layer gets at most this fraction of the gradient of the layer above it
SPREAD_BOUND = 10.0  # tanh, ReLU under init=auto: largest / smallest layer gradient within an order
NIELSEN_RANGE = (30.0, 300.0)  # Nielsen's "about 100 times" (0.285 / 0.003 = 95), within a factor ~3
TRAINS_SHARE = 0.5  # a net "trains" when its accuracy is at least half way from chance to perfect
DEEP = 4  # the depth from which a net counts as deep for the claim that deep tanh / ReLU nets train


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


def layer_values(run: RunData, family: str, at_end: bool) -> list[float]:
    """Return a per-layer family's values from the input side, at step 0 or "@end"; [] if incomplete."""
    values = []
    for layer in range(1, (run.depth or 0) + 1):
        key = mn.layer_key(family, layer)
        value = end_value(run, key) if at_end else run.at_step(key, 0)
        if value is None or not value > 0:
            return []
        values.append(value)
    return values


def decay_factor(values: list[float]) -> float | None:
    """Return the per-layer factor by which `values` (from the input side) shrink towards the input.

    A least-squares line through log(value) against the layer number; the factor is exp(-slope): 0.25
    means each layer nearer the input has a quarter of the gradient of the one above it.
    """
    if len(values) < 2:
        return None
    xs = range(1, len(values) + 1)
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(math.log(v) for v in values)
    slope = sum((x - x_mean) * (math.log(v) - y_mean) for x, v in zip(xs, values, strict=True)) / sum(
        (x - x_mean) ** 2 for x in xs
    )
    return math.exp(-slope)


def groups(
    runs: list[RunData], tuned: tuple[str, ...] = ()
) -> tuple[list[tuple[str, str]], dict[tuple[str, ...], list[RunData]]]:
    """Return the factors (param key, label) that vary but the seed and the `tuned` keys, and the runs
    grouped by them (failed runs left out; diverged ones kept for step 0, left out of "@end" and accuracy
    by their missing data)."""
    factors = setting_factors(runs, tuned)
    out: dict[tuple[str, ...], list[RunData]] = {}
    for run in runs:
        if run.outcome != outcomes.FAILED:  # a diverged run's step 0 is as good as any
            out.setdefault(tuple(run.params.get(k, "?") for k, _ in factors), []).append(run)
    return factors, out


def setting_text(values: tuple[str, ...], factors: list[tuple[str, str]]) -> str:
    """Return a group's setting as "activation=sigmoid, depth=8"."""
    return ", ".join(f"{label}={value}" for value, (_, label) in zip(values, factors, strict=True))


def evaluate_claims(runs: list[RunData], tuning: Tuning | None = None) -> list[Claim]:
    """Return every claim the sweep's runs can test, one row per claim and group of runs; with `tuning`,
    each setting's picked runs only, each row carrying its picked values."""
    used = tuning.runs(runs) if tuning else runs
    factors, by_setting = groups(used, tuning.keys if tuning else ())
    rows: list[Claim] = []
    for values, members in by_setting.items():
        setting, picked = setting_text(values, factors), tuning.picked_values(members[0]) if tuning else {}
        if picked:
            setting += f" (tuned: {tuning.text(picked)})"
        rows += [dataclasses.replace(c, tuned=picked) for c in _per_group(members, setting)]
    return rows + _comparisons(by_setting, factors, tuning)


def _per_group(members: list[RunData], setting: str) -> list[Claim]:
    first = members[0]
    rows = []
    plain = first.params.get("model.batch_norm", "False") == "False"
    if first.activation == "sigmoid" and (first.depth or 0) >= 3 and plain:
        for at_end, when in ((False, "step 0"), (True, "@end")):
            used = [r for r in members if r.plottable or not at_end]
            factors = [decay_factor(layer_values(r, mn.GRAD_WEIGHT_RMS, at_end)) for r in used]
            value = interval(factors, log=True)
            if value is not None:
                rows.append(Claim(
                    f"sigmoid_decay_{'end' if at_end else 'step0'}",
                    f"sigmoid gradients shrink layer by layer towards the input ({when})", setting,
                    "σ' <= 1/4: a factor of about 1/4 per layer (Nielsen ch. 5)",
                    f"factor per layer {value.text(_g)}", at_most(value, DECAY_BOUND),
                    f"holds if the factor is <= {DECAY_BOUND}",
                ))  # fmt: skip
    auto = first.params.get("model.init") == "auto"
    if first.activation in ("tanh", "relu") and auto and plain and (first.depth or 0) >= 2:
        spreads = []
        for r in members:
            values = layer_values(r, mn.GRAD_WEIGHT_RMS, at_end=False)
            spreads.append(max(values) / min(values) if values else None)
        value = interval(spreads, log=True)
        if value is not None:
            rows.append(Claim(
                f"{first.activation}_within_10x",
                f"{first.activation} gradients stay within one order of magnitude across layers (step 0)",
                setting, "no shrinking factor per layer with an init fitted to the activation (He 2015)",
                f"largest / smallest layer {value.text(_g)}", at_most(value, SPREAD_BOUND),
                f"holds if the ratio is <= {SPREAD_BOUND:g}",
            ))  # fmt: skip
    if first.activation in ("tanh", "relu") and auto and plain and (first.depth or 0) >= DEEP:
        rows += _trains(members, setting)
    nielsen = first.params.get("model.name") == "mlp" and first.params.get("model.width") == "30"
    nielsen = nielsen and first.params.get("model.init") == "nielsen" and plain  # the book's net
    if first.activation == "sigmoid" and first.depth == 4 and nielsen:
        ratios = []
        for r in members:
            values = layer_values(r, mn.GRAD_BIAS_L2, at_end=False)
            ratios.append(values[3] / values[0] if values else None)
        value = interval(ratios, log=True)
        if value is not None:
            low, high = NIELSEN_RANGE
            rows.append(Claim(
                "nielsen_ratio",
                "the 4th hidden layer learns about 100 times faster than the 1st (step 0)", setting,
                "||δ⁴|| / ||δ¹|| = 0.285 / 0.003 ≈ 95 (Nielsen ch. 5)", f"||δ⁴|| / ||δ¹|| {value.text(_g)}",
                within(value, low, high), f"holds if the ratio is within [{low:g}, {high:g}]",
            ))  # fmt: skip
    return rows


def _trains(members: list[RunData], setting: str) -> list[Claim]:
    """The claim that a deep tanh or ReLU net trains: its accuracy half way from chance to perfect."""
    chance = chance_level(members)
    if chance is None:  # runs recorded before the chance level was logged, or none tested
        return []
    bound = chance + TRAINS_SHARE * (1 - chance)
    measure, what = accuracy_measure(members)
    value = accuracy_interval([r for r in members if r.plottable], measure)
    left_out = _diverged_text(members)
    if value is None:
        measured, verdict = f"{what}: none{left_out}", CANNOT_TELL
    else:
        measured, verdict = f"{what} {value.text(_g)}{left_out}", at_least(value, bound)
    activation = members[0].activation
    return [Claim(
        f"deep_{activation}_trains", f"deep {activation} nets train (well above chance)", setting,
        "ReLU and tanh nets train at depths where sigmoid nets do not (Glorot & Bengio 2010; Glorot et al. "
        "2011)", measured, verdict,
        f"holds if the accuracy is >= {bound:.3g}, half way from chance ({chance:.3g}) to 1",
    )]  # fmt: skip


def _diverged_text(runs: list[RunData]) -> str:
    """Return "; 1 of 3 diverged (lr 0.1), left out: see Notes" for the diverged among `runs`, else ""."""
    diverged = [r for r in runs if r.outcome == outcomes.DIVERGED]
    if not diverged:
        return ""
    lrs = ", ".join(sorted({r.params.get("optimizer.lr", "?") for r in diverged}))
    return f"; {len(diverged)} of {len(runs)} diverged (lr {lrs}), left out: see Notes"


# (key, factor, claim, runs of which activation, whether the larger factor value scores higher, source)
_COMPARISONS = (
    ("deeper_sigmoid_worse", "depth", "deeper sigmoid nets reach a lower test accuracy", "sigmoid", False,
     "deep sigmoid nets train badly (Glorot & Bengio 2010)"),
    ("batch_norm_lifts_sigmoid", "model.batch_norm", "batch norm lifts deep sigmoid nets' test accuracy",
     "sigmoid", True, "batch norm rescues deep sigmoid nets (Ioffe & Szegedy 2015)"),
    ("dead_relu_grows_with_lr", "optimizer.lr", "the dead ReLU fraction grows with the learning rate", "relu",
     True, "ReLU units die under large steps (cs231n; Lu et al. 2019)"),
)  # fmt: skip


def _comparisons(
    by_setting: dict[tuple[str, ...], list[RunData]], factors: list[tuple[str, str]], tuning: Tuning | None
) -> list[Claim]:
    keys = [k for k, _ in factors]
    rows = []
    for key, factor, claim, activation, larger_is_higher, literature in _COMPARISONS:
        if factor not in keys:
            continue
        index = keys.index(factor)
        rest_factors = factors[:index] + factors[index + 1 :]
        arms_by_rest: dict[tuple[str, ...], dict[str, list[RunData]]] = {}
        for values, members in by_setting.items():
            plain = members[0].params.get("model.batch_norm", "False") == "False"
            if members[0].activation == activation and (plain or factor == "model.batch_norm"):
                rest = values[:index] + values[index + 1 :]
                arms_by_rest.setdefault(rest, {})[values[index]] = members

        for rest, arms in arms_by_rest.items():
            arms = {value: runs for value, runs in arms.items() if number(value) is not None}
            if len(arms) < 2:  # a missing param ("?") is no arm
                continue
            ordered = sorted(arms, key=number)
            measure, what = _measure(factor, [r for runs in arms.values() for r in runs])
            higher, lower = (ordered[-1], ordered[0]) if larger_is_higher else (ordered[0], ordered[-1])
            ended = {arm: [r for r in runs if r.plottable] for arm, runs in arms.items()}  # not diverged
            one = accuracy_interval if factor != "optimizer.lr" else _seed_interval
            a, b = one(ended[higher], measure), one(ended[lower], measure)
            verdict = above(a, b) if a is not None and b is not None else CANNOT_TELL
            picked = {arm: tuning.picked_values(arms[arm][0]) for arm in ordered} if tuning else {}
            parts = "; ".join(
                f"{factor}={arm}{_tuned_text(tuning, picked.get(arm))} "
                f"{_text(one(ended[arm], measure))}{_diverged_text(arms[arm])}"
                for arm in ordered
            )
            tuned = {k: {arm: picked[arm].get(k) for arm in ordered} for k in tuning.keys} if picked else {}
            setting = setting_text(rest, rest_factors) or "all runs"
            rows.append(Claim(
                key, claim, setting, literature, f"{what}: {parts}", verdict,
                "holds if the 95 % intervals separate (over seeds: 2+ per setting; one seed's accuracy: "
                "its test set's Wilson interval)", tuned,
            ))  # fmt: skip
    return rows


def _tuned_text(tuning: Tuning | None, picked: dict[str, Any] | None) -> str:
    return f" ({tuning.text(picked)})" if tuning and picked else ""


def _measure(factor: str, runs: list[RunData]) -> tuple[Callable[[RunData], float | None], str]:
    """Return what a comparison measures on every run alike: one measure per comparison, never a mix."""
    if factor == "optimizer.lr":
        return _mean_dead, "dead fraction @end"
    return accuracy_measure(runs)


def accuracy_measure(runs: list[RunData]) -> tuple[Callable[[RunData], float | None], str]:
    """Return the test accuracy every one of `runs` has (the best-validation checkpoint's, else the final
    weights'), and its name."""
    if all(r.last(mn.TEST_BEST_ACC) is not None for r in runs if r.plottable):
        return (lambda r: r.last(mn.TEST_BEST_ACC)), "test accuracy of the best-validation checkpoint"
    return (lambda r: r.last(mn.TEST_ACC)), "test accuracy of the final weights"


def accuracy_interval(runs: list[RunData], measure: Callable[[RunData], float | None]) -> Interval | None:
    """Return the interval of an accuracy over `runs`: over seeds when there are two or more; for one run,
    the Wilson interval of its test set (where it logged how many images that is)."""
    measured = [(r, v) for r in runs if (v := measure(r)) is not None and math.isfinite(v)]
    images = measured[0][0].last(mn.TEST_EXAMPLES) if len(measured) == 1 else None
    if images:
        return wilson(measured[0][1], int(images))
    return clipped(interval(v for _, v in measured))


def _seed_interval(runs: list[RunData], measure: Callable[[RunData], float | None]) -> Interval | None:
    return interval(measure(r) for r in runs)


def _text(value: Interval | None) -> str:
    return value.text(_g) if value is not None else "—"


def _mean_dead(run: RunData) -> float | None:
    values = [end_value(run, mn.layer_key(mn.ACT_DEAD, n)) for n in run.layers(mn.ACT_DEAD)]
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _g(value: float) -> str:
    return f"{value:.3g}"


def verdict_tags(claims: list[Claim]) -> dict[str, str]:
    """Return {claim key: verdict} for the parent's tags ("holds 2, cannot tell 1" when settings differ)."""
    found: dict[str, list[str]] = {}
    for c in claims:
        found.setdefault(c.key, []).append(c.verdict)
    tags = {}
    for key, verdicts in found.items():
        counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
        tags[key] = verdicts[0] if len(counts) == 1 else ", ".join(f"{v} {n}" for v, n in counts.items())
    return tags


CLAIMS_LEGEND = (
    "Each claim is tested where the sweep's factors can test it, per setting (every varying factor but the "
    "seed; never pooled), on the mean over seeds with a 95 % t-interval. A bound holds when the whole "
    "interval is on the claimed side, does not hold when it is wholly on the other, and cannot tell when "
    "it straddles the bound (one seed: its value decides). A comparison needs separate intervals: over "
    "seeds, two or more per setting; for one seed's test accuracy, the Wilson interval of its test set, "
    "which covers the finite test set, not seed-to-seed variation (the row says which: n=3, or 1 seed and "
    "its test images). Where the sweep tunes a key, each setting is tested at its picked value (Tuned "
    f"selection). @end = mean of the last {END_POINTS} monitored steps."
)


def claims_table(claims: list[Claim]) -> Table:
    """Return the claims as the report's table: claim, setting, measured, literature, verdict, rule."""
    rows = [[c.claim, c.setting, c.measured, c.literature, c.verdict, c.rule] for c in claims]
    return Table(["claim", "setting", "measured", "literature", "verdict", "rule"], rows, [False] * 6)
