"""The classic claims, each tested against the sweep's own numbers: holds, does not hold, or cannot tell.

Which claims exist, what each measures and its rule: `actstudy.report.claim_registry` (one entry each);
what a verdict is made of: `actstudy.report.claim_rules`. Here: grouping the runs and applying every entry
where the sweep's factors can test it. Runs are grouped by every factor the sweep varies except the seed
(and the tuned keys); a group's number is the mean over its seeds with a 95 % t-interval (n shown). Where
the sweep tunes keys (`actstudy.report.tuning`), each setting is tested at its picked value's runs, and the
row carries the picked values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from actstudy import outcomes
from actstudy.report import claim_registry as registry
from actstudy.report.claim_rules import (  # noqa: F401  (the names tests and callers use)
    BATCH_SIZE,
    CANNOT_TELL,
    FAILS,
    HOLDS,
    WIDTH,
    Claim,
    above,
    accuracy_interval,
    diverged_text,
    exceeds,
    g3,
    over_seeds,
)
from actstudy.report.collect import RunData
from actstudy.report.render import Table
from actstudy.report.stats import END_POINTS, Interval
from actstudy.report.tables import number
from actstudy.report.tuning import Tuning, setting_factors

if TYPE_CHECKING:  # imports torch: the report loads it only where the benchmark runs
    from actstudy.report.step_cost import StepCost

Groups = dict[tuple[str, ...], list[RunData]]


def groups(runs: list[RunData], tuned: tuple[str, ...] = ()) -> tuple[list[tuple[str, str]], Groups]:
    """Return the factors (param key, label) that vary but the seed and the `tuned` keys, and the runs
    grouped by them (failed runs left out; diverged ones kept for step 0, left out of "@end" and accuracy
    by their missing data)."""
    factors = setting_factors(runs, tuned)
    out: Groups = {}
    for run in runs:
        if run.outcome != outcomes.FAILED:  # a diverged run's step 0 is as good as any
            out.setdefault(tuple(run.params.get(k, "?") for k, _ in factors), []).append(run)
    return factors, out


def setting_text(values: tuple[str, ...], factors: list[tuple[str, str]]) -> str:
    """Return a group's setting as "activation=sigmoid, depth=8"."""
    return ", ".join(f"{label}={value}" for value, (_, label) in zip(values, factors, strict=True))


def evaluate_claims(
    runs: list[RunData], tuning: Tuning | None = None, step_cost: StepCost | None = None
) -> list[Claim]:
    """Return every claim the sweep's runs can test, one row per claim and group of runs (or run); with
    `tuning`, each setting's picked runs only, each row carrying its picked values; with `step_cost` (an
    `actstudy.step_cost.StepCost`), the step-cost claim too."""
    used = tuning.runs(runs) if tuning else runs
    factors, by_setting = groups(used, tuning.keys if tuning else ())
    rows: list[Claim] = []
    for values, members in by_setting.items():
        setting, picked = setting_text(values, factors), tuning.picked_values(members[0]) if tuning else {}
        if tuning and picked:  # picked is {} without tuning
            setting += f" (tuned: {tuning.text(picked)})"
        for entry in registry.GROUP_CLAIMS:
            if entry.applies(members[0]) and (tested := entry.test(members)) is not None:
                rows.append(Claim(
                    entry.key, entry.claim, setting, entry.literature, tested.measured, tested.verdict,
                    tested.rule or entry.rule, picked, entry.statement,
                ))  # fmt: skip
    rows += _comparisons(by_setting, factors, tuning)
    for key, statement, claim, literature, rule, test in registry.RUN_CLAIMS:
        for run in runs:
            if (tested := test(run)) is not None:
                rows.append(Claim(key, claim, run.name, literature, tested.measured, tested.verdict, rule,
                                  statement=statement))  # fmt: skip
    if step_cost is not None:
        rows.append(_step_cost_claim(step_cost))
    return rows


def step_cost_setting(runs: list[RunData]) -> dict[str, int] | None:
    """Return the CNN the step-cost benchmark times for this sweep (its deepest depth, its width and batch
    size), None when the claim does not apply (the sweep lacks ReLU or sigmoid runs)."""
    if not {"relu", "sigmoid"} <= {r.activation for r in runs}:
        return None
    deepest = max(runs, key=lambda r: r.depth or 0)
    values = {"depth": deepest.depth, "width": deepest.value(WIDTH), "batch": deepest.value(BATCH_SIZE)}
    defaults = {"depth": 8, "width": 32, "batch": 32}  # runs that lack the param: the quick start's net
    return {k: int(v) if v else defaults[k] for k, v in values.items()}


def _step_cost_claim(cost: StepCost) -> Claim:
    key, statement, claim, literature, rule = registry.STEP_COST
    ratio = cost.ratios["sigmoid"]
    return Claim(
        key, claim, cost.device, literature, cost.text(), exceeds(ratio, 1.0), rule, statement=statement
    )


