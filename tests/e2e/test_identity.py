"""A job is its config, a sweep is its command: nothing continues under another config or store, nothing
finished is retrained or deleted, and two copies of one job never train into one folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.helpers import TINY, fault_env, run_cli
from tests.helpers.monitor import config_dict


def _runs(uri: str, kind: str = "job") -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("actstudy")
    return client.search_runs([exp.experiment_id], f"tags.`actstudy.kind` = '{kind}'") if exp else []


def test_the_fingerprint_follows_what_is_trained_and_nothing_else():
    from actstudy.config.identity import command_overrides, job_fingerprint, job_folder, sweep_fingerprint

    base = config_dict("data=shapes")
    assert job_fingerprint(base) == job_fingerprint(config_dict("data=shapes"))
    for changed in (
        "data.batch_size=64",
        "trainer.devices=2",
        "monitor.every_n_steps=10",
        "model.init=xavier",
    ):
        assert job_fingerprint(config_dict("data=shapes", changed)) != job_fingerprint(base), changed
    for same in ("tracking.uri=sqlite:///x.db", "trainer.progress=none", "resume=false"):
        assert job_fingerprint(config_dict("data=shapes", same)) == job_fingerprint(base), same
    cifar = job_fingerprint(config_dict("data=cifar10"))  # shapes reads no files: it has no data.root
    assert job_fingerprint(config_dict("data=cifar10", "data.root=/tmp")) == cifar
    assert job_folder(base) == f"relu-d4-s0-{job_fingerprint(base)[:8]}"
    assert sweep_fingerprint(["a=1,2", "b=3"]) == sweep_fingerprint(["b=3", "a=1,2"])
    assert command_overrides(["-m", "a=1,2", "hydra/launcher=slurm", "hydra.launcher.n_jobs=2"]) == ["a=1,2"]
    # re-running a sweep with resume=, another store or progress display is the same sweep
    unchanged = [
        "a=1,2",
        "resume=true",
        "tracking.uri=sqlite:///b.db",
        "trainer.progress=log",
        "+data.root=/x",
    ]
    assert command_overrides(unchanged) == ["a=1,2"]


def test_another_config_gets_its_own_folder_and_run(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for extra in (
        [],
        ["experiment=nielsen"],
    ):  # the preset was once left out of the folder name
        result = run_cli("actstudy.train", [*TINY, *extra], cwd=tmp_path, uri=uri)
        assert result.returncode == 0, result.stderr[-3000:]
    runs = _runs(uri)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["actstudy.fingerprint"] for r in runs}) == 2
    assert len(list((tmp_path / "outputs").iterdir())) == 2


def test_a_finished_job_is_kept_and_resume_false_adds_a_run_without_deleting_anything(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    nothing = run_cli("actstudy.train", [*TINY, "resume=true"], cwd=tmp_path, uri=uri)
    assert nothing.returncode == 2 and nothing.stderr.strip().startswith(
        "actstudy: error: resume=true but there is no unfinished run of this config with a checkpoint in"
    )
    assert not (tmp_path / "mlflow.db").exists()
    first = run_cli("actstudy.train", TINY, cwd=tmp_path, uri=uri)
    assert first.returncode == 0, first.stderr[-3000:]
    (run,) = _runs(uri)
    again = run_cli("actstudy.train", TINY, cwd=tmp_path, uri=uri)
    assert again.returncode == 0 and "finished already" in again.stderr
    assert [r.info.run_id for r in _runs(uri)] == [run.info.run_id]  # kept, not trained again
    assert MlflowClient(uri).get_run(run.info.run_id).info.end_time == run.info.end_time
    checkpoints = list((tmp_path / "outputs").glob("*/checkpoints/*/last.ckpt"))
    fresh = run_cli("actstudy.train", [*TINY, "resume=false"], cwd=tmp_path, uri=uri)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert len(_runs(uri)) == 2
    assert all(c.exists() for c in checkpoints)  # the finished run's checkpoints are still there
    assert len(list((tmp_path / "outputs").glob("*/checkpoints/*/last.ckpt"))) == 2
    refused = run_cli("actstudy.train", [*TINY, "resume=true"], cwd=tmp_path, uri=uri)
    assert refused.returncode == 2 and "resume=true but this job's run" in refused.stderr


def test_an_unfinished_run_in_another_store_is_left_alone_and_the_job_starts_a_run_here(tmp_path: Path):
    first_uri, second_uri = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    job = [*TINY, "optimizer.lr=0.05"]
    failed = run_cli(
        "actstudy.train", job, cwd=tmp_path, uri=first_uri, **fault_env(tmp_path, rank=0, step=5)
    )
    assert failed.returncode == 1, failed.stderr[-3000:]  # failed after its first checkpoint: resumable
    assert list((tmp_path / "outputs").rglob("last.ckpt"))
    result = run_cli("actstudy.train", job, cwd=tmp_path, uri=second_uri)  # MLFLOW_TRACKING_URI changed
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r.info.status for r in _runs(first_uri)] == ["FAILED"]  # untouched
    assert [r.info.status for r in _runs(second_uri)] == ["FINISHED"]


# Holds the first command at its second training step until the test creates the file RELEASE names, so
# the second command always meets a running job however fast the first one trains.
_GATE = """
import os, time
if "RELEASE" in os.environ:
    from actstudy.training import module

    original_step = module.ClassifierModule.training_step

    def training_step(self, batch, idx):
        deadline = time.monotonic() + 120
        while self.global_step == 1 and not os.path.exists(os.environ["RELEASE"]):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return original_step(self, batch, idx)

    module.ClassifierModule.training_step = training_step
