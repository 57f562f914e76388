"""Fixtures for system tests that need real services.

``slurm_cluster`` stands up the single-node SLURM test cluster from
``scripts/local_slurm.sh`` (munge, MariaDB + slurmdbd, slurmctld, slurmd on localhost).
It needs root and the Debian packages (``bash scripts/local_slurm.sh install``); without
them the tests that use it are skipped, unless ``ACTSTUDY_REQUIRE_SLURM=1`` (CI), where
they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "local_slurm.sh"


@dataclass(frozen=True)
class SlurmCluster:
    partition: str
    root: Path  # state, logs and job folders of the local cluster
    started_here: bool


def _unavailable(reason: str) -> None:
    if os.environ.get("ACTSTUDY_REQUIRE_SLURM") == "1":
        pytest.fail(f"ACTSTUDY_REQUIRE_SLURM=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _which(cmd: str) -> str | None:
    return shutil.which(cmd) or shutil.which(cmd, path="/usr/sbin:/usr/bin:/sbin")


def _script(cmd: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), cmd], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def slurm_cluster():
    missing = [c for c in ("sbatch", "slurmctld", "slurmd", "slurmdbd", "mariadbd") if not _which(c)]
    if missing:
        _unavailable(
            f"SLURM not installed ({', '.join(missing)} missing); run `bash scripts/local_slurm.sh install`"
        )
    if os.geteuid() != 0:
        _unavailable("the local SLURM test cluster (scripts/local_slurm.sh) needs root")

    root = Path(os.environ.get("ACTSTUDY_SLURM_ROOT", "/tmp/actstudy-slurm"))
    started_here = _script("status", timeout=60).returncode != 0
    if started_here:
        res = _script("start", timeout=300)
        if res.returncode != 0:
            pytest.fail(
                f"`bash scripts/local_slurm.sh start` failed (rc={res.returncode}):\n"
                f"{res.stdout}\n{res.stderr}",
                pytrace=False,
            )
    try:
        yield SlurmCluster(partition="debug", root=root, started_here=started_here)
    finally:
        if started_here:
            _script("stop", timeout=180)
