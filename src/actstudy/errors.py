"""Errors that mean "the user's input is wrong": each message is one line saying what and how to fix it.

They live in this import-light module so that the command line can report a bad override or output
folder in a second, before torch, Lightning or MLflow are imported; a bad value in the composed config
is found once the config's targets are imported, still before any data or run exists.
"""

import re


class ConfigError(ValueError):
    """A config value is wrong; the message is one line saying what and how to fix it."""


class DatasetUnavailable(RuntimeError):
    """The dataset is missing, cannot be downloaded, or is corrupt; the message says how to fix it."""


class TrackingUnavailable(RuntimeError):
    """The tracking store cannot be reached or opened; the message says how to fix it."""


class JobFailed(RuntimeError):
    """Training failed and the run ended FAILED; the message is the cause (in DDP: the failing rank's)."""


class RunInterrupted(Exception):
    """Training was stopped by Ctrl-C or SIGTERM after saving a checkpoint; re-running resumes it."""


def error_text(exc: BaseException) -> str:
    """Return `exc` as `Type: message`, the form a run's error tag and the ranks' reports record."""
    return f"{type(exc).__name__}: {exc}"


def one_line(exc: BaseException) -> str:
    """Return `exc` as `Type: message` on a single line (whitespace runs collapsed), for a message."""
    return " ".join(error_text(exc).split())


def first_line(exc: BaseException) -> str:
    """Return the first line of `exc`'s message, or its type's name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# SQLAlchemy's additions to a database error: the statement, its parameters, a link (lines of their own)
_SQL_DETAIL = re.compile(r"^\s*(\[SQL: |\[parameters: |\(Background on this error at: )")


def one_line_summary(text: str, limit: int = 1000) -> str:
    """Return `text` as one line of at most `limit` characters for a message or an error tag: whitespace
    collapsed, without SQLAlchemy's statement, parameters and link, which it appends after the error (a
    statement can span lines; the log file keeps them all)."""
    lines = text.splitlines()
    end = next((i for i, line in enumerate(lines) if _SQL_DETAIL.match(line)), len(lines))
    line = " ".join(" ".join(lines[:end]).split())  # SQLAlchemy's details come last: cut from the first
    return line if len(line) <= limit else line[: limit - 3] + "..."
