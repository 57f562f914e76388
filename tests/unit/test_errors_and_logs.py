"""A fault's one line (errors.one_line_summary) and the job's log file (cli.job_log), in process."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from actstudy.cli.job_log import ConsoleFormatter, JobLogFile
from actstudy.errors import one_line_summary

SQL_ERROR = """(sqlite3.OperationalError) database or disk is full
[SQL: INSERT INTO metrics (key, value)
VALUES (?, ?)
WHERE x]
[parameters: ('train/loss', 2.3)]
(Background on this error at: https://sqlalche.me/e/20/e3q8)"""


def test_a_database_error_is_one_line_without_its_statement():
    assert one_line_summary(SQL_ERROR) == "(sqlite3.OperationalError) database or disk is full"
    assert one_line_summary("a\n  b\tc") == "a b c"
    assert one_line_summary("x" * 2000, limit=10) == "x" * 7 + "..."


def test_a_malformed_log_call_keeps_the_log_file_and_a_traceback_stays_out_of_the_console(tmp_path: Path):
    path = tmp_path / "train.log"
    handler = JobLogFile(path)
    log = logging.getLogger("test-job-log")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("one %s", "a", "b")  # wrong arguments: logging's own report, the file goes on
        log.warning("after")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
            record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    finally:
        log.removeHandler(handler)
        handler.close()
    text = path.read_text()
    assert not handler.broken and "after" in text and "ValueError: boom" in text
    console = ConsoleFormatter("%(message)s").format(record)
    assert console == "failed" and record.exc_info is not None  # the record keeps it for the file
