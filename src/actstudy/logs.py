"""The project's two loggers, named once: `actstudy` for what a person watching a job should read (the
console and the job's log file), `actstudy.detail` for what only the log file keeps (how many metric
points were written, which MLflow run a sweep's job records into). The console filter that tells them
apart is `actstudy.cli.job_log.ConsoleFilter`; import-light, like the other vocabulary modules."""

import logging

LOG = "actstudy"
DETAIL = "actstudy.detail"


def detail() -> logging.Logger:
    """Return the logger whose records go to the job's log file only."""
    return logging.getLogger(DETAIL)
