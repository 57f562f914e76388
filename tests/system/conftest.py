"""Fixtures for system tests that need real services.

``slurm_cluster`` stands up the single-node SLURM test cluster from
``scripts/local_slurm.sh`` (munge, MariaDB + slurmdbd, slurmctld, slurmd on localhost).
It needs root and the Debian packages (``bash scripts/local_slurm.sh install``); without
them the tests that use it are skipped, unless ``ACTSTUDY_REQUIRE_SLURM=1`` (CI), where
they fail instead.

``postgres`` starts a throwaway PostgreSQL from Debian's packages (``scripts/local_postgres.sh``)
and yields its URI; without the server or the psycopg driver (``pip install -e ".[server]"``)
its tests are skipped, unless ``ACTSTUDY_REQUIRE_POSTGRES=1`` (CI). ``TrackingServer`` drives
``scripts/mlflow_server.sh`` (start, stop, restart on the same port).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "local_slurm.sh"
POSTGRES_SCRIPT = REPO / "scripts" / "local_postgres.sh"
SERVER_SCRIPT = REPO / "scripts" / "mlflow_server.sh"


CHROMIUM = Path(os.environ.get("ACTSTUDY_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="session")
def browser_available() -> None:
    """Skip (or fail, with ACTSTUDY_REQUIRE_BROWSER=1) before anything runs when there is no browser."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable(
            "playwright (Python) is not installed: pip install -e '.[dev]'", "ACTSTUDY_REQUIRE_BROWSER"
        )
    if not CHROMIUM.exists():
        _unavailable(
            f"no Chromium at {CHROMIUM}: apt-get install chromium (or set ACTSTUDY_CHROMIUM)",
            "ACTSTUDY_REQUIRE_BROWSER",
        )


def launch_chromium(playwright: Any) -> Any:
    """Return headless Chromium (Debian's, never a downloaded one) launched from a Playwright instance."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        # root in a container: no sandbox; small /dev/shm: use /tmp
        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    )


@dataclass(frozen=True)
class SlurmCluster:
    partition: str
    root: Path  # state, logs and job folders of the local cluster
    started_here: bool


def _unavailable(reason: str, required_by: str = "ACTSTUDY_REQUIRE_SLURM") -> None:
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{required_by}=1 but {reason}", pytrace=False)
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


def free_port() -> int:
    """Return a TCP port nothing listens on at the moment (on 127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres():
    """Yield the URI of database `mlflow` on a PostgreSQL server started for this test session."""
    required_by = "ACTSTUDY_REQUIRE_POSTGRES"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        _unavailable(
            "PostgreSQL not installed; run `bash scripts/local_postgres.sh install` as root", required_by
        )
    if importlib.util.find_spec("psycopg") is None:
        _unavailable('the PostgreSQL driver is missing; pip install -e ".[server]"', required_by)
    # not in pytest's tmp_path: as root the server runs as user postgres, who cannot enter root's 0700 folders
    folder = Path(tempfile.mkdtemp(prefix="actstudy-postgres-"))
    folder.chmod(0o755)
    script = lambda *args: subprocess.run(  # noqa: E731
        ["bash", str(POSTGRES_SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )
    started = script("start", str(folder), str(free_port()))
    if started.returncode != 0:
        pytest.fail(
            f"scripts/local_postgres.sh start failed:\n{started.stdout}{started.stderr}", pytrace=False
        )
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        script("stop", str(folder))
        shutil.rmtree(folder, ignore_errors=True)


class TrackingServer:
    """An `mlflow server` run by scripts/mlflow_server.sh on one loopback port, its state in `dir`."""

    def __init__(self, folder: Path, *options: str, env: dict[str, str] | None = None):
        self.dir, self.port, self.options = folder, free_port(), options
        self.env = {**os.environ, **(env or {})}  # the script's environment (a store URI, a password)
        self.url = f"http://127.0.0.1:{self.port}"
        self.artifacts = folder / "artifacts"
        self.started: list[subprocess.CompletedProcess[str]] = []  # every start's answer

    def _script(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(SERVER_SCRIPT), *args, "--dir", str(self.dir)],
            capture_output=True, text=True, timeout=150, check=False, env=self.env,
        )  # fmt: skip

    def start(self) -> None:
        """Start the server (same port, store and artifacts each time); return once /health answers."""
        started = self._script("start", "--port", str(self.port), "--workers", "1", *self.options)
        self.started.append(started)
        assert started.returncode == 0, started.stdout + started.stderr

    def stop(self) -> None:
        """Stop the server (if it runs) and wait until its process is gone."""
        if not (self.dir / "mlflow-server.pid").exists():
            return
        pid = int((self.dir / "mlflow-server.pid").read_text())
        stopped = self._script("stop")
        assert stopped.returncode == 0, stopped.stderr
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.2)
        assert not Path(f"/proc/{pid}").exists(), "stop left the server running"

    def status(self) -> subprocess.CompletedProcess[str]:
        """Return the script's `status` answer."""
        return self._script("status")
