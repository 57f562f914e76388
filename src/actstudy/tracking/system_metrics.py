"""MLflow's own system metrics monitor on a job's run: CPU, memory, disk, network, and GPU when pynvml
sees one, logged as `system/*` metrics (the run page's "System metrics" tab)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("actstudy")

# Seconds between samples: MLflow's default (10 s) leaves a short run with one point or none.
# MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL, when set, wins (MLflow reads it first).
SAMPLING_INTERVAL_S = 2.0


def start_monitor(uri: str, run_id: str, resume: bool) -> Any | None:
    """Start sampling into run `run_id`; return the monitor (its `finish()` stops it), None if it cannot.

    `resume`: a continued run's samples go on from its last `system/*` step.
    """
    # The class `mlflow.start_run(log_system_metrics=True)` attaches (mlflow/tracking/fluent.py); start_run
    # itself would make the run the process's active fluent run, which actstudy's client-made runs avoid.
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor  # imports psutil

        monitor = SystemMetricsMonitor(
            run_id, sampling_interval=SAMPLING_INTERVAL_S, resume_logging=resume, tracking_uri=uri
        )
    except Exception as exc:  # e.g. psutil missing: the run goes on without system metrics
        log.warning("system metrics are not recorded: %s", exc)
        return None
    monitor.start()
    return monitor
