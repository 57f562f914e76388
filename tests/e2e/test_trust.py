"""A results folder is data, not code: nothing read from a job folder may run code on a re-run."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from actstudy.paths import PROJECT_ROOT
from tests.helpers import TINY, run_cli, slowed_env

JOB = [*TINY, "depth=1", "activation=relu", "trainer.max_epochs=1"]


class RunsACommand:
    """Pickles as a call of os.system: what a planted checkpoint would carry."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_planted_checkpoint_is_refused_in_one_line_and_runs_nothing(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_cli("actstudy.train", JOB, cwd=tmp_path, uri=uri)
    assert done.returncode == 0, done.stderr[-3000:]
    job = next((tmp_path / "outputs").glob("relu-d1-s0-*"))
    state_file = job / "actstudy_run.json"
    state = json.loads(state_file.read_text())
    checkpoint = job / "checkpoints" / state["run_id"][:12] / "last.ckpt"
    # the job's own checkpoint is tensors and plain data: a weights-only load (Lightning's, and ours) reads it
    assert torch.load(checkpoint, map_location="cpu", weights_only=True)["actstudy"]["fingerprint"]

    marker = tmp_path / "code-ran"
    torch.save({"actstudy": RunsACommand(f"touch {marker}")}, checkpoint)
    state_file.write_text(json.dumps(state | {"outcome": "interrupted"}))  # as a stopped run leaves it
    again = run_cli("actstudy.train", JOB, cwd=tmp_path, uri=uri)
    assert not marker.exists(), "loading the checkpoint ran its code"
    assert again.returncode == 2
    assert again.stderr.strip() == (
        f"actstudy: error: {checkpoint} holds more than tensors and plain data (posix.system): it was "
        "not loaded, since loading it could run code; move it away (the job then starts a new run) or "
        "resume=false"
    )
    assert json.loads(state_file.read_text())["outcome"] == "interrupted"  # the record is untouched

    fresh = run_cli("actstudy.train", [*JOB, "resume=false"], cwd=tmp_path, uri=uri)  # never reads it
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert not marker.exists()


