"""What a trailing baseline expects of the current pairs, and how much evidence a test needs.

:func:`expected_positives` (positives the baseline's reliability curve predicts for the current score
mix, with the variance of that count), :func:`base_rate_shift` (the ``label_drift`` test built on it)
and :func:`power_span` (how many trailing cohorts a calibration-slope test needs). Used by
:func:`~detector.core.outcomes.checks.outcome_checks`; nothing here keeps state.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from detector.core.outcomes.cohort import C, calibration_slope
from detector.core.outcomes.thresholds import Arrays, OutcomeThresholds
from detector.core.stats import distributions as stats
from detector.core.stats.distributions import poisson_pvalue, poisson_ratio_pvalue
from detector.core.stats.effects import div as _div
from detector.core.stats.effects import ratio_flags

__all__ = ["expected_positives", "base_rate_shift", "power_span", "recalibrated"]


def power_span(hists: np.ndarray, b_ref: float, th: OutcomeThresholds, alpha: float = 0.001, power: float = 0.8) -> int:
    """How many of the trailing cohorts (``hists``: (K, 2, bins), newest first, each all traffic's negative /
    positive score histogram at the same label age) a test of the calibration slope against ``b_ref`` needs:
    the fewest whose pooled slope's standard error lets a change by the warning ratio show at ``alpha``
    (two-sided) with ``power`` - all of them when even that is short (the test then runs on all, and a
    quiet model stays silent rather than guessing). A busy model needs one cohort, a quiet one days.

    >>> from detector.core.outcomes.cohort import N_HIST
    >>> rng = np.random.default_rng(1); s = rng.uniform(0.01, 0.6, (6, 4000)); y = rng.random(s.shape) < s * 0.2
    >>> h = np.stack([np.stack([np.bincount((s[k] * N_HIST).astype(int)[~y[k]], minlength=N_HIST),
    ...                         np.bincount((s[k] * N_HIST).astype(int)[y[k]], minlength=N_HIST)]) for k in range(6)])
    >>> 1 < power_span(h, 1.0, OutcomeThresholds()) <= 6
    True
    """
    cum = np.cumsum(hists, axis=0)
    _, se = calibration_slope(cum[:, 0, :], cum[:, 1, :])
    need = (th.slope_ratio - 1.0) * abs(b_ref) / (float(-special.ndtri(alpha / 2)) + float(special.ndtri(power)))
    ok = np.flatnonzero(np.nan_to_num(se, nan=np.inf) <= need)
    return int(ok[0]) + 1 if ok.size else int(hists.shape[0])


def base_rate_shift(cur: Arrays, base: Arrays, th: OutcomeThresholds, scores_trusted: bool = True) -> tuple[np.ndarray, ...]:
    """Observed vs expected positives (this score mix, baseline reliability): E, ratio, tested, warn, crit, p.

    With ``scores_trusted`` False (input or score alerts open) the raw base rate must also move
    the same way by the full effect: a broken score moves only the adjusted ratio (the outcomes
    did not change), a seasonal swing mostly the raw one, a change of the outcome prior both.
    """
    n, y = cur.cnt[:, C["lab"]], cur.cnt[:, C["pos"]]
    nb, yb = base.cnt[:, C["lab"]], base.cnt[:, C["pos"]]
    pb = _div(yb, nb)
    E, V, est = expected_positives(cur, base)
    ratio = _div(y, E)
    tested = (n >= th.min_labels) & (nb >= th.min_labels * th.base_factor) & (np.nan_to_num(pb) > 0) \
        & (np.nan_to_num(pb, nan=1) < 1) & (E > 0)
    absd = np.abs(np.nan_to_num(_div(y - E, n))) >= th.base_rate_abs
    warn, crit = ratio_flags(ratio, th.base_rate_ratio, th.base_rate_ratio_critical, absd)
    if not scores_trusted:
        raw = np.log(np.nan_to_num(_div(_div(y, n), pb), nan=1.0) + 1e-12)
        adj = np.log(np.nan_to_num(ratio, nan=1.0) + 1e-12)
        agree = (np.sign(raw) == np.sign(adj)) & (np.abs(raw) >= math.log(th.base_rate_ratio))
        warn, crit = warn & agree, crit & agree
    z = _div(y - E, np.sqrt(V))
    pv = np.minimum(1.0, 2 * np.asarray(stats.norm_sf(np.abs(np.nan_to_num(z)))))
    # few events: the exact test of the count against an expectation that is itself estimated (a
    # baseline worth E^2 / var(E) events), so a sparse baseline cannot turn a modest excess into a certainty
    pv = np.where(E < th.small_count, poisson_ratio_pvalue(y, E, np.where(est > 0, _div(E * E, est), np.inf), "two-sided"), pv)
    if not scores_trusted:  # ... and the raw move must be significant on its own
        p0 = np.where(tested, np.clip(np.nan_to_num(pb), 1e-9, 1 - 1e-9), 0.5)
        pr = np.asarray(stats.proportion_test(y, n, p0, "two-sided", n0=np.maximum(nb, 1)))
        pr = np.where(p0 * n < th.small_count, np.maximum(pr, poisson_pvalue(y, p0 * n, "two-sided")), pr)
        pv = np.maximum(pv, pr)
    return E, ratio, tested, warn, crit, pv


def expected_positives(cur: Arrays, base: Arrays, prior: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positives the baseline predicts for the current pairs; the variance of the count; the part of it
    that is the baseline's estimation noise.

    Each scored pair expects its score bin's baseline label rate, an unscored one the baseline's
    overall rate. A bin's rate is shrunk (``prior`` pseudo-pairs) towards the *scores recalibrated to
    the baseline* - the bin's mean score with its odds times one factor that makes the baseline's
    bins add up to its positives (at a label age, the share of positives labelled relative to
    negatives) - not towards the overall rate: a sparse high-score bin shrunk to a 2% overall rate
    would expect far too few positives wherever the current pairs hold a few high scores, and a
    quiet model's current pairs always look riskier than "expected". The variance adds the
    Bernoulli noise of the current pairs and the estimation noise of the bin rates.
    """
    nb, yb = base.cnt[:, C["lab"]], base.cnt[:, C["pos"]]
    pb = np.nan_to_num(_div(yb, nb))
    m, q = base.rel[..., 0], base.rel[..., 2]
    k = cur.rel[..., 0]
    centre = (np.arange(m.shape[-1]) + 0.5) / m.shape[-1]
    sbar = np.where(m > 0, _div(base.rel[..., 1], m), np.where(k > 0, _div(cur.rel[..., 1], k), centre))
    r0 = recalibrated(np.clip(np.nan_to_num(sbar), 1e-4, 1 - 1e-4), m, q.sum(-1))
    r = (q + prior * r0) / (m + prior)
    rest = np.maximum(cur.cnt[:, C["lab"]] - k.sum(1), 0.0)
    E = (k * r).sum(1) + rest * pb
    est = (k * k * r * (1 - r) / (m + prior)).sum(1) + rest * rest * pb * (1 - pb) / np.maximum(nb, 1)
    V = (k * r * (1 - r)).sum(1) + rest * pb * (1 - pb) + est
    return E, np.maximum(V, 1e-12), est


