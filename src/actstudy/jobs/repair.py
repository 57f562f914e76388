"""`python -m actstudy.runs repair` (`actstudy.cli.runs`): end runs left RUNNING by a process that died
(kill -9, lost node): jobs' runs and sweeps' parent runs alike.

A run records its host and pid as tags. On this host a run whose process is gone is ended FAILED with
`actstudy.outcome=interrupted`; runs from other hosts are treated the same once they have logged
nothing for `--stale-minutes`. Re-running the job itself instead resumes the run from its checkpoint.
"""

from __future__ import annotations

import socket
import time

from actstudy import outcomes
from actstudy.jobs.run_state import RunState


def _dead(run, client, stale_minutes: float) -> bool:
    tags = run.data.tags
    host, pid = tags.get(outcomes.HOST, ""), int(tags.get(outcomes.PID, "0") or 0)
    if host == socket.gethostname() and pid > 0:
        return not RunState(run.info.run_id, run.info.run_name, "", host=host, pid=pid).owner_alive()
    last = run.info.start_time or 0
    for key in run.data.metrics:
        history = client.get_metric_history(run.info.run_id, key)
        last = max([last, *(m.timestamp for m in history)])
    return time.time() * 1000 - last > stale_minutes * 60_000


def repair(uri: str, experiment: str, stale_minutes: float, dry_run: bool) -> list[str]:
    """End the experiment's dead RUNNING runs as interrupted; return the names of the runs ended."""
    from actstudy.tracking import store as tracking

    tracking.check_reachable(uri)
    client = tracking.open_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    running = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=10_000)
    ended = []
    for run in running:
        if run.data.tags.get(outcomes.KIND) in (outcomes.KIND_JOB, outcomes.KIND_SWEEP) and _dead(
            run, client, stale_minutes
        ):
            ended.append(run.info.run_name)
            if not dry_run:
                tracking.end_run(client, run.info.run_id, outcomes.INTERRUPTED, "its process died", "FAILED")
    return ended
