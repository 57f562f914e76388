"""The job's record in its output folder: which MLflow run it writes to, who runs it, how it ended.

`actstudy_run.json` sits next to `checkpoints/`, so a re-run of the same job (same output folder), a
requeued SLURM job, or the end-of-sweep summary can find the run, its checkpoint and its outcome.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from actstudy.config.schema import ConfigError
from actstudy.errors import first_line
from actstudy.paths import atomic_file

STATE_FILE = "actstudy_run.json"


@dataclass
class RunState:
    """One job's MLflow run id and outcome, persisted as JSON in the job's output folder."""

    run_id: str | None
    run_name: str
    tracking_uri: str
    fingerprint: str = ""  # actstudy.config.identity.job_fingerprint of the config that made the run
    experiment: str = ""  # the MLflow experiment the run is in
    outcome: str | None = None
    error: str | None = None
    host: str = ""
    pid: int = 0

    @staticmethod
    def path(output_dir: Path) -> Path:
        """Return the state file of a job's output folder."""
        return output_dir / STATE_FILE

    @classmethod
    def load(cls, output_dir: Path, strict: bool = False) -> RunState | None:
        """Return the saved state of the job in `output_dir`, or None if it has none or it is unreadable;
        `strict`: ConfigError (one line naming the file) for one that is there but unreadable, since
        taking it for none would train a finished job again."""
        path = cls.path(output_dir)
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            if strict:
                raise ConfigError(
                    f"{path} is damaged ({first_line(exc)}): cannot tell whether this job finished; "
                    "move it away to train the job as a new run (or resume=false)"
                ) from exc
            return None

    def save(self, output_dir: Path) -> None:
        """Write the state atomically, so a crash never leaves half a file."""
        output_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.path(output_dir), "w") as file:
            file.write(json.dumps(asdict(self), indent=2) + "\n")

    def owner_alive(self) -> bool:
        """Return True if the process that wrote this state still runs (checked on this host only)."""
        if self.host != socket.gethostname() or self.pid <= 0 or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _is_python(self.pid)


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True


class FolderLock:
    """An exclusive lock on a job's (or a sweep's) folder, held by the process that runs it until it ends.

    The operating system releases it when the process dies (kill -9 included), so a stale lock cannot
    block a re-run. On network file systems it is as good as their `flock`.
    """

    def __init__(self, folder: Path, what: str = "job"):
        self.path = folder / ".actstudy.lock"
        self.what = what  # "job", or "sweep" for a sweep's folder
        self._file: IO[str] | None = None

    def acquire(self, name: str) -> None:
        """Take the lock, or raise ConfigError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 (held open for the job's life)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigError(
                f"{self.what} '{name}' is already running ({holder}); wait for it or stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let the lock go (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def current_owner() -> dict[str, Any]:
    """Return the host and pid fields that identify this process as a run's owner."""
    return {"host": socket.gethostname(), "pid": os.getpid()}
