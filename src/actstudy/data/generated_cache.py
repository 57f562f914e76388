"""Generated datasets, made once: kept in this process for the next job of a sweep, and on disk.

The disk cache is `$XDG_CACHE_HOME/actstudy/generated/` (default `~/.cache/actstudy/generated/`), one file
per set of generator parameters, named by their digest. A file is written under a private name and moved
into place (`os.replace`), so a concurrent job sees no file or a whole one; it holds the digest of its
tensors' bytes, checked on every read, so a damaged file is generated again rather than trusted. A cache
folder that cannot be written (read-only home) only costs the generation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from actstudy.config.identity import digest
from actstudy.paths import atomic_file, user_cache_dir

log = logging.getLogger("actstudy")
_in_process: dict[str, tuple[Tensor, ...]] = {}  # the latest parameters only: a sweep uses one data config


def cache_dir() -> Path:
    """Return the folder of the on-disk cache of generated datasets."""
    return user_cache_dir() / "generated"


def _content_digest(tensors: tuple[Tensor, ...]) -> str:
    content = hashlib.sha256()
    for t in tensors:
        content.update(f"{t.dtype}{tuple(t.shape)}".encode())
        content.update(t.contiguous().numpy().tobytes())
    return content.hexdigest()


def cached(params: dict[str, Any], make: Callable[[], tuple[Tensor, ...]]) -> tuple[Tensor, ...]:
    """Return `make()`'s tensors for these generator parameters: from this process, from disk, or made.

    `params` must name everything the tensors depend on (the generator's code version included). The
    returned tensors are shared with later callers: read them, never change them in place.
    """
    key = digest(params)[:24]
    if key in _in_process:
        return _in_process[key]
    path = cache_dir() / f"{params.get('name', 'data')}-{key}.pt"
    tensors = _read(path, params)
    if tensors is None:
        tensors = make()
        _write(path, params, tensors)
    _in_process.clear()
    _in_process[key] = tensors
    return tensors


def _read(path: Path, params: dict[str, Any]) -> tuple[Tensor, ...] | None:
    """Return the tensors of a whole, matching cache file; None (and a log line) for a missing or bad one."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        tensors = tuple(state["tensors"])
        if state["params"] != params or state["digest"] != _content_digest(tensors):
            raise ValueError("its content does not match its digest")
    except Exception as exc:  # truncated, damaged, from another version: generated again
        log.warning("ignoring the damaged cache file %s (%s): generating the data again", path, exc)
        return None
    return tensors


def _write(path: Path, params: dict[str, Any], tensors: tuple[Tensor, ...]) -> None:
    """Write the cache file atomically; a folder that cannot be written is noted and skipped."""
    state = {"params": params, "digest": _content_digest(tensors), "tensors": list(tensors)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as file:
            torch.save(state, file)
    except OSError as exc:
        log.info("not caching the generated data in %s (%s)", path.parent, exc.strerror or exc)
