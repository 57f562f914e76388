"""Nothing lost under kill -9, Ctrl-C, divergence, failing jobs and concurrent writers; runs repeat."""

from __future__ import annotations

import json
import multiprocessing
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY, assert_same_histories, fault_env, metric_histories, run_cli

# Long enough (5 epochs x 32 steps) to be killed mid-training after its first checkpoint.
SLOW = [
    "data=shapes", "data.train_size=512", "data.val_size=32", "data.test_size=32", "data.batch_size=16",
    "model.width=16", "depth=3", "trainer.max_epochs=5", "trainer.log_every_n_steps=2",
    "monitor.every_n_steps=4",
]  # fmt: skip
NAME = "relu-d3-s0"


def job_dir(cwd: Path) -> Path:
    """Return the output folder of the SLOW job run from `cwd`."""
    return next((cwd / "outputs").glob(f"{NAME}-*"))


def start(cwd: Path, uri: str) -> subprocess.Popen:
    import os

    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return subprocess.Popen(
        [sys.executable, "-m", "actstudy.train", *SLOW], cwd=cwd, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_checkpoint(proc: subprocess.Popen, cwd: Path, timeout: float = 300) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        ckpts = list((cwd / "outputs").glob(f"{NAME}-*/checkpoints/*/last.ckpt"))
        if ckpts:
            return ckpts[0]
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    raise TimeoutError("no checkpoint appeared")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """Two uninterrupted runs of the SLOW job with the same seed, in separate stores."""
    runs = []
    for i in range(2):
        cwd = tmp_path_factory.mktemp(f"reference{i}")
        uri = f"sqlite:///{cwd / 'mlflow.db'}"
        result = run_cli("actstudy.train", SLOW, cwd=cwd, uri=uri)
        assert result.returncode == 0, result.stderr[-3000:]
        client = MlflowClient(uri)
        run = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])[0]
        runs.append(metric_histories(uri, run.info.run_id))
    return {"a": runs[0], "b": runs[1]}


@pytest.mark.slow
def test_same_seed_gives_identical_logged_losses(reference):
    assert reference["a"]["train/loss"] == reference["b"]["train/loss"]
    assert reference["a"]["val/acc"] == reference["b"]["val/acc"]
    assert len(reference["a"]["train/loss"]) >= 70


@pytest.mark.slow
def test_kill_9_then_rerun_continues_the_same_run_without_duplicates(tmp_path: Path, reference):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = start(tmp_path, uri)
    wait_for_checkpoint(proc, tmp_path)
    time.sleep(0.5)  # into the next epoch
    proc.kill()
    proc.wait()
    state = json.loads((job_dir(tmp_path) / "actstudy_run.json").read_text())
    client = MlflowClient(uri)
    assert client.get_run(state["run_id"]).info.status == "RUNNING"  # what a dead process leaves behind

    repaired = run_cli("actstudy.runs", ["repair", "--tracking-uri", uri], cwd=tmp_path, uri=None)
    assert repaired.returncode == 0 and NAME in repaired.stdout, repaired.stdout + repaired.stderr
    run = client.get_run(state["run_id"])
    assert (run.info.status, run.data.tags["actstudy.outcome"]) == ("FAILED", "interrupted")

    result = run_cli("actstudy.train", SLOW, cwd=tmp_path, uri=uri)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((job_dir(tmp_path) / "actstudy_run.json").read_text())["run_id"] == state["run_id"]
    run = client.get_run(state["run_id"])
    assert (run.info.status, run.data.tags["actstudy.outcome"]) == ("FINISHED", "completed")
    assert "actstudy.error" not in run.data.tags  # the repair's "its process died" went with the resume
    assert len(client.search_runs([run.info.experiment_id])) == 1  # no second run was created
    assert_same_histories(metric_histories(uri, state["run_id"]), reference["a"])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_saves_a_checkpoint_ends_the_run_killed_and_resumes_exactly(
    tmp_path: Path, reference, signum
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = start(tmp_path, uri)
    checkpoint = wait_for_checkpoint(proc, tmp_path)
    first_checkpoint_time = checkpoint.stat().st_mtime
    time.sleep(0.5)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted" in stderr and "resume" in stderr
    state = json.loads((job_dir(tmp_path) / "actstudy_run.json").read_text())
    run = MlflowClient(uri).get_run(state["run_id"])
    assert (run.info.status, run.data.tags["actstudy.outcome"]) == ("KILLED", "interrupted")
    assert checkpoint.stat().st_mtime > first_checkpoint_time  # saved at the interruption

    result = run_cli("actstudy.train", SLOW, cwd=tmp_path, uri=uri)  # resume
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    assert client.get_run(state["run_id"]).info.status == "FINISHED"
    assert_same_histories(metric_histories(uri, state["run_id"]), reference["a"])


def test_ctrl_c_stops_a_run_whose_epochs_are_one_batch_long(tmp_path: Path):
    """The stop waits for the end of an epoch's last batch; with one-batch epochs that is every batch."""
    import os

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*TINY, "data.train_size=16", "trainer.max_epochs=100000", "monitor.enabled=false"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.Popen(
        [sys.executable, "-m", "actstudy.train", *args], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.time() + 120
    while not list((tmp_path / "outputs").glob("*/checkpoints/*/last.ckpt")):
        assert proc.poll() is None and time.time() < deadline, (
            proc.stderr.read() if proc.poll() else "no ckpt"
        )
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])
    assert (run.info.status, run.data.tags["actstudy.outcome"]) == ("KILLED", "interrupted")
    val_steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")]
    train_steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert len(val_steps) == len(set(val_steps)) and max(train_steps) < 100000  # stopped, each epoch whole


