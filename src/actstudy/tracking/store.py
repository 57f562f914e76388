"""MLflow store access: resolve and check the tracking URI, experiments, runs, params and tags.

Every call goes through the client `open_client` returns (`actstudy.tracking.client.RetryingClient`), so
that many jobs sharing one SQLite store wait for the lock instead of failing with "database is locked",
and a job rides out a tracking server's restart; the SQLite store is switched to WAL mode so readers never
block writers.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from actstudy import outcomes
from actstudy.credentials import redact
from actstudy.errors import TrackingUnavailable, one_line_summary
from actstudy.paths import PROJECT_ROOT, default_tracking_uri, sqlite_path, writable_problem
from actstudy.tracking import store_template
from actstudy.tracking.client import RetryingClient, WaitPolicy
from actstudy.tracking.store_template import NOT_SQLITE, sqlite_damage

T = TypeVar("T")
log = logging.getLogger("actstudy")


def resolve_uri(configured: str | None) -> str:
    """Return `tracking.uri` if set, else `MLFLOW_TRACKING_URI`, else the project's SQLite store."""
    return configured or default_tracking_uri()


# Stores MLflow 3 opens (its file store is refused): databases through SQLAlchemy, or a tracking server.
STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Raise `TrackingUnavailable` unless the store at `uri` answers (HTTP) or can be created (SQLite)."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0] if "://" in uri else uri  # "databricks" has no ://
    if scheme not in STORE_SCHEMES:
        raise TrackingUnavailable(
            f"tracking URI {redact(uri)!r} is not an MLflow store; use sqlite:///path/mlflow.db, "
            "http://host:5000 (a tracking server) or postgresql://... (tracking.uri or MLFLOW_TRACKING_URI)"
        )
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                problem = None if response.status == 200 else f"HTTP {response.status}"
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            problem = str(getattr(exc, "reason", exc))
        if problem is not None:
            raise TrackingUnavailable(
                f"cannot reach the MLflow tracking server at {redact(uri)} ({problem}); start it "
                "(scripts/mlflow_server.sh) or point tracking.uri / MLFLOW_TRACKING_URI at a running one"
            )
        if refused := credentials_refused(uri):  # /health answers anyone: ask for what a job reads
            raise TrackingUnavailable(refused)
        return
    db = sqlite_path(uri)
    if db is not None:
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingUnavailable(f"cannot create the MLflow store folder {db.parent}: {exc}") from exc
        if db.exists() and not os.access(db, os.W_OK):
            raise TrackingUnavailable(f"the MLflow store {db} is not writable")
        problem = writable_problem(db.parent)
        if problem:
            raise TrackingUnavailable(
                f"cannot write the MLflow store in {db.parent} ({problem}); use a writable folder"
            )
        damage = sqlite_damage(db) if db.is_file() and db.stat().st_size else None
        if damage == NOT_SQLITE:
            raise TrackingUnavailable(
                f"{db} is not an SQLite database; point tracking.uri at another file or move this one away"
            )
        if damage is not None:
            raise TrackingUnavailable(
                f"the MLflow store {db} is damaged ({damage}); restore it from a backup, or point "
                "tracking.uri at another file"
            )