def test_a_damaged_state_file_stops_the_job_in_one_line_instead_of_training_it_again(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert run_cli("actstudy.train", JOB, cwd=tmp_path, uri=uri).returncode == 0
    state_file = next((tmp_path / "outputs").glob("relu-d1-s0-*")) / "actstudy_run.json"
    damaged = state_file.read_text()[: len(state_file.read_text()) // 2]
    state_file.write_text(damaged)  # e.g. a disk that filled while it was written by another tool
    again = run_cli("actstudy.train", JOB, cwd=tmp_path, uri=uri)
    assert again.returncode == 2
    assert again.stderr.strip().startswith(f"actstudy: error: {state_file} is damaged (")
    assert again.stderr.strip().endswith(
        "cannot tell whether this job finished; move it away to train the job as a new run (or resume=false)"
    )
    client = MlflowClient(uri)
    assert len(client.search_runs([client.get_experiment_by_name("actstudy").experiment_id])) == 1
    assert state_file.read_text() == damaged  # left for the user to look at


def test_a_damaged_store_is_one_line_and_exit_2_before_anything_runs(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert run_cli("actstudy.train", JOB, cwd=tmp_path, uri=uri).returncode == 0
    db = tmp_path / "mlflow.db"
    os.truncate(db, db.stat().st_size // 2)  # half the store lost
    sweep = ["-m", *JOB, "seed=0,1"]
    again = run_cli("actstudy.train", sweep, cwd=tmp_path, uri=uri, timeout=120)  # MLflow: 101 s per open
    assert again.returncode == 2, again.stderr[-2000:]
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith(f"actstudy: error: the MLflow store {db} is damaged (")
    assert line.endswith("restore it from a backup, or point tracking.uri at another file")
    assert not (tmp_path / "multirun").exists()  # no sweep folder, no job


def test_a_damaged_store_template_is_made_again_not_copied(tmp_path: Path, monkeypatch):
    from actstudy.tracking import store, store_template

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    store.open_client(f"sqlite:///{tmp_path / 'first.db'}")  # makes the template
    template = store_template.template_path()
    data = bytearray(template.read_bytes())
    data[4096 : 4096 * 3] = b"\xff" * 8192  # two garbage pages; the header is intact
    template.write_bytes(bytes(data))
    assert _quick_check(template) != "ok"

    client = store.open_client(f"sqlite:///{tmp_path / 'second.db'}")
    experiment = store.experiment_id(client, "e")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "m", 1.0, step=0)  # the first write the damaged copy failed
    assert client.get_metric_history(run.info.run_id, "m")[0].value == 1.0
    assert _quick_check(template) == "ok"  # made again


def _quick_check(path: Path) -> str:
    """Return SQLite's own quick integrity check of `path` ("ok", or what it found)."""
    import sqlite3

    try:
        with sqlite3.connect(path) as con:
            return " ".join(row[0] for row in con.execute("PRAGMA quick_check"))
    except sqlite3.DatabaseError as exc:
        return str(exc)


PASSWORD = "pw-5e1b0c"
SERVER_SCRIPT = PROJECT_ROOT / "scripts" / "mlflow_server.sh"


def test_a_password_in_a_uri_is_redacted_wherever_it_is_written():
    from actstudy.credentials import redact, restore

    assert (
        redact(f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow") == "postgresql://mlflow:***@db:5432/mlflow"
    )
    assert redact(f"http://admin:{PASSWORD}@host:5000") == "http://admin:***@host:5000"
    assert (
        redact(f"postgresql://db/mlflow?user=u&password={PASSWORD}")
        == "postgresql://db/mlflow?user=u&password=***"
    )
    assert (
        redact(f"error at postgresql://u:{PASSWORD}@db/x: refused")
        == "error at postgresql://u:***@db/x: refused"
    )
    # as SQLAlchemy reads them: a user name with '@' (Azure), a password with '/'
    assert redact(f"postgresql://me@srv:{PASSWORD}@db/x") == "postgresql://me@srv:***@db/x"
    assert redact("postgresql://u:pa/ss@db/x") == "postgresql://u:***@db/x"
    for plain in ("sqlite:////tmp/a:b/mlflow.db", "http://127.0.0.1:5000", "postgresql://u@db:5432/mlflow"):
        assert redact(plain) == plain
    # a recorded URI opens again as the environment's, whose password it stands for
    os.environ["MLFLOW_TRACKING_URI"], saved = (
        f"postgresql://u:{PASSWORD}@db/x",
        os.environ.get("MLFLOW_TRACKING_URI"),
    )
    try:
        assert restore("postgresql://u:***@db/x") == f"postgresql://u:{PASSWORD}@db/x"
        assert restore("sqlite:///other.db") == "sqlite:///other.db"
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def test_a_password_on_a_command_line_or_in_the_config_is_refused_in_one_line(tmp_path: Path):
    uri = f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow"
    commands = [
        ("actstudy.train", [*JOB, f"tracking.uri={uri}"]),
        ("actstudy.report", ["--tracking-uri", uri]),
        ("actstudy.runs", ["repair", f"--tracking-uri={uri}"]),
        ("actstudy.runs", ["list", "--tracking-uri", uri]),
    ]
    for module, args in commands:
        result = run_cli(module, args, cwd=tmp_path, uri=None)
        assert result.returncode == 2, (module, result.stderr[-2000:])
        (line,) = result.stderr.strip().splitlines()
        assert "postgresql://mlflow:***@db:5432/mlflow" in line and "MLFLOW_TRACKING_URI" in line, line
        assert PASSWORD not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []  # refused before Hydra made a job folder
    # a config file is recorded too (params, config.yaml): the schema refuses it there
    from actstudy.config.schema import ConfigError, TrackingConfig

    try:
        TrackingConfig(uri=uri).check()
    except ConfigError as exc:
        assert "tracking.uri=postgresql://mlflow:***@db" in str(exc) and PASSWORD not in str(exc)
    else:
        raise AssertionError("a password in tracking.uri was accepted")


def test_the_server_script_takes_no_password_on_its_command_line(tmp_path: Path):
    def start(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SERVER_SCRIPT), "start", "--dir", str(tmp_path / "server"), *options],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    uri = f"postgresql://mlflow:{PASSWORD}@db:5432/mlflow"
    refused = start("--backend-store-uri", uri)
    assert refused.returncode == 2 and PASSWORD not in refused.stdout + refused.stderr
    assert (
        "postgresql://mlflow:***@db:5432/mlflow" in refused.stderr
        and "--backend-store-uri-file" in refused.stderr
    )
    shared = tmp_path / "store-uri"
    shared.write_text(uri)
    shared.chmod(0o644)
    readable = start("--backend-store-uri-file", str(shared))
    assert readable.returncode == 2 and f"{shared} is readable by others (mode 644)" in readable.stderr
    assert not (tmp_path / "server").exists()  # nothing started


def test_a_job_begun_anew_is_one_row_of_the_report_not_two(tmp_path: Path):
    """After a kill -9 in a job's start-up its re-run begins a new run: the dead attempt is no second row
    (was: "runs: 5" for a 4-job sweep)."""
    from actstudy import outcomes
    from actstudy.report.collect import collect_sweep
    from actstudy.tracking.store import open_client

    client = open_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("trust")
    parent = client.create_run(experiment, tags={outcomes.KIND: outcomes.KIND_SWEEP, outcomes.SWEEP_ID: "s"})
    parent_id = parent.info.run_id

    def job(folder: str, start_time: int) -> str:
        tags = {outcomes.KIND: outcomes.KIND_JOB, outcomes.PARENT: parent_id, outcomes.OUTPUT_DIR: folder}
        return client.create_run(experiment, start_time=start_time, tags=tags).info.run_id

    dead = job("/sweep/relu-d1-s0-a", 1_000)
    again = job("/sweep/relu-d1-s0-a", 2_000)
    other = job("/sweep/relu-d1-s1-b", 1_500)
    runs = collect_sweep(client, parent_id).runs
    assert sorted(r.tags[outcomes.OUTPUT_DIR] for r in runs) == ["/sweep/relu-d1-s0-a", "/sweep/relu-d1-s1-b"]
    kept = {client.get_run(i).info.run_name for i in (again, other)}
    assert {r.name for r in runs} == kept and client.get_run(dead).info.run_name not in kept


@pytest.fixture
def small_disk(tmp_path: Path):
    """Yield a 4 MiB tmpfs mounted for the test (the job's folder goes there, the store does not)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"a tmpfs mount is needed in CI: {mounted.stderr[-300:]!r}")
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_ends_the_run_in_one_line_leaving_no_partial_file(tmp_path: Path, small_disk: Path):
    env = slowed_env(tmp_path, 0.05) | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    slow = tmp_path / "slow"
    job = small_disk / "run"
    args = [*TINY, "depth=2", "trainer.max_epochs=3", "data.train_size=256", f"hydra.run.dir={job}"]
    command = [sys.executable, "-m", "actstudy.train", *args]
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + 300
        while not list(job.glob("checkpoints/*/last.ckpt")):  # the first epoch's checkpoint is written
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "err.txt").read_text()
            time.sleep(0.2)
        # the disk is full from here on
        with open(small_disk / "filler", "wb") as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        slow.unlink()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    printed = (tmp_path / "out.txt").read_text() + (tmp_path / "err.txt").read_text()
    assert proc.returncode == 1, printed[-4000:]
    assert "Traceback" not in printed and "--- Logging error ---" not in printed, printed[-4000:]
    errors = [line for line in printed.splitlines() if line.startswith("actstudy: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], printed[-3000:]
    # nothing half-written: no temporary file, and every checkpoint reads whole
    assert not [p for p in job.rglob("*") if ".tmp" in p.name], sorted(job.rglob("*"))
    for checkpoint in job.rglob("*.ckpt"):
        torch.load(checkpoint, map_location="cpu", weights_only=True)
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(env["MLFLOW_TRACKING_URI"]).search_runs(["1"])
    assert run.info.status == "FAILED" and run.data.tags["actstudy.outcome"] == "failed"
    assert "\n" not in run.data.tags["actstudy.error"] and "No space left" in run.data.tags["actstudy.error"]
    # with room again, the same command continues that run from its last checkpoint to the end
    (small_disk / "filler").unlink()
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    (done,) = MlflowClient(env["MLFLOW_TRACKING_URI"]).search_runs(["1"])
    assert done.info.run_id == run.info.run_id and done.info.status == "FINISHED"
