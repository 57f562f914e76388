"""`python -m actstudy.runs {list,repair}`: list the experiment's sweeps and jobs, or end runs left RUNNING
by a process that died (`actstudy.report.listing`, `actstudy.jobs.repair`)."""

from __future__ import annotations

import argparse
import sys

from actstudy import credentials
from actstudy.errors import TrackingUnavailable


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m actstudy.runs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listed = sub.add_parser("list", help="the sweeps, newest first, each with its jobs' outcomes and numbers")
    rep = sub.add_parser("repair", help="end runs whose process died as FAILED / interrupted")
    for command in (listed, rep):
        command.add_argument(
            "--tracking-uri", default=None, help="default: MLFLOW_TRACKING_URI or mlruns/mlflow.db"
        )
        command.add_argument("--experiment", default="actstudy")
    rep.add_argument("--stale-minutes", type=float, default=60.0, help="for runs started on other hosts")
    rep.add_argument("--dry-run", action="store_true", help="only list the runs that would be ended")
    return parser


def _list(uri: str, experiment: str) -> list[str]:
    from actstudy.report.listing import listing
    from actstudy.tracking import store as tracking

    tracking.check_reachable(uri)
    client = tracking.open_client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return [f"no experiment {experiment!r} in {credentials.redact(uri)}"]
    return listing(client, exp.experiment_id) or [f"experiment {experiment!r} has no runs yet"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (2: bad input or an unreachable store)."""
    from actstudy.jobs.repair import repair
    from actstudy.paths import default_tracking_uri

    if problem := credentials.override_problem(sys.argv[1:] if argv is None else argv):
        print(f"actstudy: error: {problem}", file=sys.stderr)
        return 2
    args = _parser().parse_args(argv)
    uri = args.tracking_uri or default_tracking_uri()
    try:
        if args.command == "list":
            print("\n".join(_list(uri, args.experiment)))
            return 0
        ended = repair(uri, args.experiment, args.stale_minutes, args.dry_run)
    except TrackingUnavailable as exc:
        print(f"actstudy: error: {exc}", file=sys.stderr)
        return 2
    verb = "would end" if args.dry_run else "ended"
    print(f"{verb} {len(ended)} run(s) left RUNNING by a dead process" + "".join(f"\n  {n}" for n in ended))
    return 0
