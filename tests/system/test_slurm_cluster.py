"""The local SLURM test cluster itself works: sbatch runs a job and sacct records it."""

from __future__ import annotations

import subprocess
import time

import pytest


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


@pytest.mark.slurm
def test_sbatch_job_completes_and_sacct_records_it(slurm_cluster, tmp_path):
    out = tmp_path / "job.out"
    job_id = _run(
        "sbatch",
        "--parsable",
        "-p",
        slurm_cluster.partition,
        "-c",
        "1",
        "--mem=100M",
        "-o",
        str(out),
        "--wrap",
        "echo ok",
    ).split(";")[0]

    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        # sacct lags a little behind squeue, so poll sacct itself until the job is final
        state = _run("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State")
        if state and state not in ("PENDING", "RUNNING", "COMPLETING"):
            break
        time.sleep(0.5)

    assert state == "COMPLETED", f"job {job_id} ended as {state!r}"
    assert out.read_text().strip() == "ok"
