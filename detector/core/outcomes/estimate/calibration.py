"""Calibration maps fitted on the reference's labelled rows: P(y = 1 | score bin), isotonic.

A map is plain data (``format = "skewwatch.calibration/1"``): ``bins`` equal-width bins of the
score on [0, 1] (the same 100 bins the binary cohort histograms use), the calibrated probability
``p`` of each bin and the number of labelled rows ``n`` behind it. It is fitted by
pool-adjacent-violators (isotonic regression, weighted by bin counts) on the binned scores, so
it is monotone in the score, and it needs no parameters: blocks grow until the rates increase.
Bins the reference never saw take the value of the nearest fitted block (the ends extend flat).

``n`` is the size of the isotonic block a bin belongs to: the variance of ``p`` is taken as
``p (1 - p) / n`` (the binomial variance of the pooled rate, ignoring the order constraint -
slightly conservative inside long blocks). Performance estimates add it to their standard error.

>>> s = np.array([0.05, 0.15, 0.25, 0.35, 0.85, 0.95]); y = np.array([0, 1, 0, 0, 1, 1])
>>> cal = fit_calibration(s, y, bins=10)
>>> [round(v, 3) for v in cal["p"][:4]], cal["n"][:4]
([0.0, 0.333, 0.333, 0.333], [1, 3, 3, 3])
>>> calibrated(cal, np.array([0.16, 0.99])).round(3).tolist()
[0.333, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["CALIBRATION_FORMAT", "fit_calibration", "calibrated", "calibration_arrays", "pav", "score_bin"]

CALIBRATION_FORMAT = "skewwatch.calibration/1"


def score_bin(score: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each score on [0, 1] (clipped; NaN -> 0, mask it)."""
    return np.clip(np.floor(np.nan_to_num(score) * bins), 0, bins - 1).astype(np.int64)


def pav(rate: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted isotonic (non-decreasing) fit of ``rate``: (fitted value, block weight) per entry.

    >>> v, w = pav(np.array([0.1, 0.5, 0.3, 0.9]), np.array([1.0, 1.0, 1.0, 2.0]))
    >>> v.tolist(), w.tolist()
    ([0.1, 0.4, 0.4, 0.9], [1.0, 2.0, 2.0, 2.0])
    """
    vals: list[float] = []
    wts: list[float] = []
    sizes: list[int] = []
    for r, w in zip(rate.tolist(), weight.tolist(), strict=True):
        vals.append(r)
        wts.append(w)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w2 = wts[-2] + wts[-1]
            v2 = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w2
            s2 = sizes[-2] + sizes[-1]
            del vals[-1], wts[-1], sizes[-1]
            vals[-1], wts[-1], sizes[-1] = v2, w2, s2
    return np.repeat(vals, sizes), np.repeat(wts, sizes)


def fit_calibration(score: np.ndarray, y: np.ndarray, bins: int = 100) -> dict[str, Any]:
    """Isotonic calibration map of 0/1 labels ``y`` on scores in [0, 1] (NaN rows ignored)."""
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(score) & np.isfinite(y)
    b = score_bin(score[ok], bins)
    n = np.bincount(b, minlength=bins).astype(np.float64)
    pos = np.bincount(b, weights=y[ok], minlength=bins)
    p = np.full(bins, np.nan)
    blk = np.zeros(bins)
    seen = np.flatnonzero(n > 0)
    if seen.size:
        fit, w = pav(pos[seen] / n[seen], n[seen])
        # every bin takes the block of the nearest seen bin at or below it (above it before the first)
        idx = np.clip(np.searchsorted(seen, np.arange(bins), side="right") - 1, 0, seen.size - 1)
        p, blk = fit[idx], w[idx]
    return {"format": CALIBRATION_FORMAT, "bins": bins, "p": [float(v) for v in p], "n": [int(v) for v in blk],
            "rows": int(ok.sum()), "positives": int(pos.sum())}


def calibration_arrays(cal: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(p, variance of p) per bin of a calibration map."""
    if cal.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"calibration map has format {cal.get('format')!r}; expected {CALIBRATION_FORMAT!r}")
    p = np.asarray(cal["p"], dtype=np.float64)
    n = np.asarray(cal["n"], dtype=np.float64)
    var = np.where(n > 0, p * (1 - p) / np.maximum(n, 1.0), 0.25)
    return np.nan_to_num(p, nan=0.5), var


def calibrated(cal: Mapping[str, Any], score: np.ndarray) -> np.ndarray:
    """Calibrated probability of each score (NaN scores stay NaN)."""
    p, _ = calibration_arrays(cal)
    out = p[score_bin(score, int(cal["bins"]))]
    return np.where(np.isnan(score), np.nan, out)
