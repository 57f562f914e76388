"""Sweeps on the local SLURM cluster through `hydra/launcher=slurm`: a 2 x 2 job array, and a job that
SLURM requeues mid-training (scontrol requeue, or submitit's USR2 timeout signal) and resumes its run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TINY, assert_same_histories, metric_histories, run_cli

pytestmark = pytest.mark.slurm
SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1"]


def _sh(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def _sacct_states(job_id: str, want_last: str, timeout: float = 30) -> list[str]:
    """Return every state sacct records for `job_id`, requeued attempts included (`-D`), oldest first."""
    deadline = time.monotonic() + timeout
    while True:
        lines = _sh("sacct", "-D", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,State").splitlines()
        states = [line.split("|")[1] for line in lines if line]
        if (states and states[-1] == want_last) or time.monotonic() > deadline:
            return states
        time.sleep(0.5)  # sacct lags behind the job a little


def _runs(client: MlflowClient) -> list:
    exp = client.get_experiment_by_name("actstudy")
    return client.search_runs([exp.experiment_id]) if exp else []


def test_slurm_sweep_2x2_runs_as_a_job_array(slurm_cluster, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "multirun"
    start = time.monotonic()
    result = run_cli(
        "actstudy.train",
        ["-m", *SLURM, "activation=sigmoid,relu", "depth=1,2", *TINY, f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
        uri=uri,
        timeout=300,
    )
    elapsed = time.monotonic() - start
    print(f"\n2x2 SLURM sweep: submit -> all finished (CLI wall time) {elapsed:.1f} s")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "4 completed" in result.stderr

    runs = _runs(MlflowClient(uri))
    parents = [r for r in runs if r.data.tags.get("actstudy.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("actstudy.kind") == "job"]
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["actstudy.launcher"].endswith("actstudy_slurm.launcher.SlurmLauncher")
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert {r.info.status for r in children} == {"FINISHED"}
    array_ids = {r.data.tags["slurm.array_job_id"] for r in children}
    assert len(array_ids) == 1, array_ids
    assert sorted(r.data.tags["slurm.array_task_id"] for r in children) == ["0", "1", "2", "3"]
    assert len({r.data.tags["slurm.job_id"] for r in children}) == 4

    (array_id,) = array_ids
    deadline = time.monotonic() + 30
    while True:
        states = _sh("sacct", "-X", "-n", "-P", "-j", array_id, "-o", "State").splitlines()
        if states.count("COMPLETED") == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert states == ["COMPLETED"] * 4, states
    assert list((sweep_dir / ".submitit").iterdir()), "the submitit folder lives inside the sweep dir"
    assert (sweep_dir / ".submitit").stat().st_mode & 0o777 == 0o700  # its pickles run: owner-only


def _popen_cli(args: list[str], cwd: Path, uri: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_TRACKING_URI"] = uri
    return subprocess.Popen(
        [sys.executable, "-m", "actstudy.train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (rc {proc.returncode}) waiting for {what}:\n{proc.stderr.read()}")
        time.sleep(0.25)
    proc.kill()
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def test_ddp_sweep_runs_each_job_as_one_slurm_task_per_device(slurm_cluster, tmp_path):
    """`trainer.devices=2` under hydra/launcher=slurm: each job is 2 SLURM tasks, one DDP process each."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "multirun"
    ddp = ["trainer.accelerator=cpu", "trainer.devices=2"]
    args = ["-m", *SLURM, *ddp, "activation=sigmoid,relu", *TINY, f"hydra.sweep.dir={sweep_dir}"]
    start = time.monotonic()
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=uri, timeout=300)
    print(f"\n2-job DDP SLURM sweep (2 tasks each): submit -> all finished {time.monotonic() - start:.1f} s")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "2 completed" in result.stderr

    runs = _runs(MlflowClient(uri))
    parents = [r for r in runs if r.data.tags.get("actstudy.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("actstudy.kind") == "job"]
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {(r.info.status, r.data.tags["actstudy.world_size"]) for r in children} == {("FINISHED", "2")}
    assert all("test/acc" in r.data.metrics for r in children)
    for run in children:
        steps = [m.step for m in MlflowClient(uri).get_metric_history(run.info.run_id, "train/loss")]
        assert steps == sorted(set(steps)) and steps, "each step logged once, by rank 0 alone"
        job_id = run.data.tags["slurm.job_id"]
        assert _sacct_states(job_id, "COMPLETED")[-1] == "COMPLETED"  # (-D: ids of earlier clusters too)
        # submitit writes one log per SLURM task (rank): <array job>_<array task>_<rank>_log.out
        array_job = f"{run.data.tags['slurm.array_job_id']}_{run.data.tags['slurm.array_task_id']}"
        logs = sorted(p.name for p in (sweep_dir / ".submitit" / array_job).glob("*_log.out"))
        assert logs == [f"{array_job}_0_log.out", f"{array_job}_1_log.out"], logs


_REFERENCES: dict[int, tuple[str, dict]] = {}  # devices -> the uninterrupted run's fingerprint and histories


@pytest.mark.parametrize(
    ("stop", "devices"), [("scontrol_requeue", 1), ("usr2_timeout_signal", 1), ("scontrol_requeue", 2)]
)
def test_requeued_job_resumes_its_run(slurm_cluster, tmp_path, stop, devices):
    """SLURM stops the job mid-training; the requeued job continues the same MLflow run from last.ckpt.

    With devices=2 the job is two SLURM tasks (DDP): both stop at the same step and both resume.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "multirun"
    steps_per_epoch, epochs = 30, 8  # 480 / 16; width 32, depth 4: long enough to be stopped mid-training
    longer = ["data.train_size=480", f"trainer.max_epochs={epochs}", "trainer.progress=log", "model.width=32"]
    ddp = ["trainer.accelerator=cpu", f"trainer.devices={devices}"]
    cpus = 2 // devices  # the machine's 2 cores: trainer.threads=auto gives each task its cpus_per_task
    slurm = [*SLURM[:-1], f"hydra.launcher.cpus_per_task={cpus}"]
    args = ["-m", *slurm, *ddp, "activation=tanh", "depth=4", *TINY, *longer, f"hydra.sweep.dir={sweep_dir}"]
    start = time.monotonic()
    proc = _popen_cli(args, tmp_path, uri)
    try:
        client = MlflowClient(uri)

        def first_checkpoint():
            found = list(sweep_dir.glob("*/checkpoints/*/last.ckpt"))
            return found[0].parent.parent.parent if found else None

        job_dir = _wait(first_checkpoint, 150, "the job's first checkpoint", proc)
        run_id = json.loads((job_dir / "actstudy_run.json").read_text())["run_id"]
        job_id = client.get_run(run_id).data.tags["slurm.job_id"]
        if stop == "scontrol_requeue":  # what preemption with PreemptMode=REQUEUE does: SIGTERM, requeue
            _sh("scontrol", "requeue", job_id)
        else:  # the signal submitit asks for `signal_delay_s` before the time limit
            _sh("scancel", "--signal=USR2", job_id)
        killed = lambda: (r := client.get_run(run_id)).info.status == "KILLED" and r  # noqa: E731
        stopped = _wait(killed, 60, "the run to end KILLED", proc)
        assert stopped.data.tags["actstudy.outcome"] == "interrupted"
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"\nrequeued job ({stop}, {devices} task(s)): submit -> finished {time.monotonic() - start:.1f} s")
    assert proc.returncode == 0, stderr[-4000:]
    assert "1 completed" in stderr

    runs = _runs(client)
    jobs = [r for r in runs if r.data.tags.get("actstudy.kind") == "job"]
    assert [r.info.run_id for r in jobs] == [run_id], "the requeued job continued the same run"
    final = client.get_run(run_id)
    assert final.info.status == "FINISHED"
    assert final.data.tags["actstudy.outcome"] == "completed"
    assert "test/acc" in final.data.metrics
    steps = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    total = steps_per_epoch * epochs
    assert steps == list(range(0, total, 2)), f"duplicate or missing steps: {steps}"  # log_every_n_steps=2
    parent = next(r for r in runs if r.data.tags.get("actstudy.kind") == "sweep")
    assert parent.info.status == "FINISHED", "a requeued job does not end the sweep"

    # The same job uninterrupted, on this machine: the requeued run's history equals it, value for value.
    # With the SLURM task's threads (another thread count rounds floats differently); made once per
    # number of devices, as both 1-task stops compare with the same run.
    if devices not in _REFERENCES:
        ref_cwd = tmp_path / "reference"
        ref_cwd.mkdir()
        ref_uri = f"sqlite:///{ref_cwd / 'mlflow.db'}"
        ref_args = [*ddp, "activation=tanh", "depth=4", *TINY, *longer, f"trainer.threads={cpus}"]
        reference = run_cli("actstudy.train", ref_args, cwd=ref_cwd, uri=ref_uri, timeout=300)
        assert reference.returncode == 0, reference.stderr[-3000:]
        ref_client = MlflowClient(ref_uri)
        (ref_run,) = ref_client.search_runs([ref_client.get_experiment_by_name("actstudy").experiment_id])
        _REFERENCES[devices] = (
            ref_run.data.tags["actstudy.fingerprint"],
            metric_histories(ref_uri, ref_run.info.run_id),
        )
    ref_fingerprint, ref_histories = _REFERENCES[devices]
    assert ref_fingerprint == final.data.tags["actstudy.fingerprint"]
    assert_same_histories(metric_histories(uri, run_id), ref_histories)

    states = _sacct_states(job_id, "COMPLETED")
    print(f"sacct -D states of job {job_id}: {states}")
    assert states == ["REQUEUED", "COMPLETED"], states
    logs = "".join(p.read_text(errors="replace") for p in (sweep_dir / ".submitit").rglob("*.out"))
    assert f"resuming run {run_id}" in logs


def test_cancelled_job_is_reported_and_the_sweep_finishes_the_others(slurm_cluster, tmp_path):
    """`scancel` of one job of two: one stderr line names it, the other job still completes, exit 1."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "multirun"
    longer = ["data.train_size=480", "trainer.max_epochs=8", "model.width=32"]  # long enough to cancel
    args = ["-m", *SLURM, "activation=sigmoid,tanh", *TINY, *longer, f"hydra.sweep.dir={sweep_dir}"]
    proc = _popen_cli(args, tmp_path, uri)
    try:
        client = MlflowClient(uri)

        def first_run_id():
            found = list(sweep_dir.glob("*/actstudy_run.json"))
            return found and json.loads(found[0].read_text()).get("run_id")

        run_id = _wait(first_run_id, 150, "a job's MLflow run", proc)
        tags = client.get_run(run_id).data.tags
        array_job = f"{tags['slurm.array_job_id']}_{tags['slurm.array_task_id']}"
        _sh("scancel", array_job)  # not slurm.job_id: task 0's is the array's id, which cancels them all
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr[-4000:]
    reported = [line for line in stderr.splitlines() if "ended without a result" in line]
    assert len(reported) == 1 and f"SLURM job {array_job} (" in reported[0], stderr[-4000:]
    assert "finished: 1 completed, 1 interrupted" in stderr

    jobs = [r for r in _runs(client) if r.data.tags.get("actstudy.kind") == "job"]
    assert {(r.info.run_id == run_id, r.data.tags["actstudy.outcome"]) for r in jobs} == {
        (True, "interrupted"),
        (False, "completed"),
    }
