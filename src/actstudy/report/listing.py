"""`python -m actstudy.runs list`: the experiment's sweeps, each with its jobs, outcomes and key numbers.

One `search_runs` pass (paged) reads everything: the numbers are each run's last logged values, which
MLflow returns with the run, so the listing costs no metric-history call whatever the sweep's size.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from actstudy import metric_names as mn
from actstudy import outcomes
from actstudy.report.collect import latest_per_job, search_all
from actstudy.report.tables import fmt_acc, fmt_duration, fmt_ratio

#: The job columns after the name: (label, the run's value as text).
JOB_COLUMNS = ("outcome", "test acc", "test acc @best val", "first/last grad (last)", "wall time")


def _wall_time_s(run: Run) -> float | None:
    info = run.info
    return (info.end_time - info.start_time) / 1000.0 if info.end_time and info.start_time else None


def job_row(run: Run) -> list[str]:
    """Return a job run's row: its name, then the values of `JOB_COLUMNS`."""
    metrics, tags = run.data.metrics, run.data.tags
    outcome = tags.get(outcomes.OUTCOME) or ("running" if run.info.status == "RUNNING" else "?")
    if outcome == outcomes.DIVERGED and tags.get(outcomes.DIVERGED_STEP):
        outcome += f" @ step {tags[outcomes.DIVERGED_STEP]}"
    return [
        run.info.run_name or run.info.run_id,
        outcome,
        fmt_acc(metrics.get(mn.TEST_ACC)),
        fmt_acc(metrics.get(mn.TEST_BEST_ACC)),
        fmt_ratio(metrics.get(mn.GRAD_FIRST_TO_LAST)),
        fmt_duration(_wall_time_s(run)),
    ]


def _aligned(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def sweep_line(parent: Run, jobs: list[Run]) -> str:
    """Return a sweep's heading: name, status, start time, its jobs' outcome counts, and its folder."""
    counts: dict[str, int] = defaultdict(int)
    for job in jobs:
        counts[job.data.tags.get(outcomes.OUTCOME) or "running"] += 1
    started = dt.datetime.fromtimestamp((parent.info.start_time or 0) / 1000).strftime("%Y-%m-%d %H:%M")
    outcome_counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    folder = parent.data.tags.get(outcomes.SWEEP_DIR, "")
    return (
        f"{parent.info.run_name}  {parent.info.status}  started {started}  "
        f"{len(jobs)} job(s){': ' + outcome_counts if jobs else ''}  {folder}".rstrip()
    )


def listing(client: MlflowClient, experiment_id: str) -> list[str]:
    """Return the lines of the listing: the sweeps newest first, each with its jobs (one per job folder:
    an attempt a later one began anew is left out), then the jobs that ran outside a sweep."""
    runs = search_all(client, experiment_id, "")
    kind = outcomes.KIND
    parents = [r for r in runs if r.data.tags.get(kind) == outcomes.KIND_SWEEP]
    jobs_of: dict[str, list[Run]] = defaultdict(list)
    for run in latest_per_job(r for r in runs if r.data.tags.get(kind) == outcomes.KIND_JOB):
        jobs_of[run.data.tags.get(outcomes.PARENT, "")].append(run)
    header = ["job", *JOB_COLUMNS]
    lines: list[str] = []
    for parent in sorted(parents, key=lambda r: r.info.start_time or 0, reverse=True):
        jobs = sorted(jobs_of.pop(parent.info.run_id, []), key=lambda r: r.info.run_name or "")
        lines.append(sweep_line(parent, jobs))
        if jobs:
            lines += _aligned([header, *map(job_row, jobs)])
    loose = sorted((r for group in jobs_of.values() for r in group), key=lambda r: r.info.run_name or "")
    if loose:
        lines.append(f"{len(loose)} job(s) outside a sweep")
        lines += _aligned([header, *map(job_row, loose)])
    return lines
