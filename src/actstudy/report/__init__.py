"""Comparison report of a sweep: tables and figures from the MLflow runs, attached to the parent run.

Entry points: ``write_report`` (used by the end-of-sweep Hydra callback) and ``python -m actstudy.report``.
Both names are imported lazily so that ``python -m actstudy.report`` fails fast on bad input without first
loading torch and matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actstudy.report.build import write_report
    from actstudy.report.collect import ReportError

__all__ = ["ReportError", "write_report"]
_HOMES = {"ReportError": "actstudy.report.collect", "write_report": "actstudy.report.build"}


def __getattr__(name: str) -> Any:
    """Return ``write_report`` or ``ReportError``, importing their module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
