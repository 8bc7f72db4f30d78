"""Small numeric helpers shared by the outcome-task checks and the estimators (one copy each, vectorised over pseudo-rows).

>>> div(np.array([1.0, 2.0]), np.array([2.0, 0.0])).tolist()
[0.5, nan]
>>> w, c = ratio_flags(np.array([1.6, 0.5, 1.1]), 1.5, 2.0, np.ones(3, bool)); w.tolist(), c.tolist()
([True, True, False], [False, True, False])
>>> edges = np.array([1.0, 10.0, 100.0])
>>> round(float(hist_quantile(np.array([0, 10, 0, 0]), edges, 0.5, log=True)), 3)   # all in [1, 10)
3.162
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.core.stats import distributions as stats

__all__ = ["div", "rnd", "sig", "pct", "log_effect", "ratio_flags", "mirror", "hist_quantile", "bin_of", "safe_inv",
           "two_sided_z", "one_sided_z", "gtest_vs_expected"]


def div(a: Any, b: Any) -> np.ndarray:
    """``a / b`` where ``b > 0``, NaN elsewhere (no warnings)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def safe_inv(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), 0.0)


def rnd(x: Any, nd: int = 4) -> float | None:
    """A JSON-ready float rounded to ``nd`` decimals (None for NaN/inf)."""
    x = float(x)
    return None if x != x or math.isinf(x) else round(x, nd)


def sig(x: Any, nd: int = 4) -> float | None:
    """A JSON-ready float rounded to ``nd`` significant digits (None for None, NaN and inf).

    >>> sig(123456.0), sig(0.000123456), sig(float("nan"))
    (123500.0, 0.0001235, None)
    """
    if x is None:
        return None
    f = float(x)
    return float(f"{f:.{nd}g}") if math.isfinite(f) else None


def pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.1%}"


def log_effect(ratio: np.ndarray) -> np.ndarray:
    """|log ratio| (0 where the ratio is not positive): a ranking key symmetric in up and down moves."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.log(np.where(np.nan_to_num(ratio) > 0, ratio, 1.0)))


def ratio_flags(ratio: np.ndarray, warn_r: float, crit_r: float, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warning / critical where the ratio is beyond ``warn_r`` (or below its inverse), and ``extra``."""
    r = np.nan_to_num(ratio, nan=1.0)
    warn = ((r >= warn_r) | (r <= 1 / warn_r)) & extra
    crit = ((r >= crit_r) | (r <= 1 / crit_r)) & extra
    return warn, crit


def mirror(comp: np.ndarray, *arrays: np.ndarray) -> None:
    """Complement pseudo-rows take the all-traffic row's value (in place): training has no complements."""
    for a in arrays:
        a[comp] = a[0]


def one_sided_z(z: np.ndarray) -> np.ndarray:
    """P-value of ``z`` for the "greater" alternative (NaN z -> 1)."""
    return np.asarray(stats.norm_sf(np.nan_to_num(z, nan=-np.inf)))


def two_sided_z(z: np.ndarray) -> np.ndarray:
    return np.minimum(1.0, 2.0 * np.asarray(stats.norm_sf(np.abs(np.nan_to_num(z)))))


def gtest_vs_expected(obs: np.ndarray, expected: np.ndarray, ref_n: np.ndarray) -> np.ndarray:
    """G-test p-value per row of counts ``obs`` (P, B) against ``expected`` (P, B), itself estimated.

    ``expected`` rows are normalised to the reference distribution; ``ref_n`` is the size of the
    sample it was estimated from (the two-sample homogeneity test, so a small baseline is not
    mistaken for a known truth). Rows without expectation get p = 1.
    """
    tot = expected.sum(-1, keepdims=True)
    ok = tot[..., 0] > 0
    ref = np.where(tot > 0, expected / np.where(tot > 0, tot, 1.0), 1.0 / expected.shape[-1])
    _, _, p = stats.gtest_gof(obs, ref, ref_n=np.maximum(ref_n, 1.0))
    return np.where(ok, np.asarray(p, dtype=np.float64), 1.0)


def bin_of(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value on ``edges`` (``len(edges) + 1`` bins, open at both ends; NaN -> 0)."""
    return np.searchsorted(edges, np.nan_to_num(x, nan=-np.inf), side="right").astype(np.int64)


def hist_quantile(h: np.ndarray, edges: np.ndarray, q: float, log: bool = False) -> np.ndarray:
    """``q``-quantile per row of histograms ``h`` (..., len(edges) + 1) binned on ``edges``.

    Interpolates inside the bin (log-linearly with ``log``, for log-spaced positive edges); the
    open first bin is one step wide (``log``: ``[0, edges[0])``, linearly), the open last bin
    one step wide. NaN for an empty row. Error: at most one bin width (relative
    width ``edges[1] / edges[0]`` for log edges).
    """
    h = np.asarray(h, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    step = (e[1] / e[0]) if log else (e[1] - e[0])
    lo_edges = np.concatenate([[e[0] / step if log else e[0] - step], e])
    hi_edges = np.concatenate([e, [e[-1] * step if log else e[-1] + step]])
    n = h.sum(-1)
    c = np.cumsum(h, axis=-1)
    k = np.minimum((c < (q * n)[..., None]).sum(-1), h.shape[-1] - 1)
    below = np.take_along_axis(c, k[..., None], -1)[..., 0] - np.take_along_axis(h, k[..., None], -1)[..., 0]
    hk = np.take_along_axis(h, k[..., None], -1)[..., 0]
    frac = np.clip(div(q * n - below, hk), 0.0, 1.0)
    frac = np.where(hk > 0, frac, 1.0)
    lo, hi = lo_edges[k], hi_edges[k]
    if log:
        out = np.where(k == 0, hi * frac, lo * (hi / np.where(lo > 0, lo, 1.0)) ** frac)
    else:
        out = lo + (hi - lo) * frac
    return np.where(n > 0, out, np.nan)
