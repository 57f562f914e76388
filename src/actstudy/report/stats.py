"""Statistics over seeds and over the end of training, shared by the report's tables and claims."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import overload

from actstudy.report.collect import RunData

END_POINTS = 5  # "@end" is the mean of the last monitored steps, not one mini-batch
# 97.5 % quantiles of Student's t for 1 .. 30 degrees of freedom (beyond: the normal's 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145,
         2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048,
         2.045, 2.042)  # fmt: skip


SEEDS, TEST_IMAGES = "seeds", "test images"  # what an interval's spread covers


@dataclass(frozen=True)
class Interval:
    """A mean with a 95 % interval [low, high] over `n` things, `over` saying which: seeds (a t-interval of
    n runs; low = high = mean when n == 1), or the test images of one run (a Wilson interval)."""

    mean: float
    low: float
    high: float
    n: int
    over: str = SEEDS

    @property
    def can_rank(self) -> bool:
        """Return whether the interval has a spread to compare (two seeds or more, or a test-set one)."""
        return self.n >= 2

    def text(self, fmt: Callable[[float], str]) -> str:
        """Return e.g. "0.21 [0.18, 0.25] (n=3)", "0.21 (1 seed)" or "0.21 [0.19, 0.24] (1 seed, 1000 test
        images)"."""
        if self.over == TEST_IMAGES:
            return f"{fmt(self.mean)} [{fmt(self.low)}, {fmt(self.high)}] (1 seed, {self.n} test images)"
        if self.n == 1:
            return f"{fmt(self.mean)} (1 seed)"
        return f"{fmt(self.mean)} [{fmt(self.low)}, {fmt(self.high)}] (n={self.n})"


def interval(values: Iterable[float | None], log: bool = False) -> Interval | None:
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


@overload
def clipped(value: Interval) -> Interval: ...
@overload
def clipped(value: Interval | None) -> Interval | None: ...
def clipped(value: Interval | None) -> Interval | None:
    """Return an interval of a fraction (an accuracy) with its ends clipped to [0, 1]."""
    if value is None:
        return None
    return dataclasses.replace(value, low=max(value.low, 0.0), high=min(value.high, 1.0))


def wilson(accuracy: float, images: int, z: float = 1.96) -> Interval:
    """Return the 95 % Wilson score interval of an accuracy measured on `images` test images.

    It covers the sampling of a finite test set (another 1,000 images of the same distribution would give
    an accuracy in it 95 % of the time), not seed-to-seed variation: a one-seed comparison's only spread.
    """
    n, p = images, min(max(accuracy, 0.0), 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(p, max(centre - half, 0.0), min(centre + half, 1.0), n, TEST_IMAGES)


def end_value(run: RunData, key: str) -> float | None:
    """Return the mean of `key` over its last `END_POINTS` logged steps (None if it has none)."""
    points = run.series(key)[-END_POINTS:]
    return statistics.fmean(v for _, v in points) if points else None
