"""The job's record in its output folder: which MLflow run it writes to, who runs it, how it ended.

`actstudy_run.json` sits next to `checkpoints/`, so a re-run of the same job (same output folder), a
requeued SLURM job, or the end-of-sweep summary can find the run, its checkpoint and its outcome.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "actstudy_run.json"


@dataclass
class RunState:
    """One job's MLflow run id and outcome, persisted as JSON in the job's output folder."""

    run_id: str | None
    run_name: str
    tracking_uri: str
    outcome: str | None = None
    error: str | None = None
    host: str = ""
    pid: int = 0

    @staticmethod
    def path(output_dir: Path) -> Path:
        """Return the state file of a job's output folder."""
        return output_dir / STATE_FILE

    @classmethod
    def load(cls, output_dir: Path) -> RunState | None:
        """Return the saved state of the job in `output_dir`, or None if it has none (or it is unreadable)."""
        try:
            return cls(**json.loads(cls.path(output_dir).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, output_dir: Path) -> None:
        """Write the state atomically, so a crash never leaves half a file."""
        output_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(output_dir).with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(tmp, self.path(output_dir))

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


def current_owner() -> dict[str, object]:
    """Return the host and pid fields that identify this process as a run's owner."""
    return {"host": socket.gethostname(), "pid": os.getpid()}
