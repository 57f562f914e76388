"""The report's tables: one row per child run, and mean ± std over seeds when a setting has several."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

from actstudy import outcomes
from actstudy.config.identity import is_identity_key
from actstudy.config.schema import schema_key
from actstudy.metric_names import (
    ACT_DEAD,
    ACT_SATURATED,
    GRAD_FIRST_TO_LAST,
    TEST_CHANCE_ACC,
)
from actstudy.report import measures
from actstudy.report.collect import RunData, SweepData
from actstudy.report.render import Code, Em, Table, Text
from actstudy.report.stats import END_POINTS, clipped, interval

#: Settings shown when they vary across the sweep, as (param key, column label).
#: Activation and depth always show.
SETTING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("model.name", "model"),
    ("model.init", "init"),
    ("model.batch_norm", "batch_norm"),
    ("model.width", "width"),
    ("optimizer.name", "optimizer"),
    ("optimizer.lr", "lr"),
    ("data.name", "data"),
    ("trainer.max_epochs", "epochs"),
    ("seed", "seed"),
)
ALWAYS_COLUMNS: tuple[tuple[str, str], ...] = (("activation.name", "activation"), ("depth", "depth"))
NUMERIC_SETTINGS = tuple(map(schema_key, ("depth", "seed", "optimizer.lr", "model.width")))  # right-aligned

_OVERRIDE_KEY_RE = re.compile(r"([A-Za-z_][\w.]*)=")
MISSING = "—"

RUNS_LEGEND: Text = (
    [Em("first/last grad"), " = ", Code(GRAD_FIRST_TO_LAST), " (weight-gradient RMS of layer 1 ÷ last "]
    + ["layer; ≪ 1 means vanishing) at step 0 and @end; ", Em("‖δ¹‖/‖δᴸ‖"), " = Nielsen's "]
    + ["speed-of-learning ratio, bias-gradient norm of layer 1 ÷ last at step 0; ", Em("saturated"), ", "]
    + [Em("dead"), " = mean over layers of ", Code(ACT_SATURATED), ", ", Code(ACT_DEAD), " @end. @end = "]
    + [f"mean of the last {END_POINTS} monitored steps, not one mini-batch. ", Em("test acc @best val")]
    + [" = test accuracy of the checkpoint with the best validation accuracy; ", Em("test acc"), " = the "]
    + ["final weights'."]
)
AGGREGATE_LEGEND: list[str] = [
    "mean [95 % t-interval] over the seeds used (",
    Em("n"),
    "; failed and diverged runs left out, ",
    Em("runs"),
] + [" counts all); gradient ratios on a log scale (geometric mean and interval). Settings rank only where"]
AGGREGATE_LEGEND += [" their intervals separate."]


def setting_columns(runs: list[RunData]) -> list[tuple[str, str]]:
    """Return the (param key, label) setting columns to show: activation, depth, then those that vary.

    Known settings (``SETTING_COLUMNS``) show when their value differs between runs; any other param that
    varies and was set on the command line (``actstudy.overrides`` tag) shows too, e.g. ``model.width``.
    Keys that cannot change what is trained (`identity.NOT_IDENTITY`: `resume`, `tracking.*`, ...) are
    never settings, whatever their values.
    """

    def varies(key: str) -> bool:
        return is_identity_key(key) and len({r.params.get(key, MISSING) for r in runs}) > 1

    cols = list(ALWAYS_COLUMNS) + [(key, label) for key, label in SETTING_COLUMNS if varies(key)]
    shown = {key for key, _ in cols}
    overrides = {k for r in runs for k in _OVERRIDE_KEY_RE.findall(r.tags.get(outcomes.OVERRIDES, ""))}
    extra = {k for r in runs for k in r.params if k in overrides and k not in shown and varies(k)}
    return cols + [(key, key) for key in sorted(extra)]


def label_of(key: str) -> str:
    """Return a param's column label ("optimizer.lr" -> "lr"), the key itself for unlisted ones."""
    return dict(ALWAYS_COLUMNS + SETTING_COLUMNS).get(key, key)


def number(text: str) -> float | None:
    """Return a param's value as a number for ordering (False < True), None if it is none."""
    if text in ("True", "False"):
        return float(text == "True")
    try:
        return float(text)
    except ValueError:
        return None


def fmt_acc(value: float | None) -> str:
    """Return an accuracy in [0, 1] as ``0.873``, or an em dash for None."""
    return MISSING if value is None else f"{value:.3f}"


def fmt_ratio(value: float | None) -> str:
    """Return a ratio spanning decades in scientific notation (``3.2e-04``), or an em dash for None."""
    return MISSING if value is None else f"{value:.2g}" if 0.01 <= abs(value) < 100 else f"{value:.1e}"


def fmt_fraction(value: float | None) -> str:
    """Return a fraction as a percentage with one decimal (``12.5%``), or an em dash for None."""
    return MISSING if value is None else f"{100 * value:.1f}%"


def fmt_duration(seconds: float | None) -> str:
    """Return a wall time as ``42.0 s``, ``3m 05s`` or ``1h 02m``, or an em dash for None."""
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def chance_level(runs: list[RunData]) -> float | None:
    """Return the accuracy of a uniform guess (1 / classes) from the first of `runs` that was tested and
    logged it (diverged runs never are), or None."""
    return next((c for r in runs if (c := r.last(TEST_CHANCE_ACC)) is not None), None)


Format = Callable[[float | None], str]

