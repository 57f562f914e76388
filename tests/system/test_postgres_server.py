"""The tracking server on a real PostgreSQL (scripts/local_postgres.sh + scripts/mlflow_server.sh
--backend-store-uri postgresql://...): 8 concurrent jobs lose no metric point, artifacts travel through
the server (`mlflow-artifacts:/`), and a job's run continues across a server restart, or fails with one
line when the server stays down longer than `tracking.server_wait_s`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from actstudy.metric_names import SUMMARY
from tests.helpers import metric_histories, run_cli, slowed_env
from tests.system.conftest import TrackingServer

pytestmark = pytest.mark.postgres

# Tiny jobs whose every step is logged and monitored: many points per second of training.
EVERY_STEP = [
    "depth=1", "data=shapes", "data.val_size=16", "data.test_size=16", "model.width=4",
    "trainer.log_every_n_steps=1", "monitor.every_n_steps=1",
]  # fmt: skip
# 5 epochs x 128 steps: slowed (tests.helpers.slowed_env) it outlasts a server restart, unslowed it takes
# seconds.
LONG = [*EVERY_STEP, "data.train_size=512", "data.batch_size=4", "trainer.max_epochs=5"]
STEPS = 5 * 128


@pytest.fixture(scope="module")
def pg_server(postgres: str, tmp_path_factory: pytest.TempPathFactory):
    """Yield a TrackingServer whose store is the PostgreSQL database and whose artifacts it serves."""
    server = TrackingServer(tmp_path_factory.mktemp("pg-mlflow"), "--backend-store-uri", postgres)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def points_written(job_dir: Path) -> int:
    """Return how many metric points the job's writer says the store accepted (its last count)."""
    counts = re.findall(r"(\d+) metric points written to MLflow", (job_dir / "train.log").read_text())
    assert counts, f"no count in {job_dir / 'train.log'}"
    return int(counts[-1])


def points_read(uri: str, run_id: str) -> int:
    """Return how many metric points the store holds for a run (every key's whole history but MLflow's
    own `system/*` samples and the job's `summary/*` at its end, which the job's writer does not write)."""
    return sum(len(h) for h in metric_histories(uri, run_id, skip=("system/", SUMMARY)).values())


def test_eight_concurrent_jobs_lose_no_point_and_artifacts_go_through_the_server(pg_server, tmp_path):
    seeds = ",".join(str(s) for s in range(8))
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=8", f"seed={seeds}", *EVERY_STEP]
    args += ["data.train_size=64", "data.batch_size=8", "trainer.max_epochs=2"]
    args += [f"tracking.uri={pg_server.url}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    start = time.monotonic()
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=None, timeout=600)
    print(f"\n8 concurrent jobs into the PostgreSQL-backed server: {time.monotonic() - start:.0f} s")
    assert result.returncode == 0, result.stderr[-4000:]

    client = MlflowClient(pg_server.url)
    experiment = client.get_experiment_by_name("actstudy")
    assert experiment.artifact_location.startswith("mlflow-artifacts:/")  # the server's, not a path
    runs = client.search_runs([experiment.experiment_id])
    jobs = [r for r in runs if r.data.tags.get("actstudy.kind") == "job"]
    assert len(jobs) == 8 and {r.info.status for r in jobs} == {"FINISHED"}
    written = read = 0
    for run in jobs:
        job_written = points_written(Path(run.data.tags["actstudy.output_dir"]))
        job_read = points_read(pg_server.url, run.info.run_id)
        assert job_read == job_written, run.info.run_name
        written, read = written + job_written, read + job_read
        steps = [step for step, _ in metric_histories(pg_server.url, run.info.run_id)["train/loss"]]
        assert steps == list(range(16))  # 2 epochs x 8 steps, each once
        # the job uploaded its config through the server into the server's artifact folder
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
        uploaded = pg_server.artifacts / experiment.experiment_id / run.info.run_id / "artifacts"
        assert (uploaded / "config" / "config.yaml").is_file()
    print(f"PostgreSQL: 8 jobs, {written} metric points written, {read} read back")
    (parent,) = [r for r in runs if r.data.tags.get("actstudy.kind") == "sweep"]
    uploaded = pg_server.artifacts / experiment.experiment_id / parent.info.run_id / "artifacts"
    assert (uploaded / "report" / "report.html").is_file()


