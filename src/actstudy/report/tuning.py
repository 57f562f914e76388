"""Tuned factors: per setting, the value of the tuned keys (e.g. the learning rate) that validation picks.

Glorot & Bengio (2010) chose "for each network the learning rate ... separately ... to minimize error on
the validation set": one step size for every net confounds the activation with the step size. A sweep
names the keys to tune (`report.tune=[optimizer.lr]`, the parent's tag `actstudy.tune`); a setting is
every other factor the sweep varies but the seed. The rule, stated once here and printed in the report:

- a value's score is the mean over its completed seeds of the best validation accuracy;
- a value any of whose runs diverged or failed is untrainable and never picked;
- the value with the highest score is picked; an exact tie goes to the smaller value;
- a setting with no trainable, scored value has no pick, and drops out of claims and summaries.

Only validation accuracy picks: the test accuracies that claims compare are never looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from actstudy import outcomes
from actstudy.report.collect import RunData
from actstudy.report.measures import best_val_acc
from actstudy.report.stats import Interval, clipped, interval
from actstudy.report.tables import (
    MISSING,
    chance_level,
    fmt_acc,
    label_of,
    number,
    setting_columns,
)

RULE = (
    "Picked per setting by the best mean validation accuracy over seeds (of each run's best validation "
    "accuracy); a value any of whose runs diverged or failed is untrainable and never picked; an exact "
    "tie goes to the smaller value. Test accuracy plays no part in the choice."
)


@dataclass
class Candidate:
    """One value (a tuple: one entry per tuned key) of a setting: its runs, score and untrainable runs."""

    values: tuple[str, ...]
    runs: list[RunData]
    score: Interval | None  # best validation accuracy over its completed runs; None: none completed
    untrainable: list[RunData]  # its diverged and failed runs

    @property
    def eligible(self) -> bool:
        """Return whether the value can be picked: scored, and none of its runs diverged or failed."""
        return self.score is not None and not self.untrainable


@dataclass
class Selection:
    """A setting's candidates in value order, the one picked (None: none can be) and why."""

    setting: tuple[str, ...]
    candidates: list[Candidate]
    picked: Candidate | None
    reason: str


@dataclass
class Tuning:
    """The tuned keys, the setting factors (param key, label) and every setting's selection."""

    keys: tuple[str, ...]
    factors: list[tuple[str, str]]
    selections: list[Selection]

    def runs(self, all_runs: list[RunData]) -> list[RunData]:
        """Return the runs of the picked values, in the order of `all_runs`."""
        picked = {id(r) for s in self.selections if s.picked for r in s.picked.runs}
        return [r for r in all_runs if id(r) in picked]

    def picked_values(self, run: RunData) -> dict[str, float | str]:
        """Return {tuned key: value} of the pick of `run`'s setting (numbers as numbers), {} if none."""
        for s in self.selections:
            if s.picked and any(r is run for c in s.candidates for r in c.runs):
                return {k: _value(v) for k, v in zip(self.keys, s.picked.values, strict=True)}
        return {}

    def text(self, values: dict[str, float | str]) -> str:
        """Return picked values as "lr=0.03"."""
        return ", ".join(f"{label_of(k)}={v:g}" if isinstance(v, float) else f"{label_of(k)}={v}"
                         for k, v in values.items())  # fmt: skip


