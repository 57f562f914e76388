"""The report's tables: one row per child run, and mean ± std over seeds when a setting has several."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from actstudy import outcomes
from actstudy.report.collect import RunData, SweepData

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

_OVERRIDE_KEY_RE = re.compile(r"([A-Za-z_][\w.]*)=")
MISSING = "—"


@dataclass
class Table:
    """A rendered-agnostic table: header labels, rows of already formatted cells, and per-column alignment."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]


def _param(run: RunData, key: str) -> str:
    return run.params.get(key, MISSING)


def setting_columns(runs: list[RunData]) -> list[tuple[str, str]]:
    """Return the (param key, label) setting columns to show: activation, depth, then those that vary.

    Known settings (``SETTING_COLUMNS``) show when their value differs between runs; any other param that
    varies and was set on the command line (``actstudy.overrides`` tag) shows too, e.g. ``model.width``.
    """
    cols = list(ALWAYS_COLUMNS)
    shown = {k for k, _ in cols}

    def varies(key: str) -> bool:
        return len({_param(r, key) for r in runs}) > 1

    for key, label in SETTING_COLUMNS:
        if varies(key):
            cols.append((key, label))
            shown.add(key)
    override_keys = set()
    for r in runs:
        override_keys.update(_OVERRIDE_KEY_RE.findall(r.tags.get(outcomes.OVERRIDES, "")))
    extra = sorted(k for r in runs for k in r.params if k in override_keys and k not in shown and varies(k))
    for key in dict.fromkeys(extra):
        cols.append((key, key))
    return cols


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


@dataclass
class RunSummary:
    """The numbers of one run that the tables show."""

    test_acc: float | None
    best_val_acc: float | None
    ratio_start: float | None
    ratio_end: float | None
    saturated: float | None
    dead: float | None


def summarize(run: RunData) -> RunSummary:
    """Return the summary numbers of one run (None where the metric is missing)."""
    return RunSummary(
        test_acc=run.last("test/acc"),
        best_val_acc=run.best("val/acc"),
        ratio_start=run.at_step("grad/first_to_last", 0),
        ratio_end=run.last("grad/first_to_last"),
        saturated=mean_over_layers(run, "act/saturated"),
        dead=mean_over_layers(run, "act/dead"),
    )


METRIC_COLUMNS = (
    "test acc",
    "best val acc",
    "first/last grad @0",
    "first/last grad @end",
    "saturated (mean)",
    "dead (mean)",
)


def run_table(sweep: SweepData) -> Table:
    """Return the table with one row per child run, in ``sweep.runs`` order."""
    settings = setting_columns(sweep.runs)
    columns = ["run"] + [label for _, label in settings] + list(METRIC_COLUMNS) + ["outcome", "wall time"]
    numeric = [False] + [key in ("depth", "seed", "optimizer.lr", "model.width") for key, _ in settings]
    numeric += [True] * len(METRIC_COLUMNS) + [False, True]
    rows = []
    for run in sweep.runs:
        s = summarize(run)
        outcome = run.outcome
        if outcome == outcomes.DIVERGED and run.tags.get(outcomes.DIVERGED_STEP):
            outcome += f" @ step {run.tags[outcomes.DIVERGED_STEP]}"
        rows.append(
            [run.name]
            + [_param(run, key) for key, _ in settings]
            + [
                fmt_acc(s.test_acc),
                fmt_acc(s.best_val_acc),
                fmt_ratio(s.ratio_start),
                fmt_ratio(s.ratio_end),
                fmt_fraction(s.saturated),
                fmt_fraction(s.dead),
                outcome,
                fmt_duration(run.wall_time_s),
            ]
        )
    return Table(columns, rows, numeric)


def _mean_std(values: list[float], fmt: Callable[[float | None], str]) -> str:
    if not values:
        return MISSING
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.fmean(values))} ± {fmt(statistics.stdev(values))}"


def _geo_mean(values: list[float]) -> str:
    positive = [v for v in values if v > 0]
    if not positive:
        return MISSING
    logs = [math.log(v) for v in positive]
    centre = fmt_ratio(math.exp(statistics.fmean(logs)))
    if len(logs) == 1:
        return centre
    return f"{centre} ×/÷ {math.exp(statistics.stdev(logs)):.2f}"


def _present(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None]


def aggregate_table(sweep: SweepData) -> Table | None:
    """Return mean ± std over seeds per setting, or None when no setting has more than one run.

    Groups are the shown setting columns minus ``seed``; failed and diverged runs are left out of the
    statistics (``n`` counts the runs used, ``runs`` all runs of the group). Gradient ratios, which span
    decades, are summarised by their geometric mean ×/÷ geometric standard deviation.
    """
    settings = [(k, label) for k, label in setting_columns(sweep.runs) if k != "seed"]
    groups: dict[tuple[str, ...], list[RunData]] = {}
    for run in sweep.runs:
        groups.setdefault(tuple(_param(run, k) for k, _ in settings), []).append(run)
    if all(len(g) < 2 for g in groups.values()):
        return None
    columns = [label for _, label in settings] + ["n", "runs"] + list(METRIC_COLUMNS)
    numeric = [k in ("depth", "optimizer.lr", "model.width") for k, _ in settings] + [True] * (
        2 + len(METRIC_COLUMNS)
    )
    rows = []
    for key, members in groups.items():
        used = [summarize(r) for r in members if r.plottable]
        rows.append(
            list(key)
            + [str(len(used)), str(len(members))]
            + [
                _mean_std(_present([s.test_acc for s in used]), fmt_acc),
                _mean_std(_present([s.best_val_acc for s in used]), fmt_acc),
                _geo_mean(_present([s.ratio_start for s in used])),
                _geo_mean(_present([s.ratio_end for s in used])),
                _mean_std(_present([s.saturated for s in used]), fmt_fraction),
                _mean_std(_present([s.dead for s in used]), fmt_fraction),
            ]
        )
    return Table(columns, rows, numeric)
