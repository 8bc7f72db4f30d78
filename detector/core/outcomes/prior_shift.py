"""Is a move of observed/expected a shift of the outcome prior, or a change of what the scores mean?

A change of the outcome prior (label drift: P(y) moves while P(x | y) and the scores stay) multiplies every
pair's outcome odds by one factor. In calibration terms the intercept of ``logit P(y) = a + b logit(score)``
moves and the slope ``b`` stays; and it moves everywhere at once - every slice's observed/expected moves by
(about) the same factor, since for outcomes this rare the odds ratio and the rate ratio agree. Concept drift
or a miscalibration changes the slope, or is local: a slice's outcomes move against the rest of traffic's,
or one way here and the other way there.

:func:`prior_shift` tells the two apart on the evaluation's own pairs, per pseudo-row of the
observed/expected-vs-training comparison:

- all traffic: the calibration slope is consistent with training's and the baseline's (each slope test's
  p >= ``alpha``), and no slice's shift differs from the rest of traffic's (heterogeneity test below,
  Bonferroni over the slices tested);
- a slice: the same slope condition, the slice's log O/E ratio does not differ from the rest of traffic's
  (all traffic minus the slice; two-sided ``p >= alpha``), and the rest moved the same way: significantly
  on its own (one-sided ``p < rest_alpha``), or at least enough that one shift shared by the slice and the
  rest fits better than the slice's own shift with the rest unmoved (both one parameter: the
  heterogeneity z below the rest's own z).

The training rates' common scaling noise (``ref_rv``: the censoring factor) is shared by a slice and its
rest, so it cancels in the heterogeneity test and only enters the rest's own move. Pure; the caller
passes the arrays of :func:`~detector.core.outcomes.checks.outcome_checks`.
"""

from __future__ import annotations

import numpy as np

from detector.core.stats import distributions as stats
from detector.core.stats.effects import div as _div

__all__ = ["prior_shift"]


def prior_shift(obs: np.ndarray, kE: np.ndarray, var: np.ndarray, comp: np.ndarray, ref_rv: float,
                slope_ok: bool, alpha: float = 0.01, rest_alpha: float = 0.05) -> tuple[np.ndarray, ...]:
    """Per pseudo-row: (shared, rest_ratio, p_same, p_rest).

    ``obs`` positives, ``kE`` positives training's O/E expects for the row's scores (NaN without a training
    value), ``var`` the Bernoulli variance of ``obs`` under that expectation; rows laid out as all traffic,
    ``S`` slices, then their ``S`` complements in the same order (``comp`` marks the complements).
    ``shared`` says the row's move is consistent with one shift of the outcome prior (see the module
    docstring); ``rest_ratio`` is the rest of traffic's observed/expected change, ``p_same`` the p-value
    of "the slice moved as the rest did", ``p_rest`` that of "the rest did not move in the slice's
    direction" (NaN where not defined).

    >>> obs = np.array([300.0, 100.0, 200.0, 200.0, 100.0]); kE = np.array([150.0, 50.0, 100.0, 100.0, 50.0])
    >>> comp = np.array([False, False, False, True, True])
    >>> shared, rest, p_same, p_rest = prior_shift(obs, kE, kE * 0.95, comp, 0.0, True)
    >>> shared.tolist(), [round(float(x), 2) for x in rest[1:3]]
    ([True, True, True, False, False], [2.0, 2.0])
    >>> obs2 = np.array([150.0, 100.0, 50.0, 50.0, 100.0])  # one slice up, the other down: local
    >>> prior_shift(obs2, kE, kE * 0.95, comp, 0.0, True)[0].tolist()
    [False, False, False, False, False]
    """
    P = obs.shape[0]
    S = int(comp.sum())
    shared = np.zeros(P, bool)
    rest_ratio, p_same, p_rest = (np.full(P, np.nan) for _ in range(3))
    if P != 1 + 2 * S or not np.isfinite(kE[0]) or kE[0] <= 0:
        return shared, rest_ratio, p_same, p_rest
    lr = np.log(_div(obs + 0.5, kE + 0.5))
    se2 = _div(np.maximum(var, 0.05 * np.nan_to_num(kE)), (kE + 0.5) ** 2)
    i = np.arange(1, S + 1)
    ok = np.isfinite(kE[i]) & (kE[i] > 0) & (kE[0] - np.nan_to_num(kE[i]) > 0)
    kc = np.where(ok, kE[0] - np.nan_to_num(kE[i]), 1.0)
    oc = obs[0] - obs[i]
    vc = np.maximum(np.nan_to_num(var[0] - var[i]), 0.05 * kc)
    lc = np.log((oc + 0.5) / (kc + 0.5))
    sc2 = vc / (kc + 0.5) ** 2
    z_same = (lr[i] - lc) / np.sqrt(np.nan_to_num(se2[i]) + sc2)
    ps = np.minimum(1.0, 2 * np.asarray(stats.norm_sf(np.abs(np.nan_to_num(z_same)))))
    z_rest = np.sign(np.nan_to_num(lr[i])) * lc / np.sqrt(sc2 + ref_rv)
    pr = np.asarray(stats.norm_sf(z_rest))
    rest_ratio[i] = np.where(ok, oc / kc, np.nan)
    p_same[i] = np.where(ok, ps, np.nan)
    p_rest[i] = np.where(ok, pr, np.nan)
    # one shift for both (one parameter) fits better than the slice's own move with the rest unmoved
    # (one parameter): the heterogeneity chi-square is below the rest's own, or the rest's move is significant
    better = np.abs(np.nan_to_num(z_same)) < z_rest
    shared[i] = ok & slope_ok & (ps >= alpha) & ((pr < rest_alpha) | better) & (np.sign(lc) == np.sign(lr[i]))
    n_tested = int(ok.sum())
    shared[0] = slope_ok and (n_tested == 0 or float(np.min(np.where(ok, ps, 1.0))) * n_tested >= alpha)
    return shared, rest_ratio, p_same, p_rest
