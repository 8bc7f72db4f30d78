"""Outcome checks of one matured cohort, vectorised across pseudo-rows (slices and complements).

Every check returns a :class:`~detector.core.checks.window.Result` (effect size, whether it was tested,
warning/critical, p-value), so :func:`~detector.core.decisions.select.select_findings` applies the same
Benjamini-Hochberg control, effect-size gate and slice localisation as the input checks.
Nothing here keeps state. Comparisons are with the *trailing production baseline* (the sum of
recent matured cohorts, each measured at the same label age) and, where the reference has it,
with training (label base rate, calibration-in-the-large, AUC).

========================  ================================  ==========================================
kind                      statistic                         effect (warning / critical) and test
========================  ================================  ==========================================
``label_drift``           ``base_rate_ratio`` (baseline)    positives vs those the baseline's reliability
                                                            curve expects for this score mix: ratio >= 1.5
                                                            or <= 1/1.5 and |delta| >= 0.01 / 2; z-test
``label_drift``           ``base_rate_ratio`` (training)    trailing-day base rate vs training's for the
                                                            day's score mix (O/E x mean score), same
                                                            effect; two-proportion test, two-sided
``calibration``           ``ece_delta`` (baseline)          ECE up by 0.05 / 0.1; chi-square of per-bin
                                                            label rates, current vs baseline
``calibration``           ``observed_expected_ratio``       O/E vs training O/E >= 1.3 or <= 1/1.3 / 2;
                          (training)                        z-test on the positives; ``label_drift`` with
                                                            stable inputs when it has the shape of a prior
                                                            shift (:mod:`.prior_shift`); a slice's own
                                                            move must also differ from the rest's (p <
                                                            0.01), else the all-traffic row decides
``calibration``           ``calibration_slope``             slope x1.25 or x1/1.25 / x2; z-test against the
                          (baseline, training)              baseline. Against training: a CUSUM over the
                                                            trailing cohorts, with the labels in after the
                                                            label age (:mod:`.slope_sequential`)
``performance``           ``auc_drop`` (baseline,           AUC down 0.05 / 0.1; Hanley-McNeil z-test
                          reference if it has an AUC)
``performance``           ``precision_drop``,               down 0.1 / 0.2 at the threshold in force;
                          ``recall_drop``                   one-sided proportion test
``performance``           ``brier_ratio``                   Brier x1.25 / x1.5; z-test
``concept_drift``         ``error_rate_change``             river ADWIN change on the per-pair squared
                                                            error + Brier x1.2, inputs and labels stable
``label_delay``           ``match_rate_ratio``              labelled share at maturity x0.8 (and -0.05)
                                                            / x0.5; one-sided proportion test
``label_delay``           ``delay_median_ratio``            median delay (below the common horizon)
                                                            x1.5 / x3; G-test of the delay histogram
``label_delay``           ``correction_rate``               corrections among arriving labels x2 and
                                                            +0.02 / +0.1; one-sided proportion test
``label_delay``           ``base_rate_inconsistency``       a slice's trailing-day base rate vs its
                                                            training rate, scaled by the global change, x1.5
========================  ================================  ==========================================

Seasonality: outcome rates often follow the day (fraud at night). Against the trailing baseline
the base rate is compared with what the baseline's reliability curve predicts *for the current
score mix*, so swings the inputs explain (night traffic scores higher) are not label drift; the
raw base rates are in the evidence. Against training - one all-day number - the comparison uses
the trailing day of matured cohorts and waits until a full day is available.
"""

from __future__ import annotations

import math

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.cohort import (
    N_HIST,
    C,
    auc_se,
    average_precision,
    binned_auc,
    brier,
    calibration_change,
    calibration_slope,
    ece,
)
from detector.core.outcomes.delay_checks import delay_checks
from detector.core.outcomes.expected import base_rate_shift, expected_positives, power_span
from detector.core.outcomes.prior_shift import prior_shift
from detector.core.outcomes.slope_sequential import slope_cusum
from detector.core.outcomes.thresholds import Arrays, OutcomeThresholds
from detector.core.stats import distributions as stats
from detector.core.stats.effects import div as _div
from detector.core.stats.effects import log_effect, pct, ratio_flags, rnd

