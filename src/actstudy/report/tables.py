"""The report's tables: one row per child run, and mean ± std over seeds when a setting has several."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable

from actstudy import outcomes
from actstudy.metric_names import ACT_DEAD, ACT_SATURATED, GRAD_FIRST_TO_LAST, TEST_ACC, VAL_ACC
from actstudy.report.collect import RunData, SweepData
from actstudy.report.render import Code, Em, Table, Text

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
NUMERIC_SETTINGS = ("depth", "seed", "optimizer.lr", "model.width")  # right-aligned

_OVERRIDE_KEY_RE = re.compile(r"([A-Za-z_][\w.]*)=")
MISSING = "—"

RUNS_LEGEND: Text = (
    [Em("first/last grad"), " = ", Code(GRAD_FIRST_TO_LAST), " (weight-gradient RMS of layer 1 ÷ last "]
    + ["layer; ≪ 1 means vanishing) at step 0 and at the last logged step; ", Em("saturated"), ", "]
    + [Em("dead"), " = mean over layers of ", Code(ACT_SATURATED), ", ", Code(ACT_DEAD)]
    + [" at the last logged step."]
)
AGGREGATE_LEGEND: Text = [
    "mean ± std over the runs used (",
    Em("n"),
    "; failed and diverged runs left out, ",
    Em("runs"),
] + [" counts all); gradient ratios: geometric mean ×/÷ geometric std."]


def setting_columns(runs: list[RunData]) -> list[tuple[str, str]]:
    """Return the (param key, label) setting columns to show: activation, depth, then those that vary.

    Known settings (``SETTING_COLUMNS``) show when their value differs between runs; any other param that
    varies and was set on the command line (``actstudy.overrides`` tag) shows too, e.g. ``model.width``.
    """

    def varies(key: str) -> bool:
        return len({r.params.get(key, MISSING) for r in runs}) > 1

    cols = list(ALWAYS_COLUMNS) + [(key, label) for key, label in SETTING_COLUMNS if varies(key)]
    shown = {key for key, _ in cols}
    overrides = {k for r in runs for k in _OVERRIDE_KEY_RE.findall(r.tags.get(outcomes.OVERRIDES, ""))}
    extra = {k for r in runs for k in r.params if k in overrides and k not in shown and varies(k)}
    return cols + [(key, key) for key in sorted(extra)]


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


def mean_over_layers(run: RunData, family: str) -> float | None:
    """Return the mean over layers of a per-layer family at each layer's last logged step, or None."""
    values = list(run.by_layer(family).values())
    return sum(values) / len(values) if values else None


Format = Callable[[float | None], str]

#: The metric columns of both tables: (label, a run's value or None, format of one value).
METRICS: tuple[tuple[str, Callable[[RunData], float | None], Format], ...] = (
    ("test acc", lambda r: r.last(TEST_ACC), fmt_acc),
    ("best val acc", lambda r: r.best(VAL_ACC), fmt_acc),
    ("first/last grad @0", lambda r: r.at_step(GRAD_FIRST_TO_LAST, 0), fmt_ratio),
    ("first/last grad @end", lambda r: r.last(GRAD_FIRST_TO_LAST), fmt_ratio),
    ("saturated (mean)", lambda r: mean_over_layers(r, ACT_SATURATED), fmt_fraction),
    ("dead (mean)", lambda r: mean_over_layers(r, ACT_DEAD), fmt_fraction),
)


def run_table(sweep: SweepData) -> Table:
    """Return the table with one row per child run, in ``sweep.runs`` order."""
    settings = setting_columns(sweep.runs)
    columns = ["run"] + [label for _, label in settings] + [m[0] for m in METRICS] + ["outcome", "wall time"]
    numeric = [False] + [key in NUMERIC_SETTINGS for key, _ in settings]
    numeric += [True] * len(METRICS) + [False, True]
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
        )
    return Table(columns, rows, numeric)


def _over_runs(values: list[float | None], fmt: Format) -> str:
    """Return mean ± std of the values present (ratios, which span decades: geometric mean ×/÷ std)."""
    if fmt is fmt_ratio:
        return geo_mean(values, spread=True)
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return fmt(present[0]) if present else MISSING
    return f"{fmt(statistics.fmean(present))} ± {fmt(statistics.stdev(present))}"


def geo_mean(values: list[float | None], spread: bool = False) -> str:
    """Return the geometric mean of the positive values as a ratio, with ``×/÷ geometric std`` if ``spread``.

    An em dash when no value is positive; the spread shows only with two values or more.
    """
    logs = [math.log(v) for v in values if v is not None and v > 0]
    if not logs:
        return MISSING
    centre = fmt_ratio(math.exp(statistics.fmean(logs)))
    if not spread or len(logs) == 1:
        return centre
    return f"{centre} ×/÷ {math.exp(statistics.stdev(logs)):.2f}"


def aggregate_table(sweep: SweepData) -> Table | None:
    """Return mean ± std over seeds per setting, or None when no setting has more than one run.

    Groups are the shown setting columns minus ``seed``; failed and diverged runs are left out of the
    statistics (``n`` counts the runs used, ``runs`` all runs of the group). Gradient ratios, which span
    decades, are summarised by their geometric mean ×/÷ geometric standard deviation.
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
    """Return one summary line per activation at its largest depth: gradient ratios and test accuracy."""
    lines: list[Text] = []
    for act in sweep.activations():
        runs = [r for r in sweep.runs if r.activation == act and r.plottable and r.depth is not None]
        if not runs:
            continue
        depth = max(r.depth for r in runs)
        deepest = [r for r in runs if r.depth == depth]
        accs = [acc for acc in (r.last(TEST_ACC) for r in deepest) if acc is not None]
        acc = fmt_acc(statistics.fmean(accs)) if accs else MISSING
        seeds = f" (mean of {len(deepest)} runs)" if len(deepest) > 1 else ""
        start = geo_mean([r.at_step(GRAD_FIRST_TO_LAST, 0) for r in deepest])
        end = geo_mean([r.last(GRAD_FIRST_TO_LAST) for r in deepest])
        ratios = f"first/last gradient ratio {start} at init, {end} at the end"
        lines.append([Code(act), f", depth {depth}{seeds}: {ratios}; test acc {acc}"])
    return lines
