"""The one MLflow client: every call through its wait policy, and the policy's waits on a real store."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from actstudy.tracking.client import RetryingClient, WaitPolicy


class CountingPolicy(WaitPolicy):
    """The default policy, counting the calls it is given."""

    calls = 0

    def call(self, fn):
        self.calls += 1
        return super().call(fn)


def test_every_call_of_the_client_goes_through_its_policy(tmp_path: Path):
    policy = CountingPolicy()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = RetryingClient(MlflowClient(tracking_uri=uri), policy)
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    run = client.create_run(experiment, run_name="r")
    client.log_metric(run.info.run_id, "m", 1.0, step=0)
    client.set_terminated(run.info.run_id, "FINISHED")
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert client.tracking_uri == uri  # an attribute, not a call
    assert policy.calls == 5


def _hold_lock(db: Path, seconds: float) -> threading.Event:
    """Hold an exclusive lock on `db` from another connection for `seconds`; return an event set once held."""
    held = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(db, timeout=0)
        connection.execute("BEGIN EXCLUSIVE")
        held.set()
        threading.Event().wait(seconds)
        connection.rollback()
        connection.close()

    threading.Thread(target=hold, daemon=True).start()
    held.wait(10)
    return held


def _write(db: Path) -> str:
    connection = sqlite3.connect(db, timeout=0)  # no wait of its own: a held lock raises at once
    try:
        connection.execute("BEGIN EXCLUSIVE")
        connection.rollback()
        return "written"
    finally:
        connection.close()


def test_a_locked_store_is_waited_for_and_given_up_on_after_its_attempts(tmp_path: Path):
    db = tmp_path / "store.db"
    sqlite3.connect(db).close()
    _hold_lock(db, 0.4)
    assert WaitPolicy().call(lambda: _write(db)) == "written"  # backs off 0.05, 0.1, 0.2, 0.4 s
    _hold_lock(db, 2.0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        WaitPolicy(lock_attempts=2).call(lambda: _write(db))