"""


def test_a_second_identical_command_stops_at_once_naming_the_first(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / "sitecustomize.py").write_text(_GATE)
    release = tmp_path / "release"
    pythonpath = os.pathsep.join([str(tmp_path / "gate"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": pythonpath, "RELEASE": str(release)}
    first = subprocess.Popen(
        [sys.executable, "-m", "actstudy.train", *TINY], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / "outputs").glob("*/.actstudy.lock")) or not _lock_holder(tmp_path):
            assert first.poll() is None and time.monotonic() < deadline, "the first never took its folder"
            time.sleep(0.05)
        second = run_cli("actstudy.train", TINY, cwd=tmp_path, uri=uri, timeout=60)
    finally:
        release.touch()
    assert second.returncode == 2
    assert second.stderr.strip().endswith(f"is already running (pid {first.pid} on {os.uname().nodename}); "
                                          "wait for it or stop it first")  # fmt: skip
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    assert [r.info.status for r in _runs(uri)] == ["FINISHED"]  # one run, one set of checkpoints
    assert len(list((tmp_path / "outputs").glob("*/checkpoints/*"))) == 1


def _lock_holder(tmp_path: Path) -> str:
    return next((tmp_path / "outputs").glob("*/.actstudy.lock")).read_text()


def test_rerunning_a_sweep_keeps_its_finished_jobs_and_runs_the_rest_under_the_same_parent(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "optimizer.lr=0.05,0.1", *TINY]  # no hydra.sweep.dir: the command names the sweep's folder
    failing = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri, **fault_env(tmp_path, rank=0, step=1))
    assert failing.returncode == 1, failing.stderr[-3000:]
    kept = {r.data.params["optimizer.lr"]: r for r in _runs(uri)}["0.1"]

    again = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 completed" in again.stderr
    (parent,) = _runs(uri, "sweep")
    assert parent.info.status == "FINISHED" and "actstudy.error" not in parent.data.tags
    # the default folder's sweep id starts with "sweep-": the name is the id (was "sweep-sweep-...")
    assert (
        parent.info.run_name == parent.data.tags["actstudy.sweep_id"]
        and parent.info.run_name.count("sweep-") == 1
    )
    jobs = _runs(uri)
    by_lr = {}
    for r in jobs:
        by_lr.setdefault(r.data.params["optimizer.lr"], []).append(r)
    assert [r.info.run_id for r in by_lr["0.1"]] == [kept.info.run_id]  # not trained again
    assert sorted(r.info.status for r in by_lr["0.05"]) == ["FAILED", "FINISHED"]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert len(list((tmp_path / "multirun").iterdir())) == 1  # the same command, the same sweep folder
    report = next((tmp_path / "multirun").glob("sweep-*/report/report.md")).read_text()
    assert "0.05" in report and "0.1" in report
