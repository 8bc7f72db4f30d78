"""A unit change that began inside the window: part of the events scaled by a unit factor.

The unit check (:mod:`detector.core.checks.numeric`) looks for a pure shift of ``log|x|`` with an
unchanged log-spread. The window in which a producer switches units holds both kinds of events -
the first forty minutes in euros, the last twenty in cents - and that mixture has a shifted mean
*and* a wider spread, so the check waited for the next, clean window while the offline parity
check had already paged the same fault as a generic mismatch. The mixture is just as specific:

a fraction ``q`` of the events is the reference scaled by ``k`` (``L = ln k``). Its log moments are
``mean = m0 + q L`` and ``var = s0^2 + q (1 - q) L^2``, so with ``d`` the mean shift and ``e`` the
variance excess, ``L = (e + d^2) / d`` and ``q = d / L``. A window is a unit change begun inside it
when

* the factor is a unit's (``k >= unit_ratio`` or ``<= 1 / unit_ratio``, the full check's threshold),
* enough of the window changed to tell a unit from a tail (``q >= MIN_SHARE``; below that the next
  window decides),
* the two parts are apart: ``|L|`` is at least :data:`SEPARATION` training log-spreads, so the window
  is clearly two-humped (a distribution that moved and widened as a whole solves the same two
  equations with a small factor and a large share; at a hundred events the histogram cannot tell
  the two apart, the separation can). A factor too small for that (x24 on a feature spread over
  decades) waits for the next, clean window and the full check,
* and the mixture explains the window's histogram: the training histogram mixed with itself
  scaled by ``k`` (coarse bins, the CDF read at ``edge / k``) is not rejected by the G-test
  (``p >= FIT_P``), while the pure training histogram is (the mean-shift test's p-value). A
  distribution that drifted, got a heavier tail or a second mode somewhere else does not look like
  training plus training times a hundred.

Nothing here keeps state.
"""

from __future__ import annotations

import numpy as np

from detector.core.stats import distributions as stats

__all__ = ["partial_unit", "MIN_SHARE", "FIT_P", "SEPARATION"]

#: least share of a window's events that must carry the new unit for the window to be judged a mixture
MIN_SHARE = 0.2
#: least distance of the two parts' log-means, in training log-spreads
SEPARATION = 3.0
#: the G-test p-value at or above which the two-part mixture is taken to explain the window
FIT_P = 0.01


def partial_unit(mlog: np.ndarray, sdlog: np.ndarray, rm: np.ndarray, rs: np.ndarray, fine: np.ndarray, RF: np.ndarray,
                 edges: np.ndarray, coarse: np.ndarray, ref_n: np.ndarray, unit_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pseudo-row: (is a unit change begun in the window, scale factor k, share q of events scaled).

    ``mlog``/``sdlog``: the window's mean and SD of log|x| (non-zero values); ``rm``/``rs``: training's;
    ``fine``: the window's fine-bin counts (rows x bins, bins as training's ``freqs``: below the first
    edge, between edges, at or above the last); ``RF``: training's fine shares per row; ``coarse``: the
    fine -> coarse bin map; ``ref_n``: training rows per row.

    >>> rng = np.random.default_rng(1)
    >>> ref = rng.lognormal(3.5, 1.2, 20000)
    >>> edges = np.quantile(ref, np.linspace(0.01, 0.99, 49))
    >>> RF = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=50) / ref.size
    >>> x = np.concatenate([rng.lognormal(3.5, 1.2, 110), 100 * rng.lognormal(3.5, 1.2, 40)])  # 40 of 150 in cents
    >>> cur = np.bincount(np.searchsorted(edges, x, side="right"), minlength=50)[None].astype(float)
    >>> lx = np.log(x)
    >>> hit, k, q = partial_unit(np.array([lx.mean()]), np.array([lx.std()]), np.array([np.log(ref).mean()]),
    ...                          np.array([np.log(ref).std()]), cur, RF[None], edges, np.arange(50) // 5, np.array([20000.0]), 8.0)
    >>> bool(hit[0]), bool(50 < k[0] < 200), bool(0.15 < q[0] < 0.4)
    (True, True, True)
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        d = mlog - rm
        e = sdlog * sdlog - rs * rs
        L = (e + d * d) / d
        q = d / L
        k = np.exp(L)
    ok = (np.isfinite(L) & np.isfinite(q) & (q >= MIN_SHARE) & (q <= 1.0) & ((k >= unit_ratio) | (k <= 1.0 / unit_ratio))
          & (np.abs(L) >= SEPARATION * rs))
    hit = np.zeros(len(mlog), dtype=bool)
    for i in np.flatnonzero(ok).tolist():
        mix = (1.0 - q[i]) * RF[i] + q[i] * _scaled(RF[i], edges, float(k[i]))
        C = int(coarse.max()) + 1
        obs = np.bincount(coarse, weights=fine[i], minlength=C)
        exp = np.bincount(coarse, weights=mix, minlength=C)
        _, _, p = stats.gtest_gof(obs, exp / max(exp.sum(), 1e-12), ref_n=float(ref_n[i]))
        hit[i] = float(p) >= FIT_P
    return hit, np.where(ok, k, np.nan), np.where(ok, q, np.nan)


def _scaled(freqs: np.ndarray, edges: np.ndarray, k: float) -> np.ndarray:
    """Fine-bin shares of ``k * X`` for ``X`` with shares ``freqs`` on ``edges`` (CDF interpolated between edges)."""
    cdf = np.cumsum(freqs)[:-1]  # P(X < edge_i), roughly
    at = np.interp(np.asarray(edges, dtype=np.float64) / k, edges, cdf, left=0.0, right=1.0)
    if k < 0:  # not a unit (units scale by positive factors)
        return freqs
    return np.diff(np.concatenate([[0.0], np.maximum.accumulate(at), [1.0]]))