def credentials_refused(uri: str) -> str | None:
    """Return one line saying that the tracking server at `uri` refuses this process's credentials
    (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, or none), or None when it lets it read."""
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except MlflowException as exc:
        if exc.error_code not in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return None  # not an answer about credentials: the job's own calls wait or fail on it
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        who = f"user {user!r}" if user else "a client without credentials"
        return (
            f"the MLflow tracking server at {redact(uri)} refused {who} ({exc.error_code}); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an account of the server "
            "(docs/slurm.md, an authenticated server)"
        )
    return None


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise store creation (schema migrations) between processes sharing one SQLite file."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@functools.cache  # the listener is global to SQLAlchemy: register it once per process
def _tune_sqlite_connections() -> None:
    """Make every SQLite connection of this process use WAL, wait for locks and skip per-commit fsyncs.

    busy_timeout: writers queue for up to 60 s instead of failing with "database is locked".
    synchronous=NORMAL: in WAL mode a commit survives a crash of the process (not of the machine), and
    does not wait for the disk, which is what made frequent metric batches expensive.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _on_connect(dbapi_connection, connection_record) -> None:  # noqa: ARG001
        if isinstance(dbapi_connection, sqlite3.Connection):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode = WAL")  # persistent: readers never block the writer
            cursor.execute("PRAGMA busy_timeout = 60000")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()


_opened: dict[str, MlflowClient] = {}  # uri -> client whose store this process has created or checked


def open_client(uri: str, server_wait_s: float | None = None) -> RetryingClient:
    """Return a client for `uri` whose every call goes through its own `WaitPolicy` (a locked SQLite
    store waited for; with `server_wait_s`, a tracking server that stops answering waited for that long),
    creating the store on first use (SQLite: tuned, see above).

    The store is created and migrated once per process and URI: the jobs of a local sweep share one
    process and reuse it instead of taking the lock and querying the store again; each caller (a job, the
    sweep) gets a policy of its own.
    """
    db = sqlite_path(uri)
    if db is not None:
        _tune_sqlite_connections()
        if not db.exists():
            _opened.pop(uri, None)  # removed since (a test's fresh store): create it again
    if uri not in _opened:
        with _store_lock(uri):
            db = sqlite_path(uri)
            if db is not None and not db.exists():
                store_template.create_store(db)
            client = MlflowClient(tracking_uri=uri)
            WaitPolicy().call(lambda: client.search_experiments(max_results=1))  # creates and migrates
        _opened[uri] = client
    return RetryingClient(_opened[uri], WaitPolicy(server_wait_s))


# MLflow 3.17's UI picks its view from a `workflowType` URL parameter (else the browser's last choice,
# GenAI at first) before the tag: links into it carry the parameter so they open on the runs table.
UI_VIEW = "workflowType=machine_learning"


def experiment_id(client: MlflowClient, name: str) -> str:
    """Return the id of experiment `name`, creating it (artifacts beside a SQLite store) if needed.

    The experiment is tagged as a model-training one (`outcomes.EXPERIMENT_KIND`); an existing one is tagged
    on first use unless it has a kind someone chose (a kind the UI only guessed is replaced).
    """
    with _store_lock(client.tracking_uri):
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            kind = exp.tags.get(outcomes.EXPERIMENT_KIND, "")
            if not kind or kind.endswith("_inferred") or kind == "no_inferred_type":
                client.set_experiment_tag(
                    exp.experiment_id, outcomes.EXPERIMENT_KIND, outcomes.MODEL_TRAINING
                )
            return exp.experiment_id
        db = sqlite_path(client.tracking_uri)
        location = None
        if db is not None:
            location = (db.parent / "artifacts" / name).as_uri()
        tags = {outcomes.EXPERIMENT_KIND: outcomes.MODEL_TRAINING}
        return client.create_experiment(name, artifact_location=location, tags=tags)


def ui_link(uri: str, experiment: str, run_id: str | None = None, view: str | None = None) -> str:
    """Return the MLflow UI address of an experiment's runs table (or of one run) that opens on it; with
    `view`, the runs table as `share_view` stored it under that key.

    A tracking server serves its own UI; for a database store the address is `mlflow ui`'s default one.
    """
    base = redact(uri).rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    page = f"runs/{run_id}" if run_id else "runs"
    shared = f"{VIEW_KEY_PARAMETER}={view}&" if view else ""
    return f"{base}/#/experiments/{experiment}/{page}?{shared}{UI_VIEW}"


def compare_link(uri: str, experiment: str, run_ids: list[str]) -> str:
    """Return the MLflow UI address of its compare view of `run_ids`, in the model-training view."""
    base = ui_link(uri, experiment).split("/#/", 1)[0]
    runs = ",".join(f'"{run_id}"' for run_id in run_ids)
    return f'{base}/#/compare-runs?runs=[{runs}]&experiments=["{experiment}"]&{UI_VIEW}'


# MLflow 3.17's UI (mlflow/server/js, experiment page "Share"): the view a link opens is an experiment tag
# `mlflow.sharedViewState.<key>` holding its JSON (search facets and table state such as
# `selectedColumns`, each column `<params|metrics|tags>.`name``), named by the link's `viewStateShareKey`.
SHARED_VIEW_TAG = "mlflow.sharedViewState."
VIEW_KEY_PARAMETER = "viewStateShareKey"


def share_view(
    client: MlflowClient, experiment_id: str, key: str, search_filter: str, columns: Mapping[str, list[str]]
) -> str:
    """Store a runs-table view (the runs `search_filter` finds, the `columns` by kind: params, metrics,
    tags) on the experiment under `key`; return the key, for `ui_link(..., view=key)`."""
    selected = [f"{kind}.`{name}`" for kind, names in columns.items() for name in names]
    # sorted by anything but the start time, the UI lists the runs it finds flat, not under their parent
    state = {
        "searchFilter": search_filter,
        "orderByKey": f"tags.`{outcomes.RUN_NAME}`",
        "orderByAsc": True,
        "selectedColumns": selected,
        "runsHiddenMode": "SHOW_ALL",
    }
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key, json.dumps(state))
    return key


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Return a nested mapping as `{'a.b.c': 'value'}` strings, the way runs store their params."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


def git_commit() -> str:
    """Return the git commit, with `-dirty` when the tree has changes ('unknown' outside git)."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        return commit + ("-dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def slurm_tags() -> dict[str, str]:
    """Return `slurm.job_id` / `slurm.array_task_id` tags when running inside a SLURM job."""
    tags = {}
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        tags[outcomes.SLURM_JOB_ID] = os.environ.get("SLURM_JOB_ID", job)
        if "SLURM_ARRAY_TASK_ID" in os.environ:
            tags[outcomes.SLURM_ARRAY_JOB_ID] = job
            tags[outcomes.SLURM_ARRAY_TASK_ID] = os.environ["SLURM_ARRAY_TASK_ID"]
    return tags


