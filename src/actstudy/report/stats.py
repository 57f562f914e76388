"""Statistics over seeds and over the end of training, shared by the report's tables and claims."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from actstudy.report.collect import RunData

END_POINTS = 5  # "@end" is the mean of the last monitored steps, not one mini-batch
# 97.5 % quantiles of Student's t for 1 .. 30 degrees of freedom (beyond: the normal's 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145,
         2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048,
         2.045, 2.042)  # fmt: skip


@dataclass(frozen=True)
class Interval:
    """The mean of `n` values with a 95 % t-interval [low, high] (low = high = mean when n == 1)."""

    mean: float
    low: float
    high: float
    n: int

    def text(self, fmt: Callable[[float], str]) -> str:
        """Return e.g. "0.21 [0.18, 0.25] (n=3)", or "0.21 (1 seed)"."""
        if self.n == 1:
            return f"{fmt(self.mean)} (1 seed)"
        return f"{fmt(self.mean)} [{fmt(self.low)}, {fmt(self.high)}] (n={self.n})"


def interval(values: Iterable[float], log: bool = False) -> Interval | None:
    """Return the 95 % t-interval of the finite `values` (of their logarithms when `log`), None if none."""
    xs = [v for v in values if v is not None and math.isfinite(v) and (v > 0 or not log)]
    if not xs:
        return None
    if log:
        xs = [math.log(v) for v in xs]
    mean = statistics.fmean(xs)
    half = 0.0
    if len(xs) > 1:
        t = _T975[len(xs) - 2] if len(xs) - 1 <= len(_T975) else 1.96
        half = t * statistics.stdev(xs) / math.sqrt(len(xs))
    low, high = mean - half, mean + half
    if log:
        mean, low, high = math.exp(mean), math.exp(low), math.exp(high)
    return Interval(mean, low, high, len(xs))


def end_value(run: RunData, key: str) -> float | None:
    """Return the mean of `key` over its last `END_POINTS` logged steps (None if it has none)."""
    points = run.series(key)[-END_POINTS:]
    return statistics.fmean(v for _, v in points) if points else None
