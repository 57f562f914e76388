"""A results folder is data, not code: nothing read from a job folder may run code on a re-run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from tests.conftest import TINY, run_cli

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
