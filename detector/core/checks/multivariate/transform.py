"""Feature transforms of the multivariate drift check: each feature to normal scores by its reference quantiles.

A value ``x`` becomes ``z = Phi^-1(F(x))`` where ``F`` is the reference's empirical CDF, kept as
knots: the unique values of the 0.5%..99.5% quantiles and the mean quantile level of each (a
value the reference holds for many rows - a zero count, a default - maps to the middle of its
mass, not to one end). Between knots ``F`` is linear; beyond them it is clipped to the outer
levels, so one wild value moves ``z`` by at most ~2.6 (between knots ``z`` is interpolated
linearly from the knots' normal scores). Missing values map to 0 (the median):
missingness has its own checks. Units, skew and heavy tails stop mattering: what is left is how
features move together.

>>> k = quantile_knots(np.arange(1000.0))
>>> np.round(normal_scores(np.array([499.5, 10.0, np.nan, 1e9]), k), 2).tolist()
[0.0, -2.33, 0.0, 2.58]
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["norm_ppf", "quantile_knots", "score_knots", "normal_scores", "LEVELS"]

LEVELS = np.concatenate([[0.005], np.arange(0.01, 1.0, 0.01), [0.995]])


def quantile_knots(x: np.ndarray) -> dict[str, list[float]]:
    """Knots of the reference CDF of one numeric column (NaN ignored): ``{"x": [...], "u": [...]}``."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"x": [0.0], "u": [0.5]}
    q = np.quantile(x, LEVELS)
    ux, inv = np.unique(q, return_inverse=True)
    u = np.bincount(inv, weights=LEVELS) / np.bincount(inv)
    return {"x": [float(v) for v in ux], "u": [float(v) for v in u]}


def score_knots(knots: dict[str, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """The knots as arrays of values and their normal scores (what :func:`normal_scores` interpolates)."""
    return np.asarray(knots["x"], dtype=np.float64), norm_ppf(np.asarray(knots["u"], dtype=np.float64))


def normal_scores(x: np.ndarray, knots: dict[str, list[float]] | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``Phi^-1(F(x))`` per value (see the module docstring); NaN -> 0.

    Interpolated between the knots' normal scores (one ``np.interp`` per column: the inverse
    normal is evaluated at the ~100 knots, not per value; between 1% quantile levels the
    difference from interpolating the CDF first is far below the sampling noise).
    """
    kx, kz = score_knots(knots) if isinstance(knots, dict) else knots
    x = np.asarray(x, dtype=np.float64)
    if kx.size == 1:
        return np.zeros(x.shape)
    fin = np.isfinite(x)
    if fin.all():
        return np.interp(x, kx, kz)
    return np.where(fin, np.interp(np.where(fin, x, kx[0]), kx, kz), 0.0)


def norm_ppf(p: np.ndarray) -> np.ndarray:
    """Standard normal quantile (:func:`scipy.special.ndtri`; p clipped to (0, 1), so the ends stay finite).

    >>> norm_ppf(np.array([0.5, 0.975])).round(4).tolist()
    [0.0, 1.96]
    """
    return special.ndtri(np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1 - 1e-16))
