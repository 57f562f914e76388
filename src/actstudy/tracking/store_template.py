"""New SQLite stores made by copying an empty, fully migrated one instead of migrating each from scratch.

MLflow creates a SQLite store by running its whole chain of schema migrations: 1.4-2.2 s on this project's
2-core machine for every new store (a new user's first command, every test's fresh store), against 0.05 s
to copy an empty store the same MLflow version made. The template is made once per MLflow version, by
MLflow itself, in the user's cache (`$XDG_CACHE_HOME/actstudy/`, default `~/.cache/actstudy/`), written
under a private name and moved into place; a copy is moved into place the same way. Anything that goes
wrong leaves the store to MLflow, as before.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from actstudy.paths import user_cache_dir

log = logging.getLogger("actstudy")
SQLITE_HEADER = b"SQLite format 3\x00"
NOT_SQLITE = "not an SQLite database"  # what `sqlite_damage` says of a file without SQLite's header


def sqlite_damage(path: Path) -> str | None:
    """Return what is wrong with the SQLite database `path` (not one, or pages SQLite's quick integrity
    check finds damaged), or None when it is sound. Opened read-only: the file is not changed."""
    with open(path, "rb") as file:
        if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            return NOT_SQLITE
    try:
        con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            found = [row[0] for row in con.execute("PRAGMA quick_check(3)")]
        finally:
            con.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None if found == ["ok"] else "; ".join(found)


def template_path() -> Path:
    """Return where this MLflow version's empty store is kept."""
    import mlflow

    return user_cache_dir() / f"mlflow-store-{mlflow.__version__}.db"


def create_store(db: Path) -> bool:
    """Create the SQLite store `db` (absent) as a copy of the template; return whether it did.

    The copy's default experiment (id 0, which MLflow places at `./mlruns/0` of the creating process) is
    moved to this process's `./mlruns/0`, as MLflow would have placed it.
    """
    template = _template()
    if template is None:
        return False
    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(template, tmp)
        with sqlite3.connect(tmp) as con:
            location = os.path.abspath(os.path.join("mlruns", "0"))
            con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (location,))
        con.close()
        os.replace(tmp, db)
        return True
    except (OSError, sqlite3.Error) as exc:
        log.info("creating the store %s from its template failed (%s): MLflow creates it", db, exc)
        tmp.unlink(missing_ok=True)
        return False


def _template() -> Path | None:
    """Return the template, made now if missing or damaged; None if it cannot be made."""
    path = template_path()
    if path.is_file():
        damage = sqlite_damage(path)
        if damage is None:
            return path
        log.warning("the store template %s is damaged (%s): making it again", path, damage)
    from mlflow.tracking import MlflowClient

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".store-") as folder:
            made, single = Path(folder) / "made.db", Path(folder) / "template.db"
            MlflowClient(tracking_uri=f"sqlite:///{made}").search_experiments(max_results=1)  # migrates
            with sqlite3.connect(made) as con:  # one file, whatever MLflow's journal left beside it
                con.execute("VACUUM INTO ?", (str(single),))
            con.close()
            os.replace(single, path)
    except Exception as exc:  # a read-only cache, a full disk: MLflow creates each store itself
        log.info("no store template in %s (%s)", path.parent, exc)
        return None
    return path
