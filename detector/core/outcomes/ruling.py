"""Small shared pieces of the outcome rules: rounding, ratio flags, effect sizes, the Poisson tail."""

from __future__ import annotations

import numpy as np

from detector.core.stats import distributions as stats

__all__ = ["poisson_pvalue"]


def _r(x: float) -> float | None:
    return None if x != x else round(float(x), 4)


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.1%}"


def _ratio_flags(ratio: np.ndarray, warn_r: float, crit_r: float, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.nan_to_num(ratio, nan=1.0)
    warn = ((r >= warn_r) | (r <= 1 / warn_r)) & extra
    crit = ((r >= crit_r) | (r <= 1 / crit_r)) & extra
    return warn, crit


def _log_effect(ratio: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.log(np.where(ratio > 0, ratio, 1.0)))


def poisson_pvalue(x: np.ndarray, lam: np.ndarray, alternative: str) -> np.ndarray:
    """Exact Poisson tail p-value of count ``x`` with mean ``lam`` (via the chi-square identity).

    ``P(X >= x) = P(chi2(2x) <= 2 lam)``, ``P(X <= x) = P(chi2(2x + 2) > 2 lam)``; slightly
    conservative for a binomial count, exact enough where the normal approximation is not.

    >>> [round(float(v), 4) for v in poisson_pvalue(np.array([16.0, 0.0]), np.array([6.3, 6.3]), "greater")]
    [0.0008, 1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 1e-12)
    upper = np.where(x > 0, 1.0 - np.asarray(stats.chi2_sf(2 * lam, np.maximum(2 * x, 1e-9))), 1.0)
    if alternative == "greater":
        return upper
    lower = np.asarray(stats.chi2_sf(2 * lam, 2 * x + 2))
    if alternative == "less":
        return lower
    return np.minimum(1.0, 2 * np.minimum(upper, lower))
