"""Multi-process (DDP) jobs on this CPU machine: 2 processes with gloo, each on its share of every batch.

One MLflow run per job, recorded by rank 0 alone; the same history as one process on the same global
batch; a fault on rank 1 (an exception, kill -9) ends the whole job within the collective timeout with a
truthful run; Ctrl-C stops every rank at the same step and the resumed run equals the uninterrupted one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import assert_same_histories, fault_env, metric_histories, run_cli

pytestmark = pytest.mark.ddp

# 32 steps per epoch of a global batch of 32 (16 per process), long enough to be stopped mid-training.
JOB = [
    "data=shapes", "data.train_size=1024", "data.val_size=64", "data.test_size=64", "data.batch_size=32",
    "model.width=8", "depth=2", "trainer.max_epochs=6", "trainer.log_every_n_steps=2",
    "monitor.every_n_steps=4", "trainer.accelerator=cpu",
]  # fmt: skip
DDP = ["trainer.devices=2"]
TIMEOUT_S = 90  # a job whose rank failed ends long before trainer.ddp_timeout_s (120): sockets close


def _store(cwd: Path) -> str:
    return f"sqlite:///{cwd / 'mlflow.db'}"


def _job_runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("actstudy")
    return client.search_runs([exp.experiment_id], "tags.`actstudy.kind` = 'job'") if exp else []


def _processes_of(marker: str) -> list[int]:
    """Return the pids of live processes whose environment mentions `marker` (a test's temp folder)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The job run uninterrupted on 1 and on 2 processes (same global batch), each in its own store."""
    out = {}
    for name, extra in (("one", []), ("two", DDP)):
        cwd = tmp_path_factory.mktemp(f"reference-{name}")
        start = time.monotonic()
        result = run_cli("actstudy.train", [*JOB, *extra], cwd=cwd, uri=_store(cwd), timeout=300)
        elapsed = time.monotonic() - start
        assert result.returncode == 0, result.stderr[-4000:]
        runs = _job_runs(_store(cwd))
        out[name] = {
            "runs": runs,
            "history": metric_histories(_store(cwd), runs[0].info.run_id),
            "s": elapsed,
        }
    print(
        f"\nsame job, global batch 32: 1 process {out['one']['s']:.1f} s, 2 processes {out['two']['s']:.1f} s"
    )
    return out


def test_two_processes_make_one_run_with_the_history_of_one_process(reference):
    runs = reference["two"]["runs"]
    assert len(runs) == 1  # rank 1 created nothing
    run = runs[0]
    assert (run.info.status, run.data.tags["actstudy.outcome"]) == ("FINISHED", "completed")
    assert run.data.tags["actstudy.world_size"] == "2"
    assert "test/acc" in run.data.metrics
    two, one = reference["two"]["history"], reference["one"]["history"]
    assert sorted(two) == sorted(one)
    for key in one:  # every step logged once, the same steps as on one process
        steps = [s for s, _ in two[key]]
        assert steps == sorted(set(steps)) == [s for s, _ in one[key]], key
    # At step 0 both saw the same global batch: the loss is the mean over both shards and the gradient
    # norms those of DDP's all-reduced gradient. (Later steps drift apart by float summation order.)
    for key in ("train/loss", "grad/weight_l2/l01", "grad/first_to_last"):
        assert two[key][0] == (0, pytest.approx(one[key][0][1], rel=1e-5)), key


def test_a_fault_on_rank_1_fails_its_run_with_the_error_and_the_sweep_goes_on(tmp_path: Path):
    args = [
        "-m",
        "optimizer.lr=0.05,0.1",
        *JOB,
        *DDP,
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={tmp_path / 's'}",
    ]
    env = fault_env(tmp_path, rank=1, step=5)
    result = run_cli(
        "actstudy.train", args, cwd=tmp_path, uri=_store(tmp_path), timeout=300, ACTSTUDY_NO_REPORT="1", **env
    )
    assert result.returncode == 1, result.stderr[-4000:]
    assert "failed job" in result.stderr and "injected fault on rank 1" in result.stderr
    by_lr = {r.data.params["optimizer.lr"]: r for r in _job_runs(_store(tmp_path))}
    failed, ok = by_lr["0.05"], by_lr["0.1"]
    assert (failed.info.status, failed.data.tags["actstudy.outcome"]) == ("FAILED", "failed")
    assert failed.data.tags["actstudy.error"] == "rank 1: RuntimeError: injected fault on rank 1"
    assert (
        max(
            m.step
            for m in MlflowClient(_store(tmp_path)).get_metric_history(failed.info.run_id, "train/loss")
        )
        == 4
    )
    assert (ok.info.status, ok.data.tags["actstudy.outcome"]) == ("FINISHED", "completed")
    assert _processes_of(str(tmp_path)) == []  # every rank of both jobs has exited


@pytest.mark.parametrize(
    ("rank", "step", "error"),
    [
        (0, 5, "RuntimeError: injected fault on rank 0"),  # rank 1 then sees only a broken collective
        (1, "data", "rank 1: RuntimeError: injected fault on rank 1"),  # before it joins the process group
    ],
    ids=["rank-0-in-training", "rank-1-before-joining"],
)
def test_a_fault_ends_the_run_failed_with_the_failing_ranks_own_error(tmp_path: Path, rank, step, error):
    args = [*JOB, *DDP, "optimizer.lr=0.05", "trainer.max_epochs=1", "trainer.ddp_timeout_s=15"]
    env = fault_env(tmp_path, rank=rank, step=step)
    result = run_cli("actstudy.train", args, cwd=tmp_path, uri=_store(tmp_path), timeout=TIMEOUT_S, **env)
    assert result.returncode == 1, result.stderr[-4000:]
    last = result.stderr.strip().splitlines()[-1]
    assert f"failed: {error} (traceback in " in last and last.endswith("train.log)"), last
    (run,) = _job_runs(_store(tmp_path))
    assert (run.info.status, run.data.tags["actstudy.outcome"]) == ("FAILED", "failed")
    assert run.data.tags["actstudy.error"] == error
    assert _processes_of(str(tmp_path)) == []


def _start(cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": _store(cwd)}
    return subprocess.Popen(
        [sys.executable, "-m", "actstudy.train", *JOB, *DDP], cwd=cwd, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_checkpoint(proc: subprocess.Popen, cwd: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list((cwd / "outputs").glob("*/checkpoints/*/last.ckpt")):
        assert proc.poll() is None, proc.stderr.read()[-4000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def _rank_1(parent: int) -> int:
    """Return the pid of the rank that the job's process `parent` started (`-m actstudy.cli.worker`)."""
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent and b"actstudy.cli.worker" in (proc / "cmdline").read_bytes():
                return int(proc.name)
        except (OSError, ValueError, IndexError):
            pass
    raise AssertionError("rank 1 is not running")


def _rerun_resumes_exactly(tmp_path: Path, run_id: str, reference: dict) -> None:
    """Re-run the job: it continues run `run_id` to the end, equal to the uninterrupted 2-process run."""
    result = run_cli("actstudy.train", [*JOB, *DDP], cwd=tmp_path, uri=_store(tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    (resumed,) = _job_runs(_store(tmp_path))
    assert resumed.info.run_id == run_id
    assert (resumed.info.status, resumed.data.tags["actstudy.outcome"]) == ("FINISHED", "completed")
    assert_same_histories(metric_histories(_store(tmp_path), run_id), reference["two"]["history"])


def test_kill_9_of_rank_1_ends_the_job_interrupted_and_a_rerun_completes_it(tmp_path: Path, reference):
    proc = _start(tmp_path)
    _wait_for_checkpoint(proc, tmp_path)
    os.kill(_rank_1(proc.pid), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 130, stderr[-4000:]
    assert _processes_of(str(tmp_path)) == []
    (run,) = _job_runs(_store(tmp_path))
    assert (run.info.status, run.data.tags["actstudy.outcome"]) == ("FAILED", "interrupted")
    assert run.data.tags["actstudy.error"].startswith("rank 1 was killed by signal 9")

    _rerun_resumes_exactly(tmp_path, run.info.run_id, reference)


def test_ctrl_c_stops_every_rank_and_the_resumed_run_equals_the_uninterrupted_one(tmp_path: Path, reference):
    proc = _start(tmp_path)
    _wait_for_checkpoint(proc, tmp_path)
    time.sleep(0.3)  # into the next epoch
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: every process of the job gets it
    _, stderr = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 130, stderr[-4000:]
    assert "interrupted" in stderr and "resume" in stderr
    assert _processes_of(str(tmp_path)) == []
    (run,) = _job_runs(_store(tmp_path))
    assert (run.info.status, run.data.tags["actstudy.outcome"]) == ("KILLED", "interrupted")
    assert "test/acc" not in run.data.metrics

    _rerun_resumes_exactly(tmp_path, run.info.run_id, reference)


def test_starting_the_ranks_leaves_rank_0s_environment_as_it_was():
    """A local sweep runs its jobs in one process: a DDP job must not leave LOCAL_RANK, WORLD_SIZE or
    MASTER_* behind for the next one (Lightning gets them from the World, `training.JoinedEnvironment`)."""
    from actstudy.processes.distributed import Rendezvous, World
    from tests.helpers.monitor import config_dict

    resolved = config_dict("data=shapes", "trainer.devices=2", "trainer.accelerator=cpu")
    rendezvous = Rendezvous.open(World(0, 2, 0, 2, "rank0"))  # imports torch, which sets variables of its own
    before = dict(os.environ)
    try:
        rendezvous.start_local_ranks(resolved)
        assert dict(os.environ) == before
    finally:
        rendezvous.abort("the test stops here")
        assert rendezvous.close() == [0]
