"""One statistic of one window (or cohort), for every pseudo-row: what every check returns.

Pseudo-rows are all traffic, each slice row and each slice's complement (all traffic minus that
slice), as :class:`~detector.core.checks.window.View` lays them out. Selection
(:mod:`detector.core.decisions.select`) reads nothing else: false-discovery-rate control over the p-values,
the effect-size gate, slice localisation, then one finding per feature and slice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Result"]


@dataclass
class Result:
    kind: str
    feature: str | None
    statistic: str
    value: np.ndarray  # (P,)
    tested: np.ndarray  # (P,) bool
    warn: np.ndarray  # (P,) bool
    crit: np.ndarray  # (P,) bool
    pvalue: np.ndarray  # (P,) NaN = decided without a test (deterministic facts)
    threshold: float | np.ndarray
    evidence: Callable[[int], dict[str, Any]]
    summary: Callable[[int], str]
    effect: np.ndarray | None = None  # ranking key (defaults to |value|)