__all__ = ["OutcomeThresholds", "Arrays", "outcome_checks", "expected_positives", "base_rate_shift", "power_span"]


def outcome_checks(cur: Arrays, base: Arrays, th: OutcomeThresholds, *, ref_rate: np.ndarray, ref_n: np.ndarray,
                   ref_oe: np.ndarray, slice_ref_rate: np.ndarray, slice_ref_n: np.ndarray, global_ratio: float,
                   ref_auc: float | None, ref_auc_n: tuple[float, float], horizon: float, base_horizon: float,
                   river_latched: bool, stable: np.ndarray, comp: np.ndarray, day: np.ndarray | None,
                   inputs_stable: bool = True, ref_slope: tuple[float, float] | None = None,
                   ref_rv: float = 0.0, span: np.ndarray | None = None, seq: np.ndarray | None = None) -> list[Result]:
    """All outcome checks; ``ref_*`` arrays are per pseudo-row (NaN = no training value); ``ref_rv`` is the
    relative variance of the training rates' scaling to this label age (estimated from production).
    ``span`` is all traffic's (negative, positive) score histogram over the trailing matured cohorts long
    enough to test the calibration slope (see :func:`power_span`): the AUC and slope against training,
    which need no production baseline, use it instead of the pool.

    Comparisons with training have no complement rows (``comp``); those rows mirror the
    all-traffic verdict, so a global breach is reported globally instead of being pinned on
    whichever slice breaches most. ``day`` is the trailing day's ``cnt`` (None before a full day).
    """
    P = cur.cnt.shape[0]
    out: list[Result] = []
    mn, bmn = th.min_labels, th.min_labels * th.base_factor
    n, y = cur.cnt[:, C["lab"]], cur.cnt[:, C["pos"]]
    nb, yb = base.cnt[:, C["lab"]], base.cnt[:, C["pos"]]
    p, pb = _div(y, n), _div(yb, nb)

    out.extend(delay_checks(cur, base, th, horizon, base_horizon))

    # ---- label drift vs the trailing baseline, for the current score mix
    E, ratio_l, tested, warn, crit, pv = base_rate_shift(cur, base, th, inputs_stable)
    pe = _div(E, n)
    out.append(Result(
        "label_drift", None, "base_rate_ratio", ratio_l, tested, warn, crit, pv, th.base_rate_ratio,
        lambda i: {"reference": {"base_rate": rnd(pb[i]), "expected_base_rate": rnd(pe[i]),
                                 "source": "production baseline, for this score mix"},
                   "current": {"base_rate": rnd(p[i]), "labelled": int(n[i])}},
        lambda i: f"the outcome base rate is {pct(p[i])} where the recent relationship between scores and outcomes "
                  f"predicts {pct(pe[i])} for these inputs (baseline base rate {pct(pb[i])}): the outcome prior moved",
        effect=log_effect(ratio_l)))
    # ---- label drift vs training: trailing day (a full daily cycle) against the training base rate for
    # the day's score mix (training's outcomes per unit of score, O/E, times the day's mean score): a day
    # of riskier traffic (a weekend, a holiday, another channel mix) has more positives that its
    # scores announce, and that is not a moved prior
    dn = day[:, C["lab"]] if day is not None else np.zeros(P)
    dy = day[:, C["pos"]] if day is not None else np.zeros(P)
    dsl = day[:, C["sl"]] if day is not None else np.zeros(P)
    ds = day[:, C["s"]] if day is not None else np.zeros(P)
    dp = _div(dy, dn)
    mix = np.isfinite(ref_oe) & (dsl >= mn)
    exp_t = np.where(mix, np.clip(np.nan_to_num(ref_oe) * _div(ds, np.maximum(dsl, 1)), 1e-6, 1 - 1e-6), ref_rate)
    ratio_t = _div(dp, exp_t)
    tested = (dn >= mn) & (np.nan_to_num(ref_n) >= mn) & (np.nan_to_num(exp_t) > 0) & (np.nan_to_num(exp_t, nan=1) < 1)
    absd = np.abs(np.nan_to_num(dp - exp_t)) >= th.base_rate_abs
    warn, crit = ratio_flags(ratio_t, th.base_rate_ratio, th.base_rate_ratio_critical, absd)
    # the expected rate is known from training (ref_n pairs) scaled by an estimated factor: an effective n0
    pt = np.where(tested, np.clip(np.nan_to_num(exp_t), 1e-9, 1 - 1e-9), 0.5)
    n0 = _div(pt * (1 - pt), pt * (1 - pt) / np.maximum(np.nan_to_num(ref_n), 1) + pt * pt * ref_rv)
    pv = np.asarray(stats.proportion_test(dy, dn, pt, "two-sided", n0=np.maximum(np.nan_to_num(n0), 1)))
    _mirror(comp, tested, warn, crit, pv)
    out.append(Result(
        "label_drift", None, "base_rate_ratio", ratio_t, tested, warn, crit, pv, th.base_rate_ratio,
        lambda i: {"reference": {"base_rate": rnd(ref_rate[i]), "expected_base_rate": rnd(exp_t[i]),
                                 "source": "training, for this score mix" if mix[i] else "training"},
                   "current": {"base_rate": rnd(dp[i]), "labelled": int(dn[i]), "span": "trailing day"}},
        lambda i: f"over the last day the outcome base rate is {pct(dp[i])} where training's outcomes for these scores "
                  f"predict {pct(exp_t[i])} (training base rate: {pct(ref_rate[i])})",
        effect=log_effect(ratio_t)))

    # ---- concept drift (river): error stream changed while inputs and labels are stable
    br, brb = brier(cur.cnt), brier(base.cnt)
    sl, slb = cur.cnt[:, C["sl"]], base.cnt[:, C["sl"]]
    # Brier relative to what calibrated scores of the same mix would score, mean s(1-s): the
    # outcome rate follows the time of day, and so does the raw Brier score — the ratio does not
    eb = _div(cur.cnt[:, C["s"]] - cur.cnt[:, C["s2"]], sl)
    ebb = _div(base.cnt[:, C["s"]] - base.cnt[:, C["s2"]], slb)
    nb, nbb = _div(br, eb), _div(brb, ebb)
    se = np.sqrt(_div(_div(_sq_err_var(cur.hist, br), sl), eb * eb) + _div(_div(_sq_err_var(base.hist, brb), slb), ebb * ebb))
    ratio_b = _div(nb, nbb)
    pv_b = np.asarray(stats.norm_sf(np.nan_to_num(_div(nb - nbb, se))))
    tested_b = (sl >= mn) & (slb >= bmn) & (np.nan_to_num(brb) > 0)
    rv = np.zeros(P, bool)
    rv[0] = river_latched
    out.append(Result(
        "concept_drift", None, "error_rate_change", ratio_b, tested_b & stable & (np.arange(P) == 0),
        rv & (np.nan_to_num(ratio_b) >= th.river_brier_ratio), rv & (np.nan_to_num(ratio_b) >= th.brier_ratio_critical),
        pv_b, th.river_brier_ratio,
        lambda i: {"reference": {"brier": rnd(brb[i])}, "current": {"brier": rnd(br[i])}, "detector": "river ADWIN"},
        lambda i: f"prediction error rose (Brier {br[i]:.3f} vs {brb[i]:.3f}, {ratio_b[i]:.2f}x relative to calibrated "
                  "scores of the same mix; river ADWIN change point) while inputs "
                  "and the label base rate are stable: the input-outcome relationship changed",
        effect=log_effect(ratio_b)))

    # ---- performance: AUC vs baseline and reference
    neg, pos = cur.hist[:, 0, :], cur.hist[:, 1, :]
    auc, _ = binned_auc(neg, pos)
    Pc, Nc = pos.sum(1), neg.sum(1)
    auc_b, _ = binned_auc(base.hist[:, 0, :], base.hist[:, 1, :])
    Pb, Nb = base.hist[:, 1, :].sum(1), base.hist[:, 0, :].sum(1)
    refs = [("baseline", auc_b, auc_se(auc_b, Pb, Nb), (Pb >= 2 * th.min_class) & (Nb >= 2 * th.min_class))]
    if ref_auc is not None:
        ra = np.full(P, np.nan)
        ra[0] = ref_auc
        rp, rn = ref_auc_n
        refs.append(("training", ra, auc_se(ra, np.full(P, rp), np.full(P, rn)), ~np.isnan(ra)))
    for name, a0, se0, ok0 in refs:
        ng, ps, au, Pn, Nn = neg, pos, auc, Pc, Nc
        if name == "training" and span is not None:  # all traffic over the span long enough to show it
            ng, ps = neg.copy(), pos.copy()
            ng[0], ps[0] = span[0], span[1]
            au, Pn, Nn = auc.copy(), Pc.copy(), Nc.copy()
            au[0], Pn[0], Nn[0] = float(binned_auc(span[0][None], span[1][None])[0][0]), span[1].sum(), span[0].sum()
        dlt = a0 - au
        z = _div(dlt, np.sqrt(auc_se(au, Pn, Nn) ** 2 + se0**2))
        tested = (Pn >= th.min_class) & (Nn >= th.min_class) & ok0
        out.append(Result(
            "performance", None, "auc_drop", dlt, tested, np.nan_to_num(dlt) >= th.auc_drop,
            np.nan_to_num(dlt) >= th.auc_drop_critical, np.asarray(stats.norm_sf(np.nan_to_num(z))), th.auc_drop,
            lambda i, a0=a0, name=name, au=au, ng=ng, ps=ps, Pn=Pn, Nn=Nn: {
                "reference": {"auc": rnd(a0[i]), "source": name},
                "current": {"auc": rnd(au[i]), "pr_auc": rnd(average_precision(ng[i], ps[i])),
                            "positives": int(Pn[i]), "negatives": int(Nn[i])}},
            lambda i, a0=a0, name=name, au=au: f"ROC AUC fell to {au[i]:.3f} from {a0[i]:.3f} ({name})"))

    # ---- performance at the threshold in force
    tp, fp, fn = cur.cnt[:, C["tp"]], cur.cnt[:, C["fp"]], cur.cnt[:, C["fn"]]
    tpb, fpb, fnb = base.cnt[:, C["tp"]], base.cnt[:, C["fp"]], base.cnt[:, C["fn"]]
    for stat_name, k, kb_, word in (("precision_drop", tp + fp, tpb + fpb, "precision"), ("recall_drop", tp + fn, tpb + fnb, "recall")):
        v, vb = _div(tp, k), _div(tpb, kb_)
        dlt = vb - v
        tested = (k >= th.min_decisions) & (kb_ >= 2 * th.min_decisions)
        pv = stats.proportion_test(tp, np.maximum(k, tp), np.where(tested, np.clip(np.nan_to_num(vb), 0, 1), 0.5), "less",
                                   n0=np.maximum(kb_, 1))
        out.append(Result(
            "performance", None, stat_name, dlt, tested, np.nan_to_num(dlt) >= th.pr_drop, np.nan_to_num(dlt) >= th.pr_drop_critical,
            np.asarray(pv), th.pr_drop,
            lambda i, v=v, vb=vb, word=word: {"reference": {word: rnd(vb[i])}, "current": {word: rnd(v[i])}},
            lambda i, v=v, vb=vb, word=word: f"{word} at the threshold in force fell to {pct(v[i])} from {pct(vb[i])}"))
    out.append(Result(
        "performance", None, "brier_ratio", ratio_b, tested_b, np.nan_to_num(ratio_b) >= th.brier_ratio,
        np.nan_to_num(ratio_b) >= th.brier_ratio_critical, pv_b, th.brier_ratio,
        lambda i: {"reference": {"brier": rnd(brb[i])}, "current": {"brier": rnd(br[i])}},
        lambda i: f"the Brier score rose to {br[i]:.3f} from {brb[i]:.3f} ({ratio_b[i]:.2f}x relative to calibrated "
                  "scores of the same mix)", effect=log_effect(ratio_b)))

    # ---- calibration: ECE vs baseline (chi-square of per-bin label rates)
    dlt, chi, df = calibration_change(cur.rel, base.rel)
    e, eb = ece(cur.rel), ece(base.rel)
    out.append(Result(
        "calibration", None, "ece_delta", dlt, (sl >= mn) & (slb >= bmn) & (df > 0), np.nan_to_num(dlt) >= th.ece_delta,
        np.nan_to_num(dlt) >= th.ece_delta_critical, np.asarray(stats.chi2_sf(chi, np.maximum(df, 1))), th.ece_delta,
        lambda i: {"reference": {"ece": rnd(eb[i])}, "current": {"ece": rnd(e[i]), "reliability": _reliability(cur.rel[i])}},
        lambda i: f"calibration worsened: ECE {e[i]:.3f} vs {eb[i]:.3f} usually (a score no longer means the same risk)"))

    # ---- calibration slope (spread of the outcomes around the scores) vs baseline and training
    slopes = _slope_checks(cur, base, th, comp, ref_slope, span, seq)
    out.extend(slopes)
    # the slope as training's and the baseline's: a move of O/E may be a shift of the outcome prior
    slope_ok = all(not r.tested[0] or not r.pvalue[0] < _PRIOR_ALPHA for r in slopes)

    # ---- calibration-in-the-large vs training
    obs, E, S2 = cur.cnt[:, C["spos"]], cur.cnt[:, C["s"]], cur.cnt[:, C["s2"]]
    oe = _div(obs, E)
    ratio_oe = _div(oe, ref_oe)
    k_ = np.nan_to_num(ref_oe)
    v_ = np.maximum(k_ * E - k_ * k_ * S2, k_ * E * 0.05) + (k_ * E) ** 2 * ref_rv
    z = _div(obs - k_ * E, np.sqrt(v_))
    tested = (sl >= mn) & ~np.isnan(ref_oe) & (E > 0)
    absd = np.abs(np.nan_to_num(_div(obs - k_ * E, sl))) >= th.base_rate_abs
    warn, crit = ratio_flags(ratio_oe, th.oe_ratio, th.oe_ratio_critical, absd)
    pv = np.minimum(1.0, 2 * np.asarray(stats.norm_sf(np.abs(np.nan_to_num(z)))))
    shared, rest, p_same, p_rest = prior_shift(obs, np.where(np.isnan(ref_oe), np.nan, k_ * E),
                                               np.maximum(k_ * E - k_ * k_ * S2, 0.0), comp, ref_rv, slope_ok,
                                               _PRIOR_ALPHA)
    # a slice's own move that is not the prior's claims that the slice differs from the rest of traffic, and
    # needs that evidence too (an intersection-union test: both p-values small). At a label age where few
    # labels are in, a slice can sit far from training by chance while the rest's smaller move is not yet
    # significant on its own; when the slice's move cannot be told from the rest's (p_same_as_rest >= the
    # prior test's level) it is left to the all-traffic row, which gathers the whole shift's evidence
    local = ~comp & (np.arange(P) > 0) & np.isfinite(p_same) & ~shared
    apart = np.nan_to_num(p_same, nan=1.0) < _PRIOR_ALPHA
    pv = np.where(local, np.maximum(pv, np.nan_to_num(p_same, nan=1.0)), pv)
    warn, crit = warn & (~local | apart), crit & (~local | apart)
    _mirror(comp, tested, warn, crit, pv)
    out.append(Result(
        "calibration", None, "observed_expected_ratio", ratio_oe, tested, warn, crit, pv, th.oe_ratio,
        lambda i: {"reference": {"observed_over_expected": rnd(ref_oe[i]), "source": "training"},
                   "current": {"observed_over_expected": rnd(oe[i]), "mean_score": rnd(_div(E[i], sl[i])),
                               "base_rate": rnd(_div(obs[i], sl[i]))},
                   "prior_shift": {"shared": bool(shared[i]), "slope_consistent": slope_ok,
                                   **({"rest_of_traffic_ratio": rnd(rest[i]), "p_same_as_rest": rnd(p_same[i], 6)}
                                      if rest[i] == rest[i] else {})}},
        lambda i: f"outcomes are {oe[i]:.2f}x the mean score (training: {ref_oe[i]:.2f}x): scores are miscalibrated",
        effect=log_effect(ratio_oe)))

    # ---- label quality: a slice's base rate disagrees with its training rate (global change removed)
    exp_s = np.clip(slice_ref_rate * global_ratio, 1e-6, 1 - 1e-6)
    ratio_s = _div(dp, exp_s)
    tested = (dn >= mn) & ~np.isnan(slice_ref_rate) & (global_ratio == global_ratio)
    absd = np.abs(np.nan_to_num(dp - exp_s)) >= th.base_rate_abs
    warn, crit = ratio_flags(ratio_s, th.inconsistency_ratio, math.inf, absd)
    pv = np.asarray(stats.proportion_test(dy, dn, np.where(tested, np.nan_to_num(exp_s, nan=0.5), 0.5), "two-sided",
                                          n0=np.maximum(np.nan_to_num(slice_ref_n), 1)))
    _mirror(comp, tested, warn, crit, pv)
    out.append(Result(
        "label_delay", None, "base_rate_inconsistency", ratio_s, tested, warn, crit, pv, th.inconsistency_ratio,
        lambda i: {"reference": {"base_rate": rnd(exp_s[i]), "source": "training slice rate x global change"},
                   "current": {"base_rate": rnd(dp[i]), "span": "trailing day"}},
        lambda i: f"this slice's base rate is {pct(dp[i])} where its training rate (scaled by the global change) gives "
                  f"{pct(exp_s[i])}: check that the label means the same thing here",
        effect=log_effect(ratio_s)))
    # "critical" fires without a confirming evaluation, so the sample must be able to establish the effect:
    # the information of a binary outcome is in its rarer class, not in the number of pairs (1,000 pairs of
    # a 2% outcome are 20 positives; a ratio of 2 on 20 expected is within chance of 1.5)
    rare = np.maximum(np.minimum(y, n - y), np.nan_to_num(np.minimum(dy, dn - dy)))
    big = (np.maximum(n, np.nan_to_num(dn)) >= th.critical_labels) & (rare >= th.critical_events)
    for r in out:  # a small sample may breach hugely by chance: let hysteresis confirm it
        r.crit = r.crit & big
    return out


