"""The one way to talk to MLflow: a client every call of which goes through a wait policy.

Many jobs share one SQLite store, and a tracking server can restart under a running sweep. A
`RetryingClient` wraps MLflow's own client so that every public method waits for a locked store and,
with `WaitPolicy.server_wait_s`, rides out a server that stops answering, then fails with one line
(`TrackingUnavailable`). A write cannot skip the policy: there is no unwrapped client to call.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from mlflow.tracking import MlflowClient

from actstudy.errors import TrackingUnavailable

T = TypeVar("T")
log = logging.getLogger("actstudy")


def bound_http_retries() -> None:
    """Cut MLflow's own HTTP retries to a few seconds per call unless the user set them: by default they
    take about 4 minutes (measured: 247 s for a refused connection). MLflow's per-request timeout (120 s)
    stays, so a slow answer (a large `search_runs` page) is waited for."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


@dataclass
class WaitPolicy:
    """How long calls wait: for a locked SQLite store (`lock_attempts` tries, backing off from
    `first_lock_wait_s`), and for a tracking server that does not answer (up to `server_wait_s`, counted
    from its first unanswered call; None: not at all). Once that time is spent, calls fail after one try
    until one succeeds. The down-since time is shared by the threads that use the policy (a job and its
    metrics writer) under a lock."""

    server_wait_s: float | None = None
    lock_attempts: int = 12
    first_lock_wait_s: float = 0.05
    _down_since: float | None = field(default=None, init=False, repr=False)
    _state: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.server_wait_s is not None:
            bound_http_retries()  # the wait is this policy's, and bounded

    def call(self, fn: Callable[[], T]) -> T:
        """Return `fn()`, retried as the policy says."""
        lock_wait, server_wait, tries, waited_since = self.first_lock_wait_s, 0.5, 0, None
        while True:
            try:
                result = fn()
            except Exception as exc:  # MLflow wraps the sqlite and HTTP errors in its own exception types
                reason = server_unreachable(exc) if self.server_wait_s is not None else None
                if reason is None:
                    tries += 1
                    if "locked" not in str(exc).lower() or tries == self.lock_attempts:
                        raise
                    time.sleep(lock_wait)
                    lock_wait = min(lock_wait * 2, 2.0)
                    continue
                assert self.server_wait_s is not None  # a reason is found only with a server wait
                since = self._note_down(reason)
                down_s = time.monotonic() - since
                if down_s >= self.server_wait_s:
                    raise self._server_down(exc, reason, down_s) from exc
                waited_since = since
                time.sleep(min(server_wait, self.server_wait_s - down_s))
                server_wait = min(server_wait * 2, 5.0)
                continue
            if waited_since is not None:
                log.warning(
                    "MLflow tracking server answered again after %.1f s", time.monotonic() - waited_since
                )
            with self._state:
                self._down_since = None
            return result

    def _note_down(self, reason: str) -> float:
        """Return when the server stopped answering, noting now if this is the first unanswered call."""
        with self._state:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning(
                    "MLflow tracking server not answering (%s); retrying for %g s", reason, self.server_wait_s
                )
            return self._down_since

    def _server_down(self, exc: Exception, reason: str, down_s: float) -> TrackingUnavailable:
        found = re.search(r"API request to (https?://[^/\s]+)", str(exc))
        where = f" at {found.group(1)}" if found else ""
        return TrackingUnavailable(
            f"the MLflow tracking server{where} did not answer for {down_s:.0f} s ({reason}; limit "
            f"tracking.server_wait_s={self.server_wait_s:g}); restart it (scripts/mlflow_server.sh) and "
            "re-run the same command to resume"
        )


def server_unreachable(exc: BaseException) -> str | None:
    """Return why the tracking server did not answer (e.g. '[Errno 111] Connection refused') if that is
    what `exc` (MLflow's error for an HTTP request) comes from, else None."""
    cause: BaseException | None = exc
    while cause is not None:  # MLflow raises its own exception while handling requests' (context, not cause)
        if isinstance(cause, requests.exceptions.RetryError):  # 429 / 5xx answers until retries ran out
            found = re.search(r"too many \d+ error responses", str(cause))
            return found.group(0) if found else "error responses"
        if isinstance(cause, requests.exceptions.Timeout):
            return "timed out"
        if isinstance(cause, requests.exceptions.ConnectionError):
            found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(cause))
            return found.group(0) if found else "connection lost"
        cause = cause.__cause__ or cause.__context__
    return None


if TYPE_CHECKING:  # to a type checker a RetryingClient is the MlflowClient whose methods it forwards
    _ClientType = MlflowClient
else:
    _ClientType = object


class RetryingClient(_ClientType):
    """MLflow's `MlflowClient` with every public method called through `policy` (attributes such as
    `tracking_uri` pass through). Typed as an MlflowClient where it is used: it has all of its methods."""

    def __init__(self, client: MlflowClient, policy: WaitPolicy):
        self._client, self.policy = client, policy

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def through_policy(*args: Any, **kwargs: Any) -> Any:
            return self.policy.call(lambda: attr(*args, **kwargs))

        return through_policy
