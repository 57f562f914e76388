"""Command line: ``python -m actstudy.report [--tracking-uri URI] [--experiment NAME] [--sweep ID]``.

Bad input (unknown experiment or sweep, unreachable store) prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlparse

from actstudy import credentials, outcomes
from actstudy.credentials import redact
from actstudy.errors import first_line

EXIT_USAGE = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the parsed command-line arguments."""
    p = argparse.ArgumentParser(
        prog="python -m actstudy.report",
        description="Write the comparison report (report.md, report.html, PNGs) of an actstudy sweep.",
    )
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or mlruns/mlflow.db)"
    )
    p.add_argument("--experiment", default="actstudy", help="experiment name (default: %(default)s)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--sweep", metavar="SWEEP_ID", help=f"the parent's {outcomes.SWEEP_ID} tag (or its run id)"
    )
    which.add_argument("--latest", action="store_true", help="the most recent sweep (the default)")
    p.add_argument(
        "--out",
        type=Path,
        help="output folder (default: <sweep folder>/report, or ./report-<sweep_id> when that is missing)",
    )
    p.add_argument(
        "--activations",
        metavar="NAMES",
        help="comma-separated names: only draw activations.png (functions and derivatives) into --out "
        "(default ./report-activations); no tracking store needed",
    )
    p.add_argument(
        "--tune",
        metavar="KEYS",
        help="comma-separated param keys to pick per setting by validation accuracy, e.g. optimizer.lr "
        f"(default: the sweep's own, its parent's {outcomes.TUNE} tag; '' compares every value)",
    )
    p.add_argument(
        "--no-log-artifacts", action="store_true", help="do not attach the report to the parent run"
    )
    return p.parse_args(argv)


def _fail(message: str) -> int:
    print(f"actstudy.report: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _check_store(uri: str) -> str | None:
    """Return an error message when ``uri`` is a SQLite store whose file does not exist, else None."""
    from actstudy.paths import sqlite_path

    if (path := sqlite_path(uri)) is not None:
        if str(path) not in ("", ".", ":memory:") and not path.is_file():
            return f"no MLflow store at {path} (tracking URI {redact(uri)})"
    elif urlparse(uri).scheme in ("http", "https"):
        from actstudy.tracking.client import bound_http_retries
        from actstudy.tracking.store import credentials_refused

        bound_http_retries()  # an unreachable server fails in seconds, not after MLflow's minutes

        return credentials_refused(uri)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code (0 ok, 2 bad input or unreachable store)."""
    if problem := credentials.override_problem(sys.argv[1:] if argv is None else argv):
        return _fail(problem)
    args = parse_args(argv)
    if args.activations:
        from actstudy.report.activation_plot import activation_figure

        names = [n.strip() for n in args.activations.split(",") if n.strip()]
        out = args.out or Path("report-activations")
        try:
            fig = activation_figure(names, out / "activations.png")
        except ValueError as exc:
            return _fail(str(exc))
        print(fig.path)
        return 0

    from actstudy.paths import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    if problem := _check_store(uri):
        return _fail(problem)

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from actstudy.report.collect import ReportError, find_experiment_id, find_parent_run_id
    from actstudy.tracking.client import RetryingClient, WaitPolicy

    try:
        client = RetryingClient(MlflowClient(tracking_uri=uri), WaitPolicy())  # waits for a locked store
        exp_id = find_experiment_id(client, args.experiment)
        parent = find_parent_run_id(client, exp_id, args.sweep)
        from actstudy.report.build import write_report  # torch + matplotlib: only once the sweep is found

        tune = None if args.tune is None else tuple(k.strip() for k in args.tune.split(",") if k.strip())
        md = write_report(
            client, parent, out_dir=args.out, log_artifacts=not args.no_log_artifacts, tune_keys=tune
        )
    except ReportError as exc:
        return _fail(str(exc))
    except MlflowException as exc:
        if "failed with exception" in str(exc):  # the REST client gave up: connection refused, DNS, timeout
            return _fail(f"cannot reach the tracking server at {redact(uri)}")
        return _fail(f"tracking store {redact(uri)}: {redact(first_line(exc))[:300]}")
    except OSError as exc:  # includes requests' connection errors and unwritable output folders
        return _fail(first_line(exc)[:300])
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