def _comparisons(by_setting: Groups, factors: list[tuple[str, str]], tuning: Tuning | None) -> list[Claim]:
    keys = [k for k, _ in factors]
    rows = []
    for entry in registry.COMPARISONS:
        if entry.factor not in keys:
            continue
        index = keys.index(entry.factor)
        rest_factors = factors[:index] + factors[index + 1 :]
        arms_by_rest: dict[tuple[str, ...], dict[str, list[RunData]]] = {}
        for values, members in by_setting.items():
            if entry.applies(members[0]):
                rest = values[:index] + values[index + 1 :]
                arms_by_rest.setdefault(rest, {})[values[index]] = members
        for rest, arms in arms_by_rest.items():
            ordered = _arms(entry, arms)
            if ordered is None:
                continue
            higher, lower = ordered
            measure, what = entry.measure([r for arm in ordered for r in arms[arm]])
            ended = {arm: [r for r in arms[arm] if r.plottable] for arm in ordered}  # not diverged
            value = {arm: _arm_value(entry, ended[arm], measure) for arm in ordered}
            a, b = value[higher], value[lower]
            verdict = above(a, b) if a is not None and b is not None else CANNOT_TELL
            shown = sorted(ordered, key=lambda arm: n if (n := number(arm)) is not None else 0.0)
            picked = {arm: tuning.picked_values(arms[arm][0]) for arm in shown} if tuning else {}
            parts = "; ".join(
                f"{entry.factor}={arm}{_tuned_text(tuning, picked.get(arm))} {_text(value[arm])}"
                f"{diverged_text(arms[arm])}"
                for arm in shown
            )
            tuned = (
                {k: {arm: picked[arm].get(k) for arm in shown} for k in tuning.keys}
                if tuning and picked
                else {}
            )
            rule = (
                f"{registry.SEPARATE} ({entry.factor}={higher} above {entry.factor}={lower}; over seeds: 2+ "
            )
            rule += "per setting" + (
                "; one seed's accuracy: its test set's Wilson interval)" if entry.accuracy else ")"
            )
            rows.append(Claim(
                entry.key, entry.claim, setting_text(rest, rest_factors) or "all runs", entry.literature,
                f"{what}: {parts}", verdict, rule, tuned, entry.statement,
            ))  # fmt: skip
    return rows


def _arm_value(entry: registry.Comparison, runs: list[RunData], measure: Any) -> Interval | None:
    """Return one arm's number: its test accuracy's interval, or the measure's over its seeds."""
    return accuracy_interval(runs, measure) if entry.accuracy else over_seeds(runs, measure)


def _arms(entry: registry.Comparison, arms: dict[str, list[RunData]]) -> tuple[str, str] | None:
    """Return the (higher, lower) arms a comparison compares among `arms`, None if it has not both."""
    if entry.arms is not None:
        return entry.arms if all(a in arms for a in entry.arms) else None
    by_number = cast(Callable[[str], float], number)  # a float for every arm kept: those that are numbers
    numeric = sorted((arm for arm in arms if number(arm) is not None), key=by_number)  # a missing param ("?")
    if len(numeric) < 2:  # is no arm
        return None
    return (numeric[-1], numeric[0]) if entry.larger_is_higher else (numeric[0], numeric[-1])


def _tuned_text(tuning: Tuning | None, picked: dict[str, Any] | None) -> str:
    return f" ({tuning.text(picked)})" if tuning and picked else ""


def _text(value: Interval | None) -> str:
    return value.text(g3) if value is not None else "—"


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


STATEMENTS_LEGEND = (
    "The fourteen statements of the study note this harness reproduces (Nielsen ch. 5 and the activation "
    "functions' usual account), each with the verdicts of the claims above that test it, or what a sweep "
    "needs to test it."
)


def claims_table(claims: list[Claim]) -> Table:
    """Return the claims as the report's table: claim, verdict, setting, measured, literature, rule (the
    verdict beside its claim, long texts wrapped: readable at 1280 px without scrolling sideways)."""
    rows = [[c.claim, c.verdict, c.setting, c.measured, c.literature, c.rule] for c in claims]
    columns = ["claim", "verdict", "setting", "measured", "literature", "rule"]
    return Table(columns, rows, [False] * 6, prose=True)


def statements_table(claims: list[Claim]) -> Table:
    """Return the study note's statements, each with its claims' verdicts, or, where no claim could test
    it in this sweep, what the sweep would need."""
    rows = []
    for s in registry.STATEMENTS:
        found = [c for c in claims if c.statement == s.number]
        if found:
            tags = verdict_tags(found)
            tested = "; ".join(f"{key}: {verdict}" for key, verdict in tags.items())
        else:
            tested = f"not tested here: needs {s.needs}"
        rows.append([str(s.number), s.text, tested])
    return Table(
        ["#", "statement of the study note", "verdicts in this sweep"], rows, [True, False, False], prose=True
    )