#: level at which a slope difference or a slice's disagreement with the rest rules out a shift of the prior
_PRIOR_ALPHA = 0.01


def _slope_checks(cur: Arrays, base: Arrays, th: OutcomeThresholds, comp: np.ndarray,
                  ref_slope: tuple[float, float] | None, span: np.ndarray | None = None,
                  seq: np.ndarray | None = None) -> list[Result]:
    """Cox calibration slope against the baseline's and training's: x1.25 (critical x2) either way.
    A rank-preserving change of how extreme outcomes are (scores too timid or too extreme) moves it;
    late labels do not (see :func:`~detector.core.outcomes.cohort.calibration_slope`). Against the baseline, a
    z-test of the pool. Against training, all traffic: with ``seq`` (the trailing cohorts' histograms, newest
    first) the sequential test of :func:`~detector.core.outcomes.slope_sequential.slope_cusum`, whose evidence
    accumulates since a change; else a z-test over ``span`` (or the pool)."""
    P = cur.cnt.shape[0]
    b_pool, se_pool = calibration_slope(cur.hist[:, 0, :], cur.hist[:, 1, :])
    out = []
    refs = [("baseline", *calibration_slope(base.hist[:, 0, :], base.hist[:, 1, :]), np.ones(P, bool))]
    if ref_slope is not None:
        b0 = np.full(P, np.nan)
        b0[0] = ref_slope[0]
        refs.append(("training", b0, np.full(P, ref_slope[1]), np.zeros(P, bool)))
    for name, b0, se0, per_row in refs:
        b, se, h, extra = b_pool, se_pool, cur.hist, {}
        if name == "training" and (span is not None or seq is not None):
            b, se, h = b_pool.copy(), se_pool.copy(), cur.hist.copy()
            if span is not None:
                b[0], se[0] = (float(v) for v in calibration_slope(span[0], span[1]))
                h[0] = span
        n_min = (h[:, 1, :].sum(1) >= th.min_class) & (h[:, 0, :].sum(1) >= th.min_class)
        ratio = _div(b, b0)
        z = _div(b - b0, np.sqrt(se * se + se0 * se0))
        tested = n_min & np.isfinite(ratio) & (np.nan_to_num(b0) > 0)
        warn, crit = ratio_flags(ratio, th.slope_ratio, th.oe_ratio_critical, np.ones(P, bool))
        pv = np.minimum(1.0, 2 * np.asarray(stats.norm_sf(np.abs(np.nan_to_num(z)))))
        if name == "training" and seq is not None:
            q = slope_cusum(seq, float(b0[0]), float(se0[0]), th.slope_ratio, th.min_class)
            b[0], ratio[0], pv[0] = q["slope"], _div(q["slope"], b0[0]), q["pvalue"]
            tested[0] = q["cohorts"] > 0 and np.isfinite(ratio[0]) and b0[0] > 0
            # the alternative is the warning ratio: the evidence favours it when the span's slope is beyond
            # the (geometric) midpoint; "critical" keeps the fixed test's size
            w0, c0 = ratio_flags(ratio[:1], math.sqrt(th.slope_ratio), th.oe_ratio_critical, np.ones(1, bool))
            warn[0], crit[0] = w0[0] and q["llr"] > 0, c0[0]
            extra = {"test": "sequential (CUSUM since the change)", "log_likelihood_ratio": rnd(q["llr"], 3),
                     "cohorts": int(q["cohorts"]), "positives": int(q["positives"])}
        if not per_row.any():
            _mirror(comp, tested, warn, crit, pv)
        out.append(Result(
            "calibration", None, "calibration_slope", b, tested, warn, crit, pv, th.slope_ratio,
            lambda i, b0=b0, name=name, b=b, se=se, h=h, extra=extra: {
                "reference": {"calibration_slope": rnd(b0[i]), "source": name},
                "current": ({"calibration_slope": rnd(b[i]), **extra} if extra and i == 0 else
                            {"calibration_slope": rnd(b[i]), "se": rnd(se[i]), "positives": int(h[i, 1].sum())})},
            lambda i, b0=b0, name=name, b=b: (
                f"outcomes are {'more' if b[i] > b0[i] else 'less'} extreme than the scores say: calibration slope "
                f"{b[i]:.2f} vs {b0[i]:.2f} ({name}); the score's meaning changed"),
            effect=log_effect(ratio)))
    return out


def _mirror(comp: np.ndarray, *arrays: np.ndarray) -> None:
    """Complement rows take the all-traffic row's value (in place)."""
    for a in arrays:
        a[comp] = a[0]


def _sq_err_var(hist: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Variance of the per-pair squared error, from the binned scores (bin centres)."""
    c = (np.arange(N_HIST) + 0.5) / N_HIST
    n = hist.sum((1, 2))
    m2 = (hist[:, 0, :] * c**4 + hist[:, 1, :] * (1 - c) ** 4).sum(1)
    return np.maximum(np.nan_to_num(_div(m2, n) - mean**2), 0.0)


def _reliability(rel: np.ndarray) -> list[list[float]]:
    """[bin lower edge, count, mean score, mean label] of the non-empty reliability bins."""
    out = []
    for b in range(rel.shape[0]):
        n = rel[b, 0]
        if n > 0:
            out.append([b / rel.shape[0], int(n), round(float(rel[b, 1] / n), 4), round(float(rel[b, 2] / n), 4)])
    return out