def start_slow_job(tmp_path: Path, url: str, *extra: str) -> tuple[subprocess.Popen, Path]:
    """Start the LONG job, slowed while `tmp_path/slow` exists; return the process and its folder."""
    env = slowed_env(tmp_path, 0.1)
    job_dir = tmp_path / "run"
    args = [*LONG, f"tracking.uri={url}", f"hydra.run.dir={job_dir}", *extra]
    with open(tmp_path / "stderr.txt", "w") as stderr:  # a file, not a pipe nobody reads while it runs
        proc = subprocess.Popen(
            [sys.executable, "-m", "actstudy.train", *args], cwd=tmp_path, env=env,
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    return proc, job_dir


def wait_for_points(proc: subprocess.Popen, job_dir: Path, url: str) -> str:
    """Wait until the job's run holds metric points; return its run id."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, (job_dir.parent / "stderr.txt").read_text()[-4000:]
        state = job_dir / "actstudy_run.json"
        run_id = json.loads(state.read_text())["run_id"] if state.exists() else None
        if run_id and MlflowClient(url).get_run(run_id).data.metrics:
            return run_id
        time.sleep(0.5)
    pytest.fail("the job logged no metric within 300 s")


def test_a_job_continues_across_a_server_restart(pg_server, tmp_path):
    proc, job_dir = start_slow_job(tmp_path, pg_server.url)
    try:
        run_id = wait_for_points(proc, job_dir, pg_server.url)
        before = points_read(pg_server.url, run_id)
        down = time.monotonic()
        pg_server.stop()
        time.sleep(3)  # the job trains on and its writer retries against a closed port
        pg_server.start()
        down_s = time.monotonic() - down
        assert proc.poll() is None, "the job ended before the server came back: not a mid-run restart"
        (tmp_path / "slow").unlink()  # let it finish
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 0, stderr[-4000:]
    log = (job_dir / "train.log").read_text()
    assert "MLflow tracking server not answering ([Errno 111] Connection refused)" in log
    waited = re.findall(r"MLflow tracking server answered again after ([\d.]+) s", log)
    assert waited, log[-3000:]
    run = MlflowClient(pg_server.url).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["actstudy.outcome"] == "completed"
    written, read = points_written(job_dir), points_read(pg_server.url, run_id)
    steps = [step for step, _ in metric_histories(pg_server.url, run_id)["train/loss"]]
    print(
        f"\nserver restart: down {down_s:.1f} s (stop to /health), writer waited {max(map(float, waited))} s;"
        f" {before} points in the store at the stop; {written} written, {read} read back; {run.info.status}"
    )
    assert read == written and steps == list(range(STEPS))


def test_a_server_down_longer_than_the_limit_fails_the_job_with_one_line(pg_server, tmp_path):
    proc, job_dir = start_slow_job(tmp_path, pg_server.url, "tracking.server_wait_s=5")
    try:
        run_id = wait_for_points(proc, job_dir, pg_server.url)
        pg_server.stop()
        start = time.monotonic()
        proc.wait(timeout=120)
        print(
            f"\nserver down for good: the job exited {proc.returncode} after {time.monotonic() - start:.0f} s"
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        pg_server.start()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 1, stderr[-4000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"actstudy: error: job {job_dir.name} failed: "), last
    down = re.search(f"the MLflow tracking server at {pg_server.url} did not answer for (\\d+) s", last)
    assert down and int(down.group(1)) >= 5, last
    assert "tracking.server_wait_s=5" in last and "re-run the same command to resume" in last
    state = json.loads((job_dir / "actstudy_run.json").read_text())
    assert state["run_id"] == run_id and state["outcome"] == "failed"
    assert "its MLflow run could not be ended" in state["error"]
    # the store never heard the end: the run shows RUNNING until `runs repair` (its process is gone)
    assert MlflowClient(pg_server.url).get_run(run_id).info.status == "RUNNING"
    repair = run_cli("actstudy.runs", ["repair"], cwd=tmp_path, uri=pg_server.url, timeout=120)
    assert repair.returncode == 0, repair.stderr
    assert MlflowClient(pg_server.url).get_run(run_id).info.status == "FAILED"