def setting_factors(runs: list[RunData], tuned: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Return the factors (param key, label) that define a setting: every varying one but seed and `tuned`."""
    return [(k, label) for k, label in setting_columns(runs) if k != "seed" and k not in tuned]


def tune(runs: list[RunData], keys: tuple[str, ...]) -> Tuning:
    """Return each setting's selection of the tuned `keys`' values (rule: the module's docstring)."""
    factors = setting_factors(runs, keys)
    by_setting: dict[tuple[str, ...], dict[tuple[str, ...], list[RunData]]] = {}
    for run in runs:
        setting = tuple(run.params.get(k, MISSING) for k, _ in factors)
        values = tuple(run.params.get(k, MISSING) for k in keys)
        by_setting.setdefault(setting, {}).setdefault(values, []).append(run)
    selections = []
    for setting, by_value in by_setting.items():
        candidates = [_candidate(v, by_value[v]) for v in sorted(by_value, key=value_order)]
        selections.append(_select(setting, candidates, keys))
    return Tuning(keys, factors, selections)


def _candidate(values: tuple[str, ...], runs: list[RunData]) -> Candidate:
    done = [best_val_acc(r) for r in runs if r.outcome == outcomes.COMPLETED]
    bad = [r for r in runs if r.outcome in (outcomes.DIVERGED, outcomes.FAILED)]
    return Candidate(values, runs, clipped(interval(v for v in done if v is not None)), bad)


def _score(candidate: Candidate) -> Interval:
    """Return an eligible candidate's score (eligible: scored)."""
    assert candidate.score is not None
    return candidate.score


def _select(setting: tuple[str, ...], candidates: list[Candidate], keys: tuple[str, ...]) -> Selection:
    eligible = [c for c in candidates if c.eligible]
    label = ", ".join(label_of(k) for k in keys)
    if not eligible:
        why = "every value diverged, failed or has no finished run"
        return Selection(setting, candidates, None, f"no {label} can be picked: {why}")
    best = max(eligible, key=lambda c: _score(c).mean)  # max keeps the first (smaller) value of a tie
    reason = f"best mean validation accuracy {_score(best).text(fmt_acc)} of {len(candidates)} value(s)"
    untrainable = [c for c in candidates if c.untrainable]
    if untrainable:
        reason += f"; untrainable (diverged or failed): {', '.join(_values_text(c) for c in untrainable)}"
    chance = chance_level(best.runs)
    if chance is not None and all(_score(c).low <= chance for c in eligible):
        reason += f"; no value trains above chance ({chance:.2g}): the pick is arbitrary"
    if len(candidates) == 1:
        reason += f"; {label} does not vary in this setting"
    elif len(keys) == 1 and best in (candidates[0], candidates[-1]) and number(best.values[0]) is not None:
        reason += "; at the edge of the values tried: a wider grid may do better"
    return Selection(setting, candidates, best, reason)


def value_order(values: tuple[str, ...]) -> tuple:
    """Return a sort key of a candidate's values: numbers in numeric order, then other strings."""
    return tuple((0, number(v), "") if number(v) is not None else (1, 0.0, v) for v in values)


def _value(text: str) -> float | str:
    value = number(text)
    return value if value is not None and text not in ("True", "False") else text


def _values_text(c: Candidate) -> str:
    return "/".join(c.values)


def instability_notes(runs: list[RunData], tuned: Tuning | None) -> list[str]:
    """Return one note per setting and learning rate with diverged runs: which runs, at which steps, and
    whether smaller learning rates of the same setting trained, so that a diverged run never reads as "the
    activation failed" alone."""
    lr_key = "optimizer.lr"
    factors = setting_factors(runs, (lr_key,))
    setting_of = lambda r: tuple(r.params.get(k, MISSING) for k, _ in factors)  # noqa: E731
    diverged: dict[tuple[tuple[str, ...], str], list[RunData]] = {}
    for run in runs:
        if run.outcome == outcomes.DIVERGED:
            diverged.setdefault((setting_of(run), run.params.get(lr_key, MISSING)), []).append(run)
    notes = []
    for (setting, lr_text), bad in diverged.items():
        same = [r for r in runs if setting_of(r) == setting and r.params.get(lr_key, MISSING) == lr_text]
        steps = ", ".join(sorted({r.tags.get(outcomes.DIVERGED_STEP, "?") for r in bad}, key=_step_order))
        text = f"{', '.join(r.name for r in bad)}: {len(bad)} of {len(same)} run(s) at lr {lr_text} diverged"
        text += f" (non-finite loss at step {steps})"
        smaller = [r for r in runs if setting_of(r) == setting and _below(r.params.get(lr_key, MISSING),
                                                                          number(lr_text))]  # fmt: skip
        by_number = cast(Callable[[str], float], number)  # the learning rates in `smaller` are numbers
        trained = sorted(
            {r.params[lr_key] for r in smaller if r.outcome == outcomes.COMPLETED}, key=by_number
        )
        if trained:
            accs = ", ".join(f"{v} ({_best_text(smaller, lr_key, v)})" for v in trained)
            text += f"; the same setting trained at smaller learning rates: {accs}"
        elif smaller:
            text += "; no smaller learning rate of the same setting trained either"
        else:
            text += (
                "; no smaller learning rate was tried for this setting, so this says the step was too "
                "large for this net, not that the activation cannot train it (tune it: report.tune="
                "[optimizer.lr] over several optimizer.lr values, e.g. experiment=fair_comparison)"
            )
        if tuned is not None and lr_key in tuned.keys:
            picked = tuned.picked_values(bad[0]).get(lr_key)
            text += f"; its setting is compared at lr {picked:g}" if isinstance(picked, float) else ""
        notes.append(text + ".")
    return notes


def _step_order(step: str) -> tuple[int, str]:
    return (int(step), "") if step.isdigit() else (1 << 62, step)


def _below(text: str, bound: float | None) -> bool:
    value = number(text)
    return value is not None and bound is not None and value < bound


def _best_text(runs: list[RunData], key: str, value: str) -> str:
    done = [r for r in runs if r.params.get(key) == value and r.outcome == outcomes.COMPLETED]
    scores = clipped(interval(best_val_acc(r) for r in done))
    return f"best val acc {scores.text(fmt_acc)}" if scores else "no val acc"
