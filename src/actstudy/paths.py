"""Where actstudy keeps things on disk, independent of the current working directory."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"


def default_tracking_uri() -> str:
    """Return the MLflow tracking URI: `MLFLOW_TRACKING_URI` if set, else the SQLite store in `mlruns/`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"


def default_data_root() -> Path:
    """Return the dataset folder: `ACTSTUDY_DATA` if set, else `data/` at the project root."""
    env = os.environ.get("ACTSTUDY_DATA")
    return Path(env) if env else PROJECT_ROOT / "data"


def user_cache_dir() -> Path:
    """Return actstudy's folder in the user's cache: `$XDG_CACHE_HOME/actstudy` (default `~/.cache/`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "actstudy"


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Yield a new file that replaces `path` at once when the block ends. On any error (a full disk, a
    signal) it is removed and `path` keeps what it held: no reader sees half a file, none is left behind."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(partial, mode) as file:
            yield file
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise


def writable_problem(folder: Path) -> str | None:
    """Return why files cannot be created in `folder` (e.g. 'Read-only file system'), or None if they can.

    Tried for real: permission bits say nothing to root, and a read-only mount refuses even root.
    """
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".actstudy-probe-"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def sqlite_path(uri: str) -> Path | None:
    """Return the database file of a `sqlite:///` URI, or None for other stores."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None