def log_params_and_tags(
    client: MlflowClient, run_id: str, params: Mapping[str, str], tags: Mapping[str, str]
):
    """Log params and tags (cut to MLflow's own length limits) in batches of 100."""
    items = [Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])
    tag_items = [RunTag(k, str(v)[:MAX_TAG_VAL_LENGTH]) for k, v in tags.items()]
    if tag_items:
        client.log_batch(run_id, tags=tag_items)


def run_exists(client: MlflowClient, run_id: str) -> bool:
    """Return True if the store holds the run (and it is not deleted); other store errors propagate."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


def delete_tags(client: MlflowClient, run_id: str, keys: list[str]) -> None:
    """Remove tags from a run (those it has; others are ignored): e.g. a resumed run's stale error."""
    present = client.get_run(run_id).data.tags
    for key in keys:
        if key in present:
            client.delete_tag(run_id, key)


def last_logged_steps(client: MlflowClient, run_id: str) -> dict[str, int]:
    """Return, for each metric already logged in the run, the highest step it was logged at.

    Per key, because a process can die between two metrics of the same step (train loss written, the
    monitor's statistics of that step not yet): a resumed run re-logs exactly what is missing.
    One store call: the run's data holds each key's latest value with its step (MLflow keeps the point
    of the highest step as a key's latest); `RunData.metrics` drops the step, its public `to_proto()`
    keeps it.
    """
    run = client.get_run(run_id)
    return {m.key: m.step for m in run.data.to_proto().metrics}


def end_run(
    client: MlflowClient, run_id: str, outcome: str, error: str | None = None, status: str | None = None
) -> None:
    """Tag the run's outcome (and error) and end it: FINISHED, KILLED (interrupted), FAILED, or `status`."""
    tags = {outcomes.OUTCOME: outcome}
    if error:
        tags[outcomes.ERROR] = redact(one_line_summary(error))[:MAX_TAG_VAL_LENGTH]
    client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run_id, status or outcomes.status_of(outcome))


def metric_points(values: Mapping[str, float], step: int) -> list[Metric]:
    """Return MLflow metric entities for one step, all with the same timestamp."""
    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, step) for key, value in values.items()]
