"""How far a performance estimate strays from the truth beyond sampling noise, per window.

Two corrections keep an estimate's stated error honest.

An estimate made before labels (CBPE, DLE) rests on a map learned on the whole reference - all
hours mixed. When the map is a little wrong at some times of day (the model is slightly
miscalibrated in the evening, the expected-error model misses an interaction that matters at
rush hour), every window at that hour shares the same error: more than the sampling error of
its predictions says. :func:`systematic_error` measures that extra spread on the reference
itself, grouping its rows by hour of day (when it has timestamps): ``tau^2`` is the mean squared
gap between each hour's estimate and its realised value, minus the gap sampling alone would
give. Estimates add ``tau^2`` to their variance. Without timestamps there is no grouping and no
term (``tau = 0``): the stated error then covers sampling and calibration noise only.

Once labels mature, production measures the estimate's own error: :func:`inflation` turns the
standardised gaps ``z = (realised - estimate) / stated error`` of recent matured windows into a
factor (>= 1, never a shrink) for the stated error of the next ones - the reference is small and
its hours are not production's, so some misfit only shows in production.

>>> real = np.array([0.50, 0.62, 0.55, 0.41, 0.52, 0.52]); est = np.full(6, 0.52); se = np.full(6, 0.01)
>>> round(systematic_error(real, est, se), 3)
0.062
>>> systematic_error(real[:1], est[:1], se[:1])   # too few groups to say
0.0
"""

from __future__ import annotations

import numpy as np

from detector.core.inputs.timeparse import parse_timestamps

__all__ = ["systematic_error", "hour_groups", "inflation", "MIN_GROUPS", "MIN_GROUP_ROWS", "MIN_MATURED",
           "MIN_COUNTS"]

MIN_GROUPS = 6  # hours with enough rows to measure a spread
MIN_GROUP_ROWS = 50
MIN_MATURED = 12  # matured windows before their gaps adjust the stated error
#: what a metric's realised value rests on (labelled predictions, acted, positives, the smaller class)
#: before its gap to the estimate is measured: matured windows are pooled until every metric has it
MIN_COUNTS = {"accuracy": 100, "precision": 20, "recall": 20, "auc": 20,
              "macro_f1": 200, "mae": 100, "rmse": 200}  # macro-F1 and RMSE: noisier (small classes, squared tails)


def hour_groups(ts: np.ndarray | list | None, n: int) -> np.ndarray | None:
    """UTC hour of day (0..23) of each row's timestamp (epoch s/ms or RFC 3339), -1 when unknown; None without ts."""
    if ts is None:
        return None
    t = np.asarray(parse_timestamps(ts if isinstance(ts, np.ndarray) else list(ts)), dtype=np.float64)
    if t.size != n:
        raise ValueError(f"timestamps: {t.size} values for {n} rows")
    return np.where(np.isfinite(t), np.floor(np.mod(t, 86400.0) / 3600.0), -1).astype(np.int64)


def systematic_error(real: np.ndarray, est: np.ndarray, se: np.ndarray) -> float:
    """``tau``: spread of ``real - est`` over groups beyond their sampling errors ``se`` (0 if none)."""
    real, est, se = (np.asarray(a, dtype=np.float64) for a in (real, est, se))
    ok = np.isfinite(real) & np.isfinite(est) & np.isfinite(se)
    if ok.sum() < MIN_GROUPS:
        return 0.0
    gap = (real[ok] - est[ok]) ** 2 - se[ok] ** 2
    return float(np.sqrt(max(0.0, gap.mean())))


def inflation(z: np.ndarray) -> float:
    """Factor for the stated error from recent matured windows' gaps ``z``: ``max(1, RMS(z))`` (1 before ``MIN_MATURED``).

    >>> inflation(np.array([0.5, -1.0] * 10)), round(inflation(np.array([2.0, -1.0] * 10)), 3), inflation(np.ones(3) * 5)
    (1.0, 1.581, 1.0)
    """
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z)]
    if z.size < MIN_MATURED:
        return 1.0
    return float(max(1.0, np.sqrt(np.mean(z * z))))
