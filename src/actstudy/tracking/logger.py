"""A Lightning logger that writes to one existing MLflow run, one `log_batch` per logging step.

Writes happen on a background thread so training never waits for the store, gathered into one
`log_batch` per `write_every_s` seconds (fewer, larger transactions disturb training less);
`finalize` (and `flush`) write at once and block until every queued point is in the store, so nothing
is lost at the end of a run. A metric's points at or below its last step already logged (in the store,
on a resumed run) are dropped, so no point is logged twice. Each write waits out a locked SQLite store or
a restarting tracking server (its client's `store_client.WaitPolicy`); one that still fails stops the
writer and `flush` raises.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only
from mlflow.tracking import MlflowClient

from actstudy import logs
from actstudy.tracking.store import metric_points

log = logging.getLogger("actstudy")
_BATCH_LIMIT = 1000  # MLflow's maximum metrics per log_batch


class MlflowRunLogger(Logger):
    """Log metrics of one MLflow run (created elsewhere) asynchronously and in batches."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        logged: Mapping[str, int] | None = None,
        write_every_s: float = 2.0,
    ):
        super().__init__()
        self.client, self.run_id = client, run_id
        self.logged = dict(logged or {})  # key -> last step logged (at first: the store's, on a resumed run)
        self.write_every_s = write_every_s
        self._flush_now = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._failed = False
        self.points_written = 0  # metric points the store has accepted (the writer thread's count)
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str:
        return self.run_id

    @property
    def experiment(self) -> MlflowClient:
        return self.client

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Params are logged once, flattened, when the run is created (see `actstudy.jobs.job`)."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        step = int(step or 0)
        # A metric's step only grows: a point at or below its last step (in the store when resumed, or
        # already sent, e.g. Lightning's "epoch" beside each of two tests at the last step) is a duplicate.
        metrics = {k: v for k, v in metrics.items() if step > self.logged.get(k, -1)}
        if not metrics:
            return
        self.logged.update(dict.fromkeys(metrics, step))
        if self._thread is None:
            self._thread = threading.Thread(target=self._write_loop, name="mlflow-writer", daemon=True)
            self._thread.start()
        self._queue.put(metric_points(metrics, step))

    def _write_loop(self) -> None:
        while True:
            batches = [self._queue.get()]  # sleep until there is something to write
            self._flush_now.wait(self.write_every_s)  # then gather for a while: one wake-up per write
            while True:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # after a failed write nothing more is written: the store keeps a prefix of the history, so a
            # resumed run re-logs every step after its checkpoint without a gap
            points = [point for batch in batches for point in batch] if not self._failed else []
            try:
                for start in range(0, len(points), _BATCH_LIMIT):
                    chunk = points[start : start + _BATCH_LIMIT]
                    self.client.log_batch(self.run_id, metrics=chunk)
                    self.points_written += len(chunk)
            except BaseException as exc:  # surfaced by flush()
                self._error, self._failed = exc, True
            finally:
                for _ in batches:
                    self._queue.task_done()

    def flush(self) -> None:
        """Block until every queued metric is in the store; re-raise a write error if one happened."""
        self._flush_now.set()
        self._queue.join()
        self._flush_now.clear()
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"writing metrics to MLflow failed: {error}") from error

    @rank_zero_only
    def log_artifact(self, local_path: Path, artifact_dir: str) -> None:
        """Copy a file into the run's artifacts under `artifact_dir` (replacing an earlier copy)."""
        self.client.log_artifact(self.run_id, str(local_path), artifact_dir)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
        logs.detail().info("%d metric points written to MLflow run %s", self.points_written, self.run_id)