def recalibrated(s: np.ndarray, m: np.ndarray, total: np.ndarray, steps: int = 30) -> np.ndarray:
    """Scores ``s`` (rows x bins) with their odds times one factor per row, chosen so that bins of ``m``
    pairs expect ``total`` positives (Newton on the log factor; no positives gives rates near 0).

    >>> r = recalibrated(np.array([[0.05, 0.5]]), np.array([[100.0, 10.0]]), np.array([5.0]))
    >>> round(float((r * [100.0, 10.0]).sum()), 3), bool(r[0, 1] > 5 * r[0, 0])
    (5.0, True)
    """
    logit = np.log(s / (1 - s))
    n = m.sum(-1)
    target = np.clip(total, 0.5 * np.minimum(n, 1.0), np.maximum(n - 0.5, 0.5))  # keep the root finite
    d = np.log(_div(target + 0.5, n + 1.0) / np.maximum(_div((m * s).sum(-1) + 0.5, n + 1.0), 1e-9))
    d = np.nan_to_num(d)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(logit + d[:, None])))
        f = (m * p).sum(-1) - target
        g = (m * p * (1 - p)).sum(-1)
        d = d - np.where(g > 1e-12, f / np.maximum(g, 1e-12), 0.0)
        d = np.clip(d, -30.0, 30.0)
    return 1 / (1 + np.exp(-(logit + d[:, None])))
