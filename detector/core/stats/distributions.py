"""Vectorised distribution distances and significance tests for the drift detector.

Everything here is pure (no state, no I/O). Distances are numpy; distribution tails are
:mod:`scipy.special` (vectorised C; scipy ships with every install, river needs it). The engine calls
these functions thousands of times per window close, so each one works on a whole batch at once:

* histogram functions take arrays of shape ``(..., B)`` -- the leading axes index independent tests
  (feature x slice, ...), the last axis holds the ``B`` bins -- and return one value per row (shape
  ``(...)``). Reference inputs of shape ``(B,)`` broadcast against every row.
* element-wise functions (:func:`chi2_sf`, :func:`norm_sf`, ...) broadcast their arguments.
* a 0-d result is returned as a plain Python ``float`` (or ``int``), so a single 1-D histogram or
  scalar arguments give scalars.

Histogram rows (reference or observed) may be counts or probabilities: every function normalises
them per row. A row whose total is zero has no distribution, and distances on it are ``nan``. NaN
inputs propagate to NaN outputs.

Accuracy: :func:`chi2_sf` and :func:`norm_sf` are scipy's (``chdtrc``, ``ndtr``: a few ulp);
:func:`proportion_test` is an exact evaluation of the continuity-corrected normal approximation.

>>> import numpy as np
>>> ref = np.array([0.25, 0.25, 0.25, 0.25])
>>> counts = np.array([[25, 25, 25, 25], [10, 20, 30, 40]])
>>> np.round(psi(ref, counts), 4).tolist()
[0.0, 0.2282]
>>> stat, df, p = gtest_gof(counts, ref)
>>> df.tolist(), np.round(p, 4).tolist()
([3, 3], [1.0, 0.0001])
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = [
    "psi",
    "js_distance",
    "linf",
    "ks_binned",
    "chi2_sf",
    "poisson_ratio_pvalue",
    "gtest_gof",
    "norm_sf",
    "proportion_test",
    "benjamini_hochberg",
    "poisson_pvalue",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

_LN2 = math.log(2.0)


# --------------------------------------------------------------------------------------- helpers


def _out(a: FloatArray) -> FloatArray | float:
    """Return a 0-d result as a Python float, anything else unchanged."""
    return float(a) if a.ndim == 0 else a


def _as_hist(x: ArrayLike, name: str) -> FloatArray:
    """``x`` as a float array with a non-empty, non-negative bins axis."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        raise ValueError(f"{name} needs a bins axis, got a scalar")
    if a.shape[-1] == 0:
        raise ValueError(f"{name} has no bins")
    if np.any(a < 0):
        raise ValueError(f"{name} must be non-negative")
    return a


def _normalise(a: FloatArray) -> FloatArray:
    """Divide every row by its total; rows with total zero become all-NaN."""
    total = a.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = a / total
    p[np.broadcast_to(total == 0, p.shape)] = np.nan
    return p


