"""What the tests share: run the real CLI in a subprocess against a temporary SQLite MLflow store, read a
run's histories back, compare two runs' histories, inject a fault into a job's process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from actstudy import metric_names as mn

# Small enough for a CPU test (a few batches), large enough to exercise every code path.
TINY = [
    "data=shapes",
    "data.train_size=64",
    "data.val_size=32",
    "data.test_size=32",
    "data.batch_size=16",
    "model.width=8",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=2",
    "monitor.every_n_steps=2",
]


def run_cli(
    module: str, args: list[str], cwd: Path, uri: str | None, timeout: float = 600, **env_extra: str
) -> subprocess.CompletedProcess:
    """Return the finished `python -m <module> <args>` process, run in `cwd` with the given tracking URI."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if uri is not None:
        env["MLFLOW_TRACKING_URI"] = uri
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Imported at start-up by every Python process that has it on PYTHONPATH: in the job whose optimizer.lr
# is 0.05, the process of rank FAULT_RANK (0: the job's own process) raises at training step FAULT_STEP,
# or while loading its data when FAULT_STEP is "data".
_FAULT = """
import os
if "FAULT_STEP" in os.environ and os.environ.get("RANK", "0") == os.environ["FAULT_RANK"]:
    from actstudy import data
    from actstudy.training import module

    message = f"injected fault on rank {os.environ['FAULT_RANK']}"
    if os.environ["FAULT_STEP"] == "data":
        original_load = data.load_splits

        def load_splits(cfg):
            if cfg.name == "shapes":
                raise RuntimeError(message)
            return original_load(cfg)

        data.load_splits = load_splits
    else:
        original_step = module.ClassifierModule.training_step

        def training_step(self, batch, idx):
            if self.optimizer_cfg.lr == 0.05 and self.global_step == int(os.environ["FAULT_STEP"]):
                raise RuntimeError(message)
            return original_step(self, batch, idx)

        module.ClassifierModule.training_step = training_step
"""


def fault_env(folder: Path, rank: int, step: int | str) -> dict[str, str]:
    """Return environment variables that make rank `rank` of the lr=0.05 job raise at `step` (or "data")."""
    (folder / "inject").mkdir(exist_ok=True)
    (folder / "inject" / "sitecustomize.py").write_text(_FAULT)
    pythonpath = os.pathsep.join([str(folder / "inject"), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": pythonpath, "FAULT_STEP": str(step), "FAULT_RANK": str(rank)}


def metric_histories(
    uri: str, run_id: str, skip: tuple[str, ...] = mn.TIMED_PREFIXES
) -> dict[str, list[tuple[int, float]]]:
    """Return every metric of a run but those under `skip` (default the timed ones, which differ between
    equal runs: MLflow's `system/*` samples, `perf/*`) as {key: [(step, value), ...]}, steps ascending."""
    client = MlflowClient(uri)
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in client.get_run(run_id).data.metrics
        if not key.startswith(skip)
    }


def assert_same_histories(got: dict, want: dict, rel: float = 1e-5) -> None:
    """Assert two runs logged the same metrics, each at the same steps (once each) with the same values."""
    assert sorted(got) == sorted(want), "the runs logged different metric keys"
    for key in want:
        steps = [s for s, _ in got[key]]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice"
        assert steps == [s for s, _ in want[key]], f"{key}: steps differ from the uninterrupted run"
        assert [v for _, v in got[key]] == pytest.approx(
            [v for _, v in want[key]], rel=rel, abs=1e-7, nan_ok=True
        ), key


@dataclass
class Sweep:
    """A finished tiny sweep: its store, folder, CLI result and a client on the store."""

    uri: str
    sweep_dir: Path
    result: subprocess.CompletedProcess
    client: MlflowClient

    def runs(self) -> list:
        """Return all runs of the `actstudy` experiment, oldest first."""
        exp = self.client.get_experiment_by_name("actstudy")
        return self.client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


# Imported at start-up by a job's Python: each training step sleeps ACTSTUDY_TEST_SLOW_S seconds while the
# file named by ACTSTUDY_TEST_SLOW_WHILE exists, so a test can act (stop a server, fill a disk) mid-run.
_SLOW = """
import os
if "ACTSTUDY_TEST_SLOW_WHILE" in os.environ:
    import time
    from actstudy.training import module

    original_step = module.ClassifierModule.training_step

    def training_step(self, batch, idx):
        if os.path.exists(os.environ["ACTSTUDY_TEST_SLOW_WHILE"]):
            time.sleep(float(os.environ["ACTSTUDY_TEST_SLOW_S"]))
        return original_step(self, batch, idx)

    module.ClassifierModule.training_step = training_step
"""


def slowed_env(folder: Path, seconds: float) -> dict[str, str]:
    """Return this process's environment (without MLFLOW_TRACKING_URI) for a job whose every training step
    sleeps `seconds` while `folder/slow` exists; the file is made here: delete it to let the job run on."""
    (folder / "inject").mkdir()
    (folder / "inject" / "sitecustomize.py").write_text(_SLOW)
    (folder / "slow").touch()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join([str(folder / "inject"), env.get("PYTHONPATH", "")])
    env |= {"ACTSTUDY_TEST_SLOW_WHILE": str(folder / "slow"), "ACTSTUDY_TEST_SLOW_S": str(seconds)}
    return env
