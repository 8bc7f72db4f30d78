"""Exact, bounded, mergeable summaries of one column, updated chunk by chunk.

:class:`NumericSummary` (float64 chunks, NaN = missing) keeps counts, min/max, mean and variance
(Chan et al.'s pairwise merge: no loss of precision from summing squares), the share of zeros,
whether every value is integral, and the moments of ``log|x|`` -- all exact, O(1) memory.

:class:`FrequentCounter` counts text values exactly while there are at most ``capacity`` distinct
ones. Beyond that it becomes the mergeable Misra-Gries summary (Agarwal et al., "Mergeable
summaries", 2012): when the table outgrows ``capacity`` every count is lowered by the
``capacity // 2 + 1``-th largest count and the non-positive ones are dropped. Each kept count
then underestimates the truth by at most :attr:`FrequentCounter.error` ``<= n / (capacity // 2 + 1)``,
and every value more frequent than that bound is still in the table. Memory: ``capacity``
entries.

>>> s = NumericSummary().update(np.array([1.0, 2.0, np.nan])).update(np.array([3.0, 0.0]))
>>> s.n, s.missing, s.min, s.max, s.mean, round(s.std, 6), s.zeros, s.integer
(4, 1, 0.0, 3.0, 1.5, 1.118034, 1, True)
>>> c = FrequentCounter(capacity=4)
>>> c = c.update(["a", "b", "a", None]).update(["c", "d", "e", "a"])
>>> c.n, c.missing, c.counts["a"], c.exact, c.error
(7, 1, 2, False, 1)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["FrequentCounter", "NumericSummary"]


class NumericSummary:
    """Exact streaming statistics of the finite values of a numeric column (NaN/inf = missing)."""

    def __init__(self) -> None:
        self.rows = 0  # values seen (missing included)
        self.n = 0  # finite values
        self.min = math.inf
        self.max = -math.inf
        self.mean = 0.0
        self.m2 = 0.0
        self.zeros = 0
        self.integer = True
        self.n_log = 0  # finite non-zero values
        self.log_mean = 0.0
        self.log_m2 = 0.0

    @property
    def missing(self) -> int:
        return self.rows - self.n

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0), as numpy's ``std``."""
        return math.sqrt(self.m2 / self.n) if self.n else math.nan

    @property
    def log_std(self) -> float:
        return math.sqrt(self.log_m2 / self.n_log) if self.n_log else math.nan

    def update(self, x: np.ndarray) -> NumericSummary:
        self.rows += len(x)
        s = x[np.isfinite(x)]
        if len(s) == 0:
            return self
        self.min = min(self.min, float(s.min()))
        self.max = max(self.max, float(s.max()))
        with np.errstate(over="ignore", invalid="ignore"):
            self.n, self.mean, self.m2 = _merge(self.n, self.mean, self.m2, len(s), float(s.mean()), float(s.var()) * len(s))
        nz = s[s != 0]
        self.zeros += len(s) - len(nz)
        if self.integer:
            self.integer = bool(np.all(np.floor(s) == s))
        if len(nz):
            la = np.log(np.abs(nz))
            self.n_log, self.log_mean, self.log_m2 = _merge(
                self.n_log, self.log_mean, self.log_m2, len(la), float(la.mean()), float(la.var()) * len(la)
            )
        return self


def _merge(n_a: int, mean_a: float, m2_a: float, n_b: int, mean_b: float, m2_b: float) -> tuple[int, float, float]:
    """Chan, Golub & LeVeque's pairwise update of (count, mean, sum of squared deviations)."""
    n = n_a + n_b
    if n_a == 0:
        return n_b, mean_b, m2_b
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n


class FrequentCounter:
    """Counts of text values (``None`` = missing): exact up to ``capacity`` distinct values, then
    a Misra-Gries summary whose counts are low by at most :attr:`error`."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2 (got {capacity})")
        self.capacity = capacity
        self.counts: Counter[str] = Counter()
        self.n = 0  # non-missing values
        self.missing = 0
        self.error = 0  # total decrement: every kept count is low by at most this much
        self.distinct_seen = 0  # distinct values while exact; a lower bound afterwards

    @property
    def exact(self) -> bool:
        return self.error == 0

    def update(self, values: Sequence[Any] | Iterable[Any]) -> FrequentCounter:
        c = Counter(values)
        miss = c.pop(None, 0)
        self.missing += miss
        self.n += sum(c.values())
        self.counts.update(c)
        if len(self.counts) > self.capacity:
            self._prune()
        if self.exact:
            self.distinct_seen = len(self.counts)
        return self

    def merge(self, other: FrequentCounter) -> FrequentCounter:
        """Add another counter's counts (same capacity): the error bounds add up."""
        self.n += other.n
        self.missing += other.missing
        self.error += other.error
        self.counts.update(other.counts)
        if len(self.counts) > self.capacity:
            self._prune()
        if self.exact:
            self.distinct_seen = len(self.counts)
        return self

    def most_common(self, k: int) -> list[tuple[str, int]]:
        """The ``k`` largest (value, count) pairs, ties by value (deterministic)."""
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def _prune(self) -> None:
        keep = self.capacity // 2
        self.distinct_seen = max(self.distinct_seen, len(self.counts))
        cut = sorted(self.counts.values(), reverse=True)[keep]  # the (keep + 1)-th largest count
        self.error += cut
        self.counts = Counter({v: c - cut for v, c in self.counts.items() if c > cut})