def _popen(args: list[str], cwd: Path, uri: str) -> subprocess.Popen:
    import os

    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    return subprocess.Popen(
        [sys.executable, "-m", "actstudy.train", *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_for_run(proc: subprocess.Popen, cwd: Path, timeout: float = 120) -> dict:
    """Return the first job state file that names a run, as soon as it exists."""
    deadline = time.time() + timeout
    while True:
        for path in cwd.rglob("actstudy_run.json"):
            state = json.loads(path.read_text())
            if state.get("run_id"):
                return state
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "no run"
        time.sleep(0.02)


def test_sigterm_as_soon_as_the_run_exists_ends_it_interrupted(tmp_path: Path):
    """The signal comes while the model and trainer are built, before training handles signals itself."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _popen(TINY, tmp_path, uri)
    state = _wait_for_run(proc, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr[-3000:]
    run = MlflowClient(uri).get_run(state["run_id"])
    assert (run.info.status, run.data.tags["actstudy.outcome"]) == ("KILLED", "interrupted")


def test_runs_repair_ends_a_dead_sweep_and_its_dead_job(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "seed=0,1", *TINY, "data.train_size=4096", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = _popen(args, tmp_path, uri)
    _wait_for_run(proc, tmp_path)
    proc.kill()
    proc.wait()
    repaired = run_cli("actstudy.runs", ["repair", "--tracking-uri", uri], cwd=tmp_path, uri=None)
    assert repaired.returncode == 0 and "ended 2 run(s)" in repaired.stdout, repaired.stdout + repaired.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])
    tags = [(r.data.tags["actstudy.kind"], r.info.status, r.data.tags["actstudy.outcome"]) for r in runs]
    ended = sorted(tags)
    assert ended == [("job", "FAILED", "interrupted"), ("sweep", "FAILED", "interrupted")]


def test_a_diverging_job_ends_diverged_and_the_sweep_goes_on(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "optimizer.lr=0.1,1e9,0.05", *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri, ACTSTUDY_NO_REPORT="1")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("actstudy").experiment_id], "tags.`actstudy.kind` = 'job'"
    )
    outcomes = {r.data.params["optimizer.lr"]: r for r in runs}
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 3
    diverged = outcomes["1000000000.0"]
    assert diverged.data.tags["actstudy.outcome"] == "diverged"
    assert int(diverged.data.tags["actstudy.diverged_step"]) >= 0
    assert "test/acc" not in diverged.data.metrics  # no test on a NaN model
    for lr in ("0.1", "0.05"):
        assert outcomes[lr].data.tags["actstudy.outcome"] == "completed"
        assert "test/acc" in outcomes[lr].data.metrics


def test_a_failing_job_is_failed_the_rest_run_and_the_sweep_exits_non_zero(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "optimizer.lr=0.05,0.1", *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = fault_env(tmp_path, rank=0, step=1)
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri, ACTSTUDY_NO_REPORT="1", **env)
    assert result.returncode == 1
    assert "failed job" in result.stderr and "optimizer.lr=0.05" in result.stderr
    assert "injected fault on rank 0" in result.stderr
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])
    by_lr = {r.data.params.get("optimizer.lr"): r for r in runs}
    failed, ok = by_lr["0.05"], by_lr["0.1"]
    assert failed.info.status == "FAILED" and failed.data.tags["actstudy.outcome"] == "failed"
    assert failed.data.tags["actstudy.error"] == "RuntimeError: injected fault on rank 0"
    assert ok.info.status == "FINISHED" and "test/acc" in ok.data.metrics
    parent = next(r for r in runs if r.data.tags.get("actstudy.kind") == "sweep")
    assert parent.info.status == "FAILED"


def _write_points(uri: str, worker: int, steps: int, keys: int) -> None:
    from actstudy.tracking import store as tracking
    from actstudy.tracking.logger import MlflowRunLogger

    client = tracking.open_client(uri)
    experiment = tracking.experiment_id(client, "concurrency")
    run_id = client.create_run(experiment, run_name=f"writer-{worker}").info.run_id
    logger = MlflowRunLogger(client, run_id)
    for step in range(steps):
        logger.log_metrics({f"m/{k:02d}": step * 0.5 + k for k in range(keys)}, step=step)
    logger.finalize("success")
    tracking.end_run(client, run_id, "completed")


def test_four_concurrent_writers_lose_no_point(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a brand-new store: creation races too
    steps, keys, workers = 150, 20, 4
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_points, args=(uri, w, steps, keys)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("concurrency").experiment_id])
    assert len(runs) == workers and {r.info.status for r in runs} == {"FINISHED"}
    read_back = sum(
        len(client.get_metric_history(r.info.run_id, f"m/{k:02d}")) for r in runs for k in range(keys)
    )
    assert read_back == steps * keys * workers
    print(f"concurrency: {workers} writers, {steps * keys * workers} points written, {read_back} read back")


@pytest.mark.slow
def test_four_parallel_sweep_jobs_share_one_sqlite_store(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "activation=sigmoid,tanh,relu,elu",
        *TINY, f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]  # fmt: skip
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri, ACTSTUDY_NO_REPORT="1")
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("actstudy").experiment_id
    jobs = client.search_runs([exp], "tags.`actstudy.kind` = 'job'")
    assert len(jobs) == 4 and {r.info.status for r in jobs} == {"FINISHED"}
    counts = {len(client.get_metric_history(r.info.run_id, "grad/first_to_last")) for r in jobs}
    assert counts == {4}  # steps 0, 2, 4, 6 of 8: every monitored step of every job is there
