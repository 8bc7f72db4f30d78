"""Label-delay checks of one matured cohort, for every model task: they read only generic counts.

The labelled share at maturity (``match_rate_ratio``), the delay distribution below the common label
age (``delay_median_ratio``) and the share of arriving labels that correct an earlier one
(``correction_rate``) - see the table in :mod:`detector.core.outcomes.checks`. They need the
cohort's ``cnt`` columns ``pred`` and ``lab`` (:data:`~detector.core.outcomes.cohort.C`), its
``delay`` histogram and the label ``arrivals`` (first labels, corrections) per pseudo-row, which every
task's cohorts keep.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.cohort import C
from detector.core.outcomes.labels import DELAY_EDGES, hist_quantile
from detector.core.stats import distributions as stats
from detector.core.stats.distributions import poisson_pvalue
from detector.core.stats.effects import div as _div
from detector.core.stats.effects import log_effect, pct, ratio_flags, rnd

__all__ = ["delay_checks", "DELAY_STATS"]

#: the statistics that say labels are late (their findings explain base-rate and calibration moves)
DELAY_STATS = ("match_rate_ratio", "delay_median_ratio")


def delay_checks(cur: Any, base: Any, th: Any, horizon: float, base_horizon: float) -> list[Result]:
    """The three label-delay results; ``cur`` / ``base`` have ``cnt``, ``delay`` and ``arrivals`` per pseudo-row."""
    P = cur.cnt.shape[0]
    out: list[Result] = []
    mn, bmn = th.min_labels, th.min_labels * th.base_factor
    n, nb = cur.cnt[:, C["lab"]], base.cnt[:, C["lab"]]
    # ---- label delay: labelled share at maturity (first: most specific for a delay problem)
    npred, npred_b = cur.cnt[:, C["pred"]], base.cnt[:, C["pred"]]
    mr, mrb = _div(n, npred), _div(nb, npred_b)
    ratio = _div(mr, mrb)
    tested = (npred >= mn) & (npred_b >= bmn) & (np.nan_to_num(mrb) > 0)
    gap = np.nan_to_num(mrb - mr) >= th.match_abs
    pv = stats.proportion_test(n, npred, np.where(tested, np.clip(np.nan_to_num(mrb), 0, 1), 0.5), "less",
                               n0=np.maximum(npred_b, 1))
    out.append(Result(
        "label_delay", None, "match_rate_ratio", ratio, tested, gap & (np.nan_to_num(ratio, nan=1) <= th.match_ratio),
        gap & (np.nan_to_num(ratio, nan=1) <= th.match_ratio_critical), np.asarray(pv), th.match_ratio,
        lambda i: {"reference": {"match_rate": rnd(mrb[i]), "source": "production baseline at the same label age"},
                   "current": {"match_rate": rnd(mr[i]), "labelled": int(n[i]), "predictions": int(npred[i]),
                               "label_age_s": round(horizon)}},
        lambda i: f"only {pct(mr[i])} of predictions had a label {horizon / 3600:.1f} h after their window "
                  f"(usually {pct(mrb[i])}): labels are arriving later or not at all",
        effect=log_effect(ratio)))

    # ---- label delay: distribution below the common horizon
    H = min(horizon, base_horizon) if base_horizon == base_horizon else horizon
    kb = int(np.searchsorted(DELAY_EDGES, H, side="right"))
    dc, db = cur.delay[:, :kb], base.delay[:, :kb]
    med_c = np.array([hist_quantile(dc[i], 0.5) for i in range(P)])
    med_b = np.array([hist_quantile(db[i], 0.5) for i in range(P)])
    ratio_d = _div(med_c, med_b)
    tested = (dc.sum(1) >= mn) & (db.sum(1) >= bmn) & (kb >= 2)
    if tested.any():
        _, _, pv = stats.gtest_gof(dc, np.where(db.sum(1, keepdims=True) > 0, db, 1.0), ref_n=db.sum(1))
    else:
        pv = np.ones(P)
    warn, crit = ratio_flags(ratio_d, th.delay_ratio, th.delay_ratio_critical, np.ones(P, bool))
    out.append(Result(
        "label_delay", None, "delay_median_ratio", ratio_d, tested, warn, crit, np.asarray(pv), th.delay_ratio,
        lambda i: {"reference": {"median_delay_s": rnd(med_b[i])}, "current": {"median_delay_s": rnd(med_c[i])},
                   "horizon_s": round(H)},
        lambda i: f"labels take {ratio_d[i]:.1f}x as long as usual (median {med_c[i] / 60:.0f} min vs "
                  f"{med_b[i] / 60:.0f} min among labels within {H / 3600:.1f} h): evaluate later, check the labelling process",
        effect=log_effect(ratio_d)))

    # ---- label quality: correction spike among arriving labels
    la, co = cur.arrivals[:, 0], cur.arrivals[:, 1]
    lab_b, co_b = base.arrivals[:, 0], base.arrivals[:, 1]
    cr, crb = _div(co, la), _div(co_b, lab_b)
    tested = (la >= mn) & (lab_b >= bmn)
    d = np.nan_to_num(cr - crb)
    big = np.nan_to_num(cr) >= 2 * np.nan_to_num(crb)
    pv = stats.proportion_test(co, np.maximum(la, co), np.where(tested, np.clip(np.nan_to_num(crb), 0, 1), 0.5), "greater",
                               n0=np.maximum(lab_b, 1))
    lam = np.nan_to_num(crb) * la
    pv = np.where(lam < th.small_count, np.maximum(pv, poisson_pvalue(co, np.maximum(lam, 0.5), "greater")), pv)
    out.append(Result(
        "label_delay", None, "correction_rate", cr, tested, big & (d >= th.correction_delta),
        big & (d >= th.correction_delta_critical), np.asarray(pv), th.correction_delta,
        lambda i: {"reference": {"correction_rate": rnd(crb[i])}, "current": {"correction_rate": rnd(cr[i]),
                                                                             "corrections": int(co[i])}},
        lambda i: f"{pct(cr[i])} of arriving labels correct an earlier label (usually {pct(crb[i])}): "
                  "labels are being backfilled or redefined",
        effect=d))

    return out
