"""`python -m actstudy.train -m ... --dry-run`: the jobs a sweep command would run, with their folders and
what each would do (start, resume, or keep a finished run), printed after every job's config is checked;
nothing is run, no folder is made and the tracking store is not touched."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from actstudy import outcomes
from actstudy.config import identity
from actstudy.config.schema import run_name
from actstudy.jobs.run_state import RunState

FLAG = "--dry-run"
# The override `cli/train.py` turns the flag into: the sweep callback's own argument (conf/config.yaml).
OVERRIDE = "hydra.callbacks.sweep_tracking.dry_run=true"


def what_it_would_do(state: RunState | None) -> str:
    """Return what a job whose folder holds `state` would do: start, resume, or keep its finished run."""
    if state is None or state.run_id is None:
        return "start"
    if state.outcome in outcomes.SUCCESSFUL:
        return f"keep ({state.outcome})"
    return f"resume ({state.outcome or 'its process died'})"


def job_lines(sweep_dir: Path, jobs: list[list[str]], resolved: Sequence[Mapping[str, Any]]) -> list[str]:
    """Return the listing: a heading, then per job (its overrides in `jobs`, its config in `resolved`) its
    number, name, what it would do, folder and overrides."""
    rows = []
    for overrides, config in zip(jobs, resolved, strict=True):
        folder = sweep_dir / identity.job_folder(config)
        name = run_name(config["activation"]["name"], config["depth"], config["seed"])
        rows.append([name, what_it_would_do(RunState.load(folder)), str(folder), " ".join(overrides)])
    n = len(rows)
    lines = [f"{n} job(s) in {sweep_dir} (dry run: nothing was run)"]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(3)]
    for i, row in enumerate(rows, 1):
        padded = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        cells = [f"{i}/{n}".rjust(2 * len(str(n)) + 1), *padded, row[3]]
        lines.append("  " + "  ".join(cells))
    return lines
