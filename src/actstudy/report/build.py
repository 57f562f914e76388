"""Assemble the sweep report: collect runs, draw figures, write md/html, attach them to the parent run."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter
from pathlib import Path

from mlflow.tracking import MlflowClient

from actstudy import outcomes
from actstudy.report.activation_plot import ACTIVATION_MODULES, activation_figure
from actstudy.report.collect import SweepData, collect_sweep
from actstudy.report.figures import metric_figures
from actstudy.report.render import ReportContent, write_report_files
from actstudy.report.tables import aggregate_table, fmt_acc, fmt_ratio, run_table, summarize

ARTIFACT_DIR = "report"


def default_out_dir(sweep: SweepData) -> Path:
    """Return ``<actstudy.sweep_dir>/report`` if that folder exists here, else ``./report-<sweep_id>``."""
    if sweep.sweep_dir and Path(sweep.sweep_dir).is_dir():
        return Path(sweep.sweep_dir) / "report"
    return Path.cwd() / f"report-{sweep.sweep_id}"


def key_numbers(sweep: SweepData) -> list[str]:
    """Return one summary line per activation at its largest depth: gradient ratios and test accuracy."""
    lines = []
    for act in sweep.activations():
        runs = [r for r in sweep.runs if r.activation == act and r.plottable and r.depth is not None]
        if not runs:
            continue
        depth = max(r.depth for r in runs)
        summaries = [summarize(r) for r in runs if r.depth == depth]

        def geo(values: list[float | None]) -> str:
            vals = [v for v in values if v is not None and v > 0]
            return fmt_ratio(math.exp(statistics.fmean(math.log(v) for v in vals))) if vals else "—"

        accs = [s.test_acc for s in summaries if s.test_acc is not None]
        acc = fmt_acc(statistics.fmean(accs)) if accs else "—"
        seeds = f" (mean of {len(summaries)} runs)" if len(summaries) > 1 else ""
        lines.append(
            f"`{act}`, depth {depth}{seeds}: first/last gradient ratio "
            f"{geo([s.ratio_start for s in summaries])} at init, {geo([s.ratio_end for s in summaries])} "
            f"at the end; test acc {acc}"
        )
    return lines


def _meta(sweep: SweepData) -> list[tuple[str, str]]:
    outcomes = Counter(r.outcome for r in sweep.runs)
    counts = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
    meta = [
        ("experiment", sweep.experiment_name),
        ("parent run", f"`{sweep.parent_run_id}`"),
        ("runs", f"{len(sweep.runs)} ({counts})" if sweep.runs else "0"),
    ]
    if sweep.sweep_dir:
        meta.append(("sweep folder", f"`{sweep.sweep_dir}`"))
    meta.append(("generated", dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")))
    return meta


def build_report(sweep: SweepData, out_dir: Path) -> tuple[Path, list[Path]]:
    """Write the report of ``sweep`` into ``out_dir``; return (report.md path, every file written)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures, notes = metric_figures(sweep, out_dir)
    known = [a for a in sweep.activations() if a in ACTIVATION_MODULES]
    if known:
        figures.append(activation_figure(known, out_dir / "activations.png"))
    unknown = [a for a in sweep.activations() if a not in ACTIVATION_MODULES]
    if unknown:
        notes.append(f"No function plot for unknown activation(s): {', '.join(unknown)}.")
    if not sweep.runs:
        notes.append("The sweep has no child runs (yet).")
    missing = {}
    for run in sweep.runs:
        gaps = run.missing()
        if gaps:
            missing[f"{run.name} ({run.outcome})"] = gaps
        if run.outcome == outcomes.FAILED and run.tags.get(outcomes.ERROR):
            notes.append(f"`{run.name}` failed: {run.tags[outcomes.ERROR].strip().splitlines()[-1][:300]}")
    content = ReportContent(
        title=f"actstudy sweep {sweep.sweep_id}",
        meta=_meta(sweep),
        summary=key_numbers(sweep),
        run_table=run_table(sweep) if sweep.runs else None,
        aggregate=aggregate_table(sweep) if sweep.runs else None,
        figures=figures,
        notes=notes,
        missing=missing,
    )
    md, page = write_report_files(content, out_dir)
    return md, [md, page, *(f.path for f in figures)]


def write_report(
    client: MlflowClient, parent_run_id: str, out_dir: Path | None = None, log_artifacts: bool = True
) -> Path:
    """Write the report of the sweep whose parent run is ``parent_run_id``; return the report.md path.

    ``out_dir`` defaults to ``default_out_dir``. With ``log_artifacts`` the written files (report.md,
    report.html, the PNGs) are logged on the parent run under ``report/``. Raises ``ReportError`` when the
    parent run does not exist.
    """
    sweep = collect_sweep(client, parent_run_id)
    md, files = build_report(sweep, Path(out_dir) if out_dir is not None else default_out_dir(sweep))
    if log_artifacts:
        for path in files:
            client.log_artifact(parent_run_id, str(path), ARTIFACT_DIR)
    return md
