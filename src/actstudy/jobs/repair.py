"""`python -m actstudy.runs repair`: end runs left RUNNING by a process that died (kill -9, lost node):
jobs' runs and sweeps' parent runs alike.

A run records its host and pid as tags. On this host a run whose process is gone is ended FAILED with
`actstudy.outcome=interrupted`; runs from other hosts are treated the same once they have logged
nothing for `--stale-minutes`. Re-running the job itself instead resumes the run from its checkpoint.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time

from actstudy import credentials, outcomes
from actstudy.errors import TrackingUnavailable
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    from actstudy.paths import default_tracking_uri

    parser = argparse.ArgumentParser(prog="python -m actstudy.runs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("repair", help="end runs whose process died as FAILED / interrupted")
    rep.add_argument("--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI or mlruns/mlflow.db")
    rep.add_argument("--experiment", default="actstudy")
    rep.add_argument("--stale-minutes", type=float, default=60.0, help="for runs started on other hosts")
    rep.add_argument("--dry-run", action="store_true", help="only list the runs that would be ended")
    if problem := credentials.override_problem(sys.argv[1:] if argv is None else argv):
        print(f"actstudy: error: {problem}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        ended = repair(
            args.tracking_uri or default_tracking_uri(), args.experiment, args.stale_minutes, args.dry_run
        )
    except TrackingUnavailable as exc:
        print(f"actstudy: error: {exc}", file=sys.stderr)
        return 2
    verb = "would end" if args.dry_run else "ended"
    print(f"{verb} {len(ended)} run(s) left RUNNING by a dead process" + "".join(f"\n  {n}" for n in ended))
    return 0


if __name__ == "__main__":
    sys.exit(main())
