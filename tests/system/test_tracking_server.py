"""Jobs log to a real `mlflow server` (scripts/mlflow_server.sh), locally and through SLURM; a wrong
server URI fails fast with one clear line instead of training without tracking."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY, run_cli
from tests.system.conftest import TrackingServer, free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "mlflow_server.sh"


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory):
    """Yield (url, state dir) of an mlflow server started by the script (SQLite store) on a free port."""
    server = TrackingServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server.url, server.dir
    finally:
        server.stop()


def _job_runs(url: str) -> list:
    client = MlflowClient(url)
    exp = client.get_experiment_by_name("actstudy")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    return [r for r in runs if r.data.tags.get("actstudy.kind") == "job"]


def test_script_reports_a_healthy_server(tracking_server):
    url, state = tracking_server
    status = subprocess.run(
        ["bash", str(SCRIPT), "status", "--dir", str(state)], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0 and "healthy" in status.stdout, status.stdout + status.stderr
    again = subprocess.run(
        ["bash", str(SCRIPT), "start", "--dir", str(state)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "already running" in again.stdout


def test_local_job_logs_to_the_tracking_server(tracking_server, tmp_path):
    url, state = tracking_server
    args = ["depth=1", "seed=11", *TINY, f"tracking.uri={url}", f"hydra.run.dir={tmp_path / 'run'}"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=None)
    assert result.returncode == 0, result.stderr[-4000:]
    (run,) = [r for r in _job_runs(url) if r.data.params.get("seed") == "11"]
    assert run.info.status == "FINISHED"
    assert "test/acc" in run.data.metrics
    assert MlflowClient(url).get_metric_history(run.info.run_id, "train/loss")
    # artifacts go through the server (--serve-artifacts) into its --artifacts-destination
    artifacts = {a.path for a in MlflowClient(url).list_artifacts(run.info.run_id)}
    assert {"config", "figures", "histograms"} <= artifacts, artifacts
    assert list((state / "artifacts").rglob("config.yaml"))


@pytest.mark.slurm
def test_slurm_job_logs_to_the_tracking_server(slurm_cluster, tracking_server, tmp_path):
    url, _ = tracking_server
    args = ["-m", "hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1"]
    args += ["depth=1", "seed=12", *TINY, f"tracking.uri={url}", f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=None, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    (run,) = [r for r in _job_runs(url) if r.data.params.get("seed") == "12"]
    assert run.info.status == "FINISHED"
    assert run.data.tags["slurm.job_id"]
    assert "test/acc" in run.data.metrics


@pytest.mark.parametrize("mode", ["single", "sweep"])
def test_unreachable_server_fails_fast_with_one_line(tmp_path, mode):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    args = ["-m"] if mode == "sweep" else []
    args += [*TINY, f"tracking.uri={url}", f"hydra.run.dir={tmp_path / 'run'}"]
    args += [f"hydra.sweep.dir={tmp_path / 'multirun'}"]
    start = time.monotonic()
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=None, timeout=120)
    elapsed = time.monotonic() - start
    print(f"\nunreachable server ({mode}): exit {result.returncode} after {elapsed:.1f} s")
    assert result.returncode == 2, result.stderr[-4000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"actstudy: error: cannot reach the MLflow tracking server at {url}")
    assert "scripts/mlflow_server.sh" in lines[0]
    assert elapsed < 30  # checked before any data or training (a few s when idle: the imports)
    assert not (tmp_path / "multirun" / "sweep.json").exists()
