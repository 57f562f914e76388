"""Passwords in URIs: a config never holds one, and wherever a URI is recorded or printed it is redacted.

A config value is recorded in the run's params, its `actstudy.overrides` tag, `config/config.yaml`,
Hydra's `.hydra/` files and the job's state file, and a command line is visible to every user of the
machine (`ps`). So a password reaches actstudy only through the environment: `MLFLOW_TRACKING_URI` for a
database store (or libpq's `~/.pgpass`), `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD` for an
authenticated tracking server. What actstudy records of that URI is `redact(uri)`, and a recorded URI
becomes the one to open again through `restore`.
"""

from __future__ import annotations

import os
import re

# scheme://user:password@host... and ?password=... / &password=... (libpq's query form)
# as SQLAlchemy reads them: the user ends at the first ':', the password at the last '@' before the host
_IN_AUTHORITY = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/\s]*):([^\s]*)@")
_IN_QUERY = re.compile(r"([?&](?:password|pass|pwd)=)[^&\s]+", re.IGNORECASE)
MASK = "***"

HOW_TO_PASS = (
    "put the URI in MLFLOW_TRACKING_URI (a database; or its password in ~/.pgpass) and a tracking "
    "server's user and password in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
)


def redact(text: str) -> str:
    """Return `text` with the password of every URI in it replaced by `***` (user, host, path kept)."""
    return _IN_QUERY.sub(rf"\g<1>{MASK}", _IN_AUTHORITY.sub(rf"\g<1>:{MASK}@", text))


def has_password(text: str) -> bool:
    """Return whether `text` holds a URI with a password."""
    return redact(text) != text


def restore(recorded: str) -> str:
    """Return the URI to open for a recorded (redacted) one: the environment's `MLFLOW_TRACKING_URI` when
    that is the URI it was recorded from, else `recorded` itself (it had no password)."""
    environment = os.environ.get("MLFLOW_TRACKING_URI", "")
    return environment if environment and redact(environment) == recorded else recorded


def override_problem(argv: list[str]) -> str | None:
    """Return one line refusing a command-line argument that holds a password (None when none does)."""
    for argument in argv:
        if has_password(argument):
            return (
                f"{redact(argument)}: a password on the command line is shown to every user (ps) and "
                f"recorded with the run; {HOW_TO_PASS}"
            )
    return None
