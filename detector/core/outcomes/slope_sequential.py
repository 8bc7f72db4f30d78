"""A sequential test of the calibration slope against training: evidence pooled since a change.

A window-by-window test of the slope judges each span on its own and forgets what came before, so a
quiet model (a few dozen positives a day) sees a moderate change only when one span happens to be
extreme. :func:`slope_cusum` instead asks, at every evaluation, whether the trailing cohorts *since some
start* are better explained by a slope changed by the warning ratio than by training's - a CUSUM
(Page 1954) over the cohorts kept by the monitor, each direction with its fixed alternative
``b0 x ratio`` or ``b0 / ratio``:

    S = max over starts k of log LR(cohorts k .. now),   LR of the slope's efficient score

The score of the slope at training's ``b0`` with the intercept re-fitted on the span (the intercept
follows the time of day, the label age and the outcome prior; none of them is a change of the slope)
is ``U ~ N(I (b - b0), I + I^2 se0^2)``: ``I`` its information, ``se0`` training's own standard error
(a slope estimated on a finite training set is not exact, and over long spans that would add up). The
log likelihood ratio of ``b = b0 + delta`` against ``b = b0`` is ``delta I U / V - (delta I)^2 / (2 V)``.

False alarms: for a CUSUM of log likelihood ratios the run length to a false alarm at threshold ``h`` is
at least ``e^h`` evaluations (Lorden 1971), and about ``(e^h - h - 1) / drift`` when each evaluation adds
little evidence (``drift``: the log LR's expected fall per cohort under no change; the diffusion
approximation of Reynolds 1975 / Siegmund 1985). Two over the longer of the two is the rate of false
alarms per evaluation (:func:`false_alarm_rate`); it is the test's p-value and enters the evaluation's
Benjamini-Hochberg control like every other test's: at the default q an alarm means one false alarm in
about ten thousand evaluations or more (over a year of hourly cohorts per model). The test runs on all traffic only (one series
per model: slices are not tested, so there is no multiple testing across them).

State: none of its own. The statistic is recomputed from the cohorts' score histograms by outcome,
which the monitor keeps (bounded: ``2 x baseline_cohorts``) and which merge across partitions by
addition - so the statistic of merged states is the statistic of the merged stream, and states written
before this test load unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from detector.core.outcomes.cohort import N_HIST  # noqa: F401 (the doctest's bins)

__all__ = ["slope_cusum", "false_alarm_rate"]


def slope_cusum(hists: np.ndarray, b0: float, se0: float, ratio: float, min_class: int = 20) -> dict[str, float]:
    """The two-sided CUSUM of the calibration slope against ``b0`` over ``hists`` ((K, 2, bins): negative /
    positive score histograms of the trailing cohorts, newest first).

    Returns ``llr`` (S, the larger direction's), ``pvalue`` (``min(1, 2 e^-S)``), ``slope`` (the slope over
    the span that maximises S, one Newton step from ``b0``), ``cohorts`` (that span's length), ``positives``
    and ``negatives`` in it. Spans with fewer than ``min_class`` of either outcome do not count.

    >>> rng = np.random.default_rng(3); K = 48
    >>> def cohort(b):
    ...     z = rng.normal(-3.0, 1.2, 3000); s = 1 / (1 + np.exp(-z)); y = rng.random(z.size) < 1 / (1 + np.exp(-b * z))
    ...     i = np.minimum((s * N_HIST).astype(int), N_HIST - 1)
    ...     return np.stack([np.bincount(i[~y], minlength=N_HIST), np.bincount(i[y], minlength=N_HIST)])
    >>> same = np.stack([cohort(1.0) for _ in range(K)])
    >>> bool(slope_cusum(same, 1.0, 0.0, 1.25)["pvalue"] > 0.01)
    True
    >>> changed = np.stack([cohort(0.75) for _ in range(12)] + [cohort(1.0) for _ in range(K - 12)])
    >>> r = slope_cusum(changed, 1.0, 0.0, 1.25); bool(r["pvalue"] < 1e-6), 0.6 < r["slope"] < 0.9
    (True, True)
    """
    h = np.asarray(hists, dtype=np.float64)
    out = {"llr": 0.0, "pvalue": 1.0, "slope": math.nan, "cohorts": 0, "positives": 0.0, "negatives": 0.0, "drift": 0.0}
    if h.ndim != 3 or h.shape[0] == 0 or not b0 > 0:
        return out
    cum = np.cumsum(h, axis=0)  # span k = the newest k + 1 cohorts
    neg, pos = cum[:, 0, :], cum[:, 1, :]
    B = neg.shape[-1]
    c = (np.arange(B) + 0.5) / B
    x = np.log(c / (1 - c))
    n = neg + pos
    P, N = pos.sum(1), neg.sum(1)
    a = np.log(np.maximum(P, 0.5) / np.maximum((n * np.exp(b0 * x)).sum(1), 1e-12))  # rare-outcome start
    for _ in range(30):  # the intercept's MLE with the slope held at b0 (Newton)
        p = 1 / (1 + np.exp(-(a[:, None] + b0 * x)))
        g = (pos - n * p).sum(1)
        w = (n * p * (1 - p)).sum(1)
        a = np.clip(a + np.where(w > 1e-12, g / np.maximum(w, 1e-12), 0.0), -30.0, 30.0)
    p = 1 / (1 + np.exp(-(a[:, None] + b0 * x)))
    w = n * p * (1 - p)
    sw = w.sum(1)
    U = ((pos - n * p) * x).sum(1)  # efficient score: the intercept's score is 0 at its MLE
    info = (w * x * x).sum(1) - np.where(sw > 1e-12, (w * x).sum(1) ** 2 / np.maximum(sw, 1e-12), 0.0)
    ok = (P >= min_class) & (N >= min_class) & (info > 1e-9)
    if not ok.any():
        return out
    V = info + info * info * se0 * se0
    best, arg, drift = 0.0, -1, 0.0
    last = int(np.flatnonzero(ok)[-1])
    for r in (ratio, 1.0 / ratio):
        d = (r - 1.0) * b0
        llr = np.where(ok, d * info * U / V - (d * info) ** 2 / (2 * V), -np.inf)
        # the log LR's drift per cohort under no change (its KL information per cohort), over the sequence
        drift = max(drift, float((d * info[last]) ** 2 / (2 * V[last])) / (last + 1))
        k = int(np.argmax(llr))
        if llr[k] > best:
            best, arg = float(llr[k]), k
    if arg < 0:
        arg = last  # no evidence of a change: report the longest span's slope
    out.update(llr=best, pvalue=false_alarm_rate(best, drift), slope=float(b0 + U[arg] / info[arg]),
               cohorts=arg + 1, positives=float(P[arg]), negatives=float(N[arg]), drift=drift)
    return out


def false_alarm_rate(h: float, drift: float) -> float:
    """False alarms per evaluation of a two-sided CUSUM of log likelihood ratios at threshold ``h``: two over its
    run length to a false alarm. That is at least ``e^h`` evaluations (Lorden's bound, whatever the increments);
    when each evaluation adds little evidence (a quiet model: the log LR drifts down by ``drift`` per cohort
    under no change, ``drift`` < 1) the diffusion approximation ``(e^h - h - 1) / drift`` (Reynolds 1975;
    Siegmund 1985) is the sharper of the two.

    >>> round(false_alarm_rate(10.0, 5.0), 6) == round(2 * math.exp(-10.0), 6)
    True
    >>> false_alarm_rate(10.0, 0.1) < false_alarm_rate(10.0, 5.0) / 5
    True
    """
    if h <= 0:
        return 1.0
    lorden = math.exp(h)
    diffusion = (math.expm1(h) - h) / drift if drift > 0 else math.inf
    return min(1.0, 2.0 / max(lorden, diffusion))

