"""The job's console and log file, as Hydra's `job_logging` builds them (conf/config.yaml names these
classes): the console shows actstudy's and Hydra's lines and every warning, each without its traceback;
the file (`<job folder>/train.log`) keeps everything, MLflow's and Lightning's messages included; a log
file that cannot be written (a full disk) is said once, not as a `--- Logging error ---` block per
record."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from actstudy import logs


class ConsoleFormatter(logging.Formatter):
    """Hydra's console format without tracebacks and stacks: a fault is one line there."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record's line (the same record then reaches the file handler whole)."""
        kept = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = kept


class ConsoleFilter(logging.Filter):
    """What the console shows: warnings and errors from anyone; below that only actstudy's own lines (not
    `actstudy.detail`'s) and Hydra's. MLflow's and Lightning's information goes to the log file only."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether the console shows the record."""
        if record.levelno >= logging.WARNING:
            return True
        name = record.name
        if name == logs.DETAIL or name.startswith(logs.DETAIL + "."):
            return False
        return name in (logs.LOG, "HYDRA") or name.startswith(logs.LOG + ".")


class JobLogFile(logging.FileHandler):
    """The job's log file; once a write fails it says so on stderr once and writes no more."""

    broken = False

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record unless an earlier write failed."""
        if not self.broken:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        """A failed write (OSError: a full disk, a lost mount) is noted in one line on stderr, and the file
        is written no more; any other error (a malformed log call) is logging's own report."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handleError(record)
            return
        if not self.broken:
            self.broken = True
            problem = sys.exc_info()[1]
            print(
                f"actstudy: warning: cannot write the job's log {self.baseFilename} ({problem}); "
                "its later lines are not kept",
                file=sys.stderr,
            )


def job_log() -> Path | None:
    """Return the job's log file if it is being written (the place a fault's traceback is), else None."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, JobLogFile) and not handler.broken:
            return Path(handler.baseFilename)
    return None