#: The metric columns of both tables: (label, a run's value or None, format of one value).
METRICS: tuple[tuple[str, Callable[[RunData], float | None], Format], ...] = (
    ("test acc", measures.test_acc, fmt_acc),
    ("test acc @best val", measures.test_acc_at_best_val, fmt_acc),
    ("best val acc", measures.best_val_acc, fmt_acc),
    ("first/last grad @0", measures.grad_first_to_last, fmt_ratio),
    ("first/last grad @end", lambda r: measures.grad_first_to_last(r, at_end=True), fmt_ratio),
    ("‖δ¹‖/‖δᴸ‖ @0", measures.delta_first_to_last, fmt_ratio),
    ("saturated (mean)", lambda r: measures.layer_mean(r, ACT_SATURATED), fmt_fraction),
    ("dead (mean)", lambda r: measures.layer_mean(r, ACT_DEAD), fmt_fraction),
)


def run_table(sweep: SweepData, picked: list[RunData] | None = None) -> Table:
    """Return the table with one row per child run, in ``sweep.runs`` order; with ``picked`` (the runs a
    tuned comparison uses), a column marking them."""
    settings = setting_columns(sweep.runs)
    columns = ["run"] + [label for _, label in settings] + [m[0] for m in METRICS] + ["outcome", "wall time"]
    numeric = [False] + [key in NUMERIC_SETTINGS for key, _ in settings]
    numeric += [True] * len(METRICS) + [False, True]
    chosen = {id(r) for r in picked} if picked is not None else None
    if chosen is not None:
        columns, numeric = columns + ["picked"], numeric + [False]
    rows = []
    for run in sweep.runs:
        outcome = run.outcome
        if outcome == outcomes.DIVERGED and run.tags.get(outcomes.DIVERGED_STEP):
            outcome += f" @ step {run.tags[outcomes.DIVERGED_STEP]}"
        rows.append(
            [run.name]
            + [run.params.get(key, MISSING) for key, _ in settings]
            + [fmt(value(run)) for _, value, fmt in METRICS]
            + [outcome, fmt_duration(run.wall_time_s)]
            + (["✓" if id(run) in chosen else ""] if chosen is not None else [])
        )
    return Table(columns, rows, numeric)


def _over_runs(values: list[float | None], fmt: Format) -> str:
    """Return the mean and 95 % interval over seeds of the values present (of their logs for ratios)."""
    value = interval(values, log=fmt is fmt_ratio)
    if value is None:
        return MISSING
    if value.n == 1:
        return fmt(value.mean)
    if fmt is not fmt_ratio:  # a fraction
        value = clipped(value)
    return f"{fmt(value.mean)} [{fmt(value.low)}, {fmt(value.high)}]"


def aggregate_table(sweep: SweepData) -> Table | None:
    """Return the mean and 95 % t-interval over seeds per setting, or None when no setting has two runs.

    Groups are the shown setting columns minus ``seed``; failed and diverged runs are left out of the
    statistics (``n`` counts the runs used, ``runs`` all runs of the group). Gradient ratios, which span
    decades, are averaged on a log scale (geometric mean and interval).
    """
    settings = [(k, label) for k, label in setting_columns(sweep.runs) if k != "seed"]
    groups: dict[tuple[str, ...], list[RunData]] = {}
    for run in sweep.runs:
        groups.setdefault(tuple(run.params.get(k, MISSING) for k, _ in settings), []).append(run)
    if all(len(g) < 2 for g in groups.values()):
        return None
    columns = [label for _, label in settings] + ["n", "runs"] + [m[0] for m in METRICS]
    numeric = [k in NUMERIC_SETTINGS for k, _ in settings] + [True] * (2 + len(METRICS))
    rows = []
    for key, members in groups.items():
        used = [r for r in members if r.plottable]
        rows.append(
            list(key)
            + [str(len(used)), str(len(members))]
            + [_over_runs([value(r) for r in used], fmt) for _, value, fmt in METRICS]
        )
    return Table(columns, rows, numeric)


def key_numbers(sweep: SweepData) -> list[Text]:
    """Return one line per setting of the deepest nets: gradient ratios and test accuracy, over seeds.

    Settings are every factor the sweep varies but the seed (never pooled across them); depth picks the
    deepest nets of each setting of the other factors. Failed runs are left out; a diverged run counts at
    step 0 only, and the line says it diverged.
    """
    settings = [(k, label) for k, label in setting_columns(sweep.runs) if k not in ("seed", "depth")]
    groups: dict[tuple[str, ...], list[RunData]] = {}
    for run in sweep.runs:
        if run.outcome != outcomes.FAILED and run.depth is not None:
            groups.setdefault(tuple(run.params.get(k, MISSING) for k, _ in settings), []).append(run)
    lines: list[Text] = []
    for key, runs in groups.items():
        depth = max(cast(int, r.depth) for r in runs)  # grouped above only with a depth
        deepest = [r for r in runs if r.depth == depth]
        ended = [r for r in deepest if r.plottable]
        label = ", ".join(f"{name} {value}" for (_, name), value in zip(settings[1:], key[1:], strict=True))
        seeds = f" (mean of {len(deepest)} seeds)" if len(deepest) > 1 else ""
        start = _over_runs([measures.grad_first_to_last(r) for r in deepest], fmt_ratio)
        end = _over_runs([measures.grad_first_to_last(r, at_end=True) for r in ended], fmt_ratio)
        acc = _over_runs([measures.test_acc(r) for r in ended], fmt_acc)
        diverged = len(deepest) - len(ended)
        note = f" ({diverged} of {len(deepest)} diverged)" if diverged else ""
        ratios = f"first/last gradient ratio {start} at init, {end} at the end"
        where = f", depth {depth}" + (f", {label}" if label else "")
        lines.append([Code(key[0]), f"{where}{seeds}: {ratios}; test acc {acc}{note}"])
    return lines