def _xlogratio(x: FloatArray, y: FloatArray) -> FloatArray:
    """``x * log(x / y)`` element-wise with ``0 log 0 = 0``.

    Gives ``inf`` where ``x > 0 == y`` and propagates NaN (unlike ``np.where(x > 0, ..., 0)``).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return x * np.log(np.where(x > 0, x / y, 1.0))


# ------------------------------------------------------------------------------------ distances


def psi(ref_p: ArrayLike, counts: ArrayLike, eps: float = 1e-4) -> FloatArray | float:
    """Population Stability Index of observed ``counts`` against the reference distribution.

    ``PSI = sum_b (o_b - r_b) * ln(o_b / r_b)`` where ``r`` is ``ref_p`` and ``o`` the observed
    proportions (both normalised per row). Smoothing: before the difference and the log, both are
    clipped from below to ``eps`` (``max(p, eps)``, no renormalisation), so an empty bin on either
    side contributes a large but finite term instead of ``inf``. Rows with zero total give NaN.

    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.

    >>> round(psi([0.5, 0.5], [30, 70]), 12)  # 0.2 * (ln(0.7/0.5) - ln(0.3/0.5))
    0.169459572077
    >>> np.round(psi([0.5, 0.5], [[50, 50], [0, 0], [100, 0]]), 4).tolist()
    [0.0, nan, 4.6043]
    """
    if eps <= 0:
        raise ValueError("eps must be positive")
    r = np.maximum(_normalise(_as_hist(ref_p, "ref_p")), eps)
    o = np.maximum(_normalise(_as_hist(counts, "counts")), eps)
    return _out(np.sum((o - r) * np.log(o / r), axis=-1))


def js_distance(p: ArrayLike, q: ArrayLike) -> FloatArray | float:
    """Jensen-Shannon distance (square root of the base-2 JS divergence), in ``[0, 1]``.

    ``p`` and ``q`` may be counts or probabilities; both are normalised per row. Matches
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``. Zero-total rows give NaN.

    >>> round(js_distance([1, 0], [0, 1]), 12), js_distance([3, 1], [30, 10])
    (1.0, 0.0)
    """
    pn = _normalise(_as_hist(p, "p"))
    qn = _normalise(_as_hist(q, "q"))
    m = 0.5 * (pn + qn)
    div = 0.5 * (_xlogratio(pn, m).sum(axis=-1) + _xlogratio(qn, m).sum(axis=-1)) / _LN2
    return _out(np.sqrt(np.clip(div, 0.0, 1.0)))


def linf(p: ArrayLike, q: ArrayLike) -> FloatArray | float:
    """L-infinity (Chebyshev) distance between the normalised rows of ``p`` and ``q``.

    This is TFDV's drift/skew metric for categorical features. Zero-total rows give NaN.

    >>> linf([1, 1, 2], [[1, 1, 2], [2, 1, 1]])
    array([0.  , 0.25])
    """
    pn = _normalise(_as_hist(p, "p"))
    qn = _normalise(_as_hist(q, "q"))
    return _out(np.max(np.abs(pn - qn), axis=-1))


def ks_binned(ref_p: ArrayLike, counts: ArrayLike) -> FloatArray | float:
    """Kolmogorov-Smirnov distance evaluated at the bin boundaries.

    ``max_b |cumsum(ref_p)_b - cumsum(obs_p)_b|`` with both rows normalised. For data binned on
    the same edges this equals the two-sample KS statistic of the binned values (a lower bound on
    the KS statistic of the raw values). Zero-total rows give NaN.

    >>> round(ks_binned([0.25, 0.25, 0.25, 0.25], [10, 20, 30, 40]), 12)
    0.2
    """
    r = np.cumsum(_normalise(_as_hist(ref_p, "ref_p")), axis=-1)
    o = np.cumsum(_normalise(_as_hist(counts, "counts")), axis=-1)
    return _out(np.max(np.abs(r - o), axis=-1))


# ------------------------------------------------------------------------------- KS probability


# -------------------------------------------------------------------------------- chi-square sf


def chi2_sf(x: ArrayLike, df: ArrayLike) -> FloatArray | float:
    """Chi-square survival function ``P(X > x)`` for ``df`` degrees of freedom (any ``df > 0``).

    :func:`scipy.special.chdtrc` (the regularised upper incomplete gamma ``Q(df/2, x/2)``, vectorised
    C), with the conventions the checks rely on: ``x <= 0`` gives 1.0, ``x = inf`` 0.0, results below
    the double range are exactly 0.0, ``df <= 0`` or NaN gives NaN. ``x`` and ``df`` broadcast.

    >>> round(chi2_sf(3.841458820694124, 1), 12), chi2_sf(0.0, 5), chi2_sf(1e5, 10)
    (0.05, 1.0, 0.0)
    >>> np.round(chi2_sf([1.0, 10.0, 100.0], [[1], [10]]), 6).tolist()
    [[0.317311, 0.001565, 0.0], [0.999828, 0.440493, 0.0]]
    """
    xx = np.asarray(x, dtype=np.float64)
    dd = np.asarray(df, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        res = special.chdtrc(np.where(dd > 0, dd, np.nan), np.where(xx < 0, 0.0, xx))
    return _out(np.asarray(res, dtype=np.float64))


# ------------------------------------------------------------------------------------- G-test


def gtest_gof(
    counts: ArrayLike,
    ref_p: ArrayLike,
    ref_n: ArrayLike | None = None,
    min_expected: float = 1.0,
) -> tuple[FloatArray | float, IntArray | int, FloatArray | float]:
    """G-test (log-likelihood ratio) of observed ``counts`` rows against the reference.

    * ``ref_n is None``: goodness of fit against the known distribution ``ref_p``:
      ``G = 2 sum O ln(O / E)`` with ``E = n * ref_p``, ``df = k - 1``.
    * ``ref_n`` given (scalar or one per row): the reference is itself a sample of ``ref_n``
      values, so the homogeneity G-test on the 2 x B table ``[ref_p * ref_n; counts]`` is used,
      ``df = k - 1``.

    Sparse bins: per row, every bin whose expected count is below ``min_expected`` (in the 2 x B
    case: whose smaller expected count is) or zero is pooled into one combined bin, so ``k`` is the
    number of kept bins plus one if the pooled bin is non-empty. A non-empty observed bin with zero
    reference probability (GOF case) gives ``G = inf``, ``p = 0``: impossible under the reference.

    Returns ``(statistic, df, pvalue)``. Rows with ``n == 0`` or ``k <= 1`` give ``G = 0``,
    ``p = 1``; NaN inputs give ``G = p = nan`` (``df = 0``). Without pooling the results equal
    ``scipy.stats.power_divergence(..., lambda_="log-likelihood")`` and
    ``scipy.stats.chi2_contingency(..., lambda_="log-likelihood", correction=False)``.

    >>> g, df, p = gtest_gof([[30, 70], [50, 50]], [0.5, 0.5])
    >>> np.round(g, 4).tolist(), df.tolist(), np.round(p, 6).tolist()
    ([16.4566, 0.0], [1, 1], [5e-05, 1.0])
    >>> g, df, p = gtest_gof([30, 70], [0.5, 0.5], ref_n=100)
    >>> round(g, 4), df, round(p, 6)
    (8.4024, 1, 0.003747)
    """
    obs = _as_hist(counts, "counts")
    ref = _normalise(_as_hist(ref_p, "ref_p"))
    n = obs.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        if ref_n is None:
            exp = n * ref
            pool = ~(exp >= min_expected) | ~(exp > 0)
            o_pool = np.where(pool, obs, 0.0).sum(axis=-1)
            e_pool = np.where(pool, exp, 0.0).sum(axis=-1)
            stat = np.where(pool, 0.0, _xlogratio(obs, exp)).sum(axis=-1) + _xlogratio(o_pool, e_pool)
            pooled_bin = (o_pool > 0) | (e_pool > 0)
        else:
            m = np.asarray(ref_n, dtype=np.float64)[..., None]
            if np.any(m < 0):
                raise ValueError("ref_n must be non-negative")
            rc = ref * m
            col = rc + obs
            total = m + n
            e_ref = m * col / total
            e_obs = n * col / total
            pool = ~(np.minimum(e_ref, e_obs) >= min_expected) | ~(col > 0)
            kept = _xlogratio(rc, e_ref) + _xlogratio(obs, e_obs)
            stat = np.where(pool, 0.0, kept).sum(axis=-1)
            r_pool = np.where(pool, rc, 0.0).sum(axis=-1)
            o_pool = np.where(pool, obs, 0.0).sum(axis=-1)
            er_pool = np.where(pool, e_ref, 0.0).sum(axis=-1)
            eo_pool = np.where(pool, e_obs, 0.0).sum(axis=-1)
            stat = stat + _xlogratio(r_pool, er_pool) + _xlogratio(o_pool, eo_pool)
            pooled_bin = (r_pool + o_pool) > 0
    stat = np.maximum(2.0 * stat, 0.0)  # rounding can leave -1e-15
    k = np.sum(~pool, axis=-1) + pooled_bin
    df = np.maximum(k - 1, 0).astype(np.int64)
    n = n[..., 0]
    bad = np.isnan(stat) | np.isnan(n)
    trivial = ~bad & ((df == 0) | (n == 0))
    stat = np.where(trivial, 0.0, np.where(bad, np.nan, stat))
    df = np.where(bad, 0, df)
    pvalue = np.where(trivial, 1.0, np.asarray(chi2_sf(stat, np.maximum(df, 1))))
    return _out(stat), (int(df) if df.ndim == 0 else df), _out(pvalue)


# ------------------------------------------------------------------------- normal and proportions


def norm_sf(z: ArrayLike) -> FloatArray | float:
    """Standard normal survival function ``P(Z > z)``, vectorised: :func:`scipy.special.ndtr` of ``-z``
    (accurate in the far tail, underflowing to 0.0 at z ~ 38.5).

    >>> round(norm_sf(1.959963984540054), 12), norm_sf(0.0), norm_sf([-50.0, 50.0]).tolist()
    (0.025, 0.5, [1.0, 0.0])
    """
    return _out(np.asarray(special.ndtr(-np.asarray(z, dtype=np.float64)), dtype=np.float64))


def _safe_z(num: FloatArray, sd: FloatArray) -> FloatArray:
    """``num / sd`` with a degenerate (zero) ``sd`` mapped to ``sign(num) * inf`` (0 for 0/0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = num / sd
    degenerate = sd == 0
    return np.where(degenerate, np.where(num > 0, np.inf, np.where(num < 0, -np.inf, 0.0)), z)


def proportion_test(
    x: ArrayLike,
    n: ArrayLike,
    p0: ArrayLike,
    alternative: Literal["greater", "less", "two-sided"] = "greater",
    n0: ArrayLike | None = None,
) -> FloatArray | float:
    """P-value of ``x`` successes in ``n`` trials against the proportion ``p0`` (normal approx.).

    * ``n0 is None``: ``p0`` is exact; binomial test via the normal approximation with continuity
      correction, ``z = (x - n p0 -/+ 0.5) / sqrt(n p0 (1 - p0))``.
    * ``n0`` given: ``p0`` was itself estimated from ``n0`` trials (``x0 = p0 n0`` successes); the
      two-proportion z-test with pooled variance ``p (1-p) (1/n + 1/n0)`` and continuity correction
      ``(1/n + 1/n0) / 2``; its two-sided square is Yates' chi-square of the 2 x 2 table.
      ``n0 = inf`` reduces to the one-sample test.

    ``alternative="greater"`` tests ``x/n > p0``, ``"less"`` tests ``x/n < p0``. All arguments
    broadcast. ``n == 0`` (or ``n0 == 0``) gives 1.0. A degenerate ``p0`` of 0 or 1 gives 0 or 1.
    ``x`` outside ``[0, n]`` or ``p0`` outside ``[0, 1]`` raise ``ValueError``, except for float
    round-off (``x = share * n``), which is clipped.

    >>> round(proportion_test(60, 100, 0.5), 6), round(proportion_test(60, 100, 0.5, "two-sided"), 6)
    (0.028717, 0.057433)
    >>> np.round(proportion_test([0, 3, 60], [0, 100, 100], 0.5, "less", n0=1000), 6).tolist()
    [1.0, 0.0, 0.977897]
    """
    xx = np.asarray(x, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    pp = np.asarray(p0, dtype=np.float64)
    if np.any(nn < 0):
        raise ValueError("n must be non-negative")
    # tolerate float round-off (x = share * n, p0 = a / b) but not genuinely invalid input
    if np.any((pp < -1e-12) | (pp > 1 + 1e-12)):
        raise ValueError("p0 must lie in [0, 1]")
    slack = 1e-9 * np.maximum(nn, 1.0)
    if np.any((xx < -slack) | (xx > nn + slack)):
        raise ValueError("x must lie in [0, n]")
    pp = np.clip(pp, 0.0, 1.0)
    xx = np.clip(xx, 0.0, nn)
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be 'greater', 'less' or 'two-sided', not {alternative!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        if n0 is None:
            dev = xx - nn * pp
            sd = np.sqrt(nn * pp * (1.0 - pp))
            cc = np.full_like(dev, 0.5)
            empty = nn == 0
        else:
            m = np.asarray(n0, dtype=np.float64)
            if np.any(m < 0):
                raise ValueError("n0 must be non-negative")
            pooled = np.where(np.isinf(m), pp, (xx + pp * m) / (nn + m))
            inv = 1.0 / nn + 1.0 / m
            dev = xx / nn - pp
            sd = np.sqrt(pooled * (1.0 - pooled) * inv)
            cc = 0.5 * inv
            empty = (nn == 0) | (m == 0)
        if alternative == "greater":
            p = np.asarray(norm_sf(_safe_z(dev - cc, sd)))
        elif alternative == "less":
            p = np.asarray(norm_sf(-_safe_z(dev + cc, sd)))
        else:
            p = np.minimum(1.0, 2.0 * np.asarray(norm_sf(_safe_z(np.maximum(np.abs(dev) - cc, 0.0), sd))))
    return _out(np.where(empty, 1.0, p))


# ----------------------------------------------------------------------------- multiple testing


def benjamini_hochberg(pvalues: ArrayLike, q: float = 0.01) -> BoolArray:
    """Benjamini-Hochberg step-up procedure: mask of hypotheses rejected at FDR level ``q``.

    All entries form one family (any shape; the mask has the same shape). NaN p-values are
    "not tested": never rejected and not counted in the number of hypotheses ``m``. Rejects the
    ``k`` smallest p-values, ``k`` the largest rank with ``p_(k) <= k q / m``.

    >>> benjamini_hochberg([0.001, 0.03, 0.036, 0.9, float("nan")], q=0.05).tolist()  # 0.03 > 2q/4
    [True, True, True, False, False]
    >>> benjamini_hochberg([]).tolist()
    []
    """
    if not 0 <= q <= 1:
        raise ValueError("q must lie in [0, 1]")
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.reshape(-1)
    valid = ~np.isnan(flat)
    pv = flat[valid]
    reject = np.zeros(flat.shape, dtype=bool)
    m = pv.size
    if m:
        order = np.argsort(pv, kind="stable")
        below = np.flatnonzero(pv[order] <= q * np.arange(1, m + 1) / m)
        if below.size:
            hit = np.zeros(m, dtype=bool)
            hit[order[: below[-1] + 1]] = True
            reject[valid] = hit
    return reject.reshape(p.shape)


def poisson_pvalue(x: np.ndarray, lam: np.ndarray, alternative: str) -> np.ndarray:
    """Exact Poisson tail p-value of count ``x`` with mean ``lam`` (via the chi-square identity).

    ``P(X >= x) = P(chi2(2x) <= 2 lam)``, ``P(X <= x) = P(chi2(2x + 2) > 2 lam)``; slightly
    conservative for a binomial count, exact enough where the normal approximation is not.

    >>> [round(float(v), 4) for v in poisson_pvalue(np.array([16.0, 0.0]), np.array([6.3, 6.3]), "greater")]
    [0.0008, 1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 1e-12)
    upper = np.where(x > 0, 1.0 - np.asarray(chi2_sf(2 * lam, np.maximum(2 * x, 1e-9))), 1.0)
    if alternative == "greater":
        return upper
    lower = np.asarray(chi2_sf(2 * lam, 2 * x + 2))
    if alternative == "less":
        return lower
    return np.minimum(1.0, 2 * np.minimum(upper, lower))


def poisson_ratio_pvalue(x: ArrayLike, lam: ArrayLike, x0: ArrayLike, alternative: str) -> FloatArray:
    """P-value of count ``x`` against mean ``lam`` when ``lam`` was itself *estimated* from a count worth ``x0``.

    The exact conditional test of two Poisson rates: under the null, given ``x + x0`` events, ``x`` is
    binomial with success probability ``lam / (lam + x0)`` (``x0`` may be an effective, non-integer
    count: ``lam**2 / var(lam)``; the tail is the regularised incomplete beta). With ``x0 = inf`` it
    is :func:`poisson_pvalue`. A small baseline then cannot make a modest excess look like a certainty.

    >>> [round(float(v), 4) for v in poisson_ratio_pvalue(np.array([16.0, 16.0]), np.array([6.3, 6.3]),
    ...                                                   np.array([np.inf, 20.0]), "greater")]
    [0.0008, 0.0055]
    """
    x = np.asarray(x, dtype=np.float64)
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 1e-12)
    x0 = np.asarray(x0, dtype=np.float64)
    finite = np.isfinite(x0) & (x0 > 0)
    x0f = np.where(finite, x0, 1.0)
    pi = lam / (lam + x0f)
    # with n = x + x0 events: P(X >= x) = I_pi(x, n - x + 1); P(X <= x) = 1 - I_pi(x + 1, n - x)
    upper = np.where(x > 0, special.betainc(np.maximum(x, 1e-12), x0f + 1.0, pi), 1.0)
    lower = np.where(x0f > 0, special.betaincc(x + 1.0, np.maximum(x0f, 1e-12), pi), 1.0)
    exact = poisson_pvalue(x, lam, alternative)
    if alternative == "greater":
        out = upper
    elif alternative == "less":
        out = lower
    else:
        out = np.minimum(1.0, 2 * np.minimum(upper, lower))
    return np.where(finite, np.maximum(out, exact), exact)
