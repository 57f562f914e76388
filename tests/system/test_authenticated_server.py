"""The tracking server for clusters, authenticated (scripts/mlflow_server.sh --auth, MLflow's basic-auth
app) on a PostgreSQL store whose URI holds a password: an unauthenticated client is refused, an
authenticated job logs, and neither password appears in `ps`, the store, the artifacts or the job's
folder; a job given the database directly (MLFLOW_TRACKING_URI with a password) records it redacted."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tests.helpers import TINY, run_cli
from tests.system.conftest import TrackingServer

pytestmark = pytest.mark.postgres

STORE_PASSWORD = "store-pw-3f9c1a77"  # the local PostgreSQL trusts loopback: any password opens it
ADMIN_PASSWORD = "admin-pw-7d2e4b19"
SECRETS = (STORE_PASSWORD.encode(), ADMIN_PASSWORD.encode())
JOB = ["depth=1", "trainer.max_epochs=1", *TINY]


def _with_password(uri: str) -> str:
    """Return the URI of this module's own database, `mlflow_auth`, with STORE_PASSWORD in it."""
    server = uri.rsplit("/", 1)[0].replace(
        "postgresql://postgres@", f"postgresql://postgres:{STORE_PASSWORD}@"
    )
    return f"{server}/mlflow_auth"


@pytest.fixture(scope="module")
def store_uri(postgres: str) -> str:
    """Return the password-bearing URI of an empty database of this module (other tests' runs stay out)."""
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute("DROP DATABASE IF EXISTS mlflow_auth")
        connection.execute("CREATE DATABASE mlflow_auth")
    return _with_password(postgres)


@pytest.fixture(scope="module")
def auth_server(store_uri: str, tmp_path_factory: pytest.TempPathFactory):
    """Yield the authenticated server (store URI from a private file) and the `ps` listing taken while
    it runs."""
    secret_dir = tmp_path_factory.mktemp("secrets")
    uri_file = secret_dir / "store-uri"
    uri_file.write_text(store_uri + "\n")
    uri_file.chmod(0o600)
    server = TrackingServer(
        tmp_path_factory.mktemp("auth-mlflow"), "--auth", "--backend-store-uri-file", str(uri_file),
        env={"MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )  # fmt: skip
    server.start()
    try:
        listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        yield server, listing
    finally:
        server.stop()


def _secrets_in(folder: Path) -> list[str]:
    """Return the files under `folder` that hold either password."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(s in p.read_bytes() for s in SECRETS)]


def _secrets_in_store(store_uri: str) -> list[str]:
    """Return the params and tags (runs' and experiments') of the store whose value holds either password."""
    import psycopg

    with psycopg.connect(store_uri.replace(f":{STORE_PASSWORD}", "")) as connection:
        rows = connection.execute(
            "SELECT key, value FROM params UNION ALL SELECT key, value FROM tags "
            "UNION ALL SELECT key, value FROM experiment_tags"
        ).fetchall()
    return [key for key, value in rows if any(s.decode() in (value or "") for s in SECRETS)]


def test_an_unauthenticated_client_is_refused(auth_server, tmp_path):
    server, _ = auth_server
    with pytest.raises(MlflowException) as refused:
        MlflowClient(server.url).search_experiments(max_results=1)
    assert refused.value.get_http_status_code() == 401
    # a job without credentials stops before any run, in one line
    args = [*JOB, f"tracking.uri={server.url}", f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=None, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("actstudy: error:")]
    assert f"the MLflow tracking server at {server.url} refused a client without credentials" in line
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "actstudy_run.json").exists()


def test_an_authenticated_job_logs_and_no_password_is_exposed(auth_server, store_uri, tmp_path, monkeypatch):
    server, listing = auth_server
    credentials = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}
    args = [*JOB, "seed=3", f"tracking.uri={server.url}", f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=None, timeout=300, **credentials)
    assert result.returncode == 0, result.stderr[-4000:]
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(server.url)
    (run,) = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])
    assert run.info.status == "FINISHED" and "test/acc" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config", "figures"}
    # no password in ps, in what the script and the job printed, in the store, its artifacts or the folders
    assert STORE_PASSWORD not in listing and ADMIN_PASSWORD not in listing
    printed = "".join(s.stdout + s.stderr for s in server.started) + result.stdout + result.stderr
    assert STORE_PASSWORD not in printed and ADMIN_PASSWORD not in printed
    assert "postgresql://postgres:***@127.0.0.1" in printed  # the script names the store, redacted
    assert _secrets_in_store(store_uri) == []
    assert _secrets_in(server.dir) == [] and _secrets_in(tmp_path / "run") == []


def test_a_job_given_the_database_directly_records_its_uri_redacted(store_uri, tmp_path):
    # an experiment of its own: the server's keep their artifacts behind it (mlflow-artifacts:/)
    args = [*JOB, "seed=4", "tracking.experiment=direct", f"hydra.run.dir={tmp_path / 'run'}"]
    first = run_cli("actstudy.train", args, cwd=tmp_path, uri=store_uri, timeout=300)
    assert first.returncode == 0, first.stderr[-4000:]
    state = json.loads((tmp_path / "run" / "actstudy_run.json").read_text())
    assert state["tracking_uri"] == store_uri.replace(STORE_PASSWORD, "***")
    assert _secrets_in(tmp_path / "run") == [] and STORE_PASSWORD not in first.stdout + first.stderr
    assert _secrets_in_store(store_uri) == []
    # the redacted record still names the same store: the same command finds its finished run
    again = run_cli("actstudy.train", args, cwd=tmp_path, uri=store_uri, timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    assert f"finished already as run {state['run_id']}" in again.stderr, again.stderr[-2000:]
