"""The line a job prints as it ends: where the sweep is, what the job gave, how long the rest will take.

    job 2/9 sigmoid-d4-s0: completed, test acc 0.412, first/last grad 3.1e-04 @0, 2.2e-03 @end, 1m 02s;
    sweep: 2 of 9 done, about 7m 10s left (log: multirun/sweep-.../sigmoid-d4-s0-1a2b3c4d/train.log)

The estimate is the time since this invocation of the sweep took its folder's lock, over the jobs that
ended since then, times the jobs not done yet: it counts however many jobs run at once (joblib, SLURM).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from actstudy import outcomes
from actstudy.jobs.run_state import FolderLock, RunState
from actstudy.report import measures
from actstudy.report.collect import RunData
from actstudy.report.tables import fmt_acc, fmt_duration, fmt_ratio


def job_line(run: RunData, jobs: list[str], folder: Path, log: Path | None) -> str:
    """Return the job's end line: its place among the sweep's job folders `jobs` (none for a single run),
    outcome, test accuracy, first/last gradient ratio at step 0 and @end, wall time, and the sweep's
    progress; with the job's log file when it has one."""
    place = f"job {jobs.index(folder.name) + 1}/{len(jobs)} " if folder.name in jobs else "job "
    outcome = run.outcome
    if outcome == outcomes.DIVERGED and run.tags.get(outcomes.DIVERGED_STEP):
        outcome += f" at step {run.tags[outcomes.DIVERGED_STEP]}"
    accuracy = measures.test_acc_at_best_val(run)
    label = "test acc @best val" if accuracy is not None else "test acc"
    accuracy = accuracy if accuracy is not None else measures.test_acc(run)
    at_0, at_end = measures.grad_first_to_last(run), measures.grad_first_to_last(run, at_end=True)
    grad = f"first/last grad {fmt_ratio(at_0)} @0, {fmt_ratio(at_end)} @end"
    facts = [outcome, f"{label} {fmt_acc(accuracy)}", grad, fmt_duration(run.wall_time_s)]
    line = f"{place}{run.name}: " + ", ".join(facts)
    tail = [time_left(folder.parent, jobs)] if jobs else []
    tail += [f"log: {_shown(log)}"] if log is not None else []
    return line + (f"; {'; '.join(tail)}" if tail else "")


def time_left(sweep_dir: Path, jobs: list[str], now: float | None = None) -> str:
    """Return "sweep: d of N done, about T left" from the job folders' state files ("" if not a sweep)."""
    if not jobs:
        return ""
    now = time.time() if now is None else now
    lock = FolderLock(sweep_dir, "sweep").path
    began = lock.stat().st_mtime if lock.exists() else None
    done, done_now = 0, 0
    for name in jobs:
        state_file = RunState.path(sweep_dir / name)
        state = RunState.load(sweep_dir / name)
        if state is None or state.outcome is None or state.outcome == outcomes.INTERRUPTED:
            continue
        done += 1
        if began is not None and state_file.stat().st_mtime >= began:
            done_now += 1
    text = f"sweep: {done} of {len(jobs)} done"
    if done == len(jobs):
        return text
    if began is None or done_now == 0:
        return text + ", no estimate yet"
    return text + f", about {fmt_duration((now - began) / done_now * (len(jobs) - done))} left"


def _shown(path: Path) -> str:
    """Return `path` relative to the working folder when it is under it (shorter on a terminal)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def log_file() -> Path | None:
    """Return the file this process's log is written to (a Hydra job's `train.log`), or None."""
    files = (h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler))
    return next((Path(h.baseFilename) for h in files), None)
