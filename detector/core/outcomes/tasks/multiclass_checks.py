"""Outcome checks of a multiclass model's matured cohort, vectorised over pseudo-rows.

The class mix of the traffic follows the time of day (billing questions in the morning, delivery
in the evening) and so does accuracy. The baseline comparisons therefore condition on the
*predicted* class: each labelled pair expects the baseline's distribution of true classes for its
predicted class, ``P_base(true | predicted)`` (shrunk towards the baseline's label priors with
``prior`` pseudo-pairs). The expected confusion matrix of the cohort is
``E[i, j] = n_j P_base(i | j)`` and every baseline check compares with it (the confusion-matrix
statistics are in :mod:`.multiclass_confusion`).

Label drift (a change of class priors) and concept drift (a change of what the inputs mean)
both move the confusion matrix away from ``E``; they move it differently. A pure prior shift
reweights the true classes of every predicted class by the same factors:
``P_new(i | j) ~ P_base(i | j) w_i``. The factors ``w`` are fitted to the cohort by iterative
proportional fitting (the maximum-likelihood fit of that model); what the fit leaves
unexplained is the *confusion shift*. A class-prior finding is reported only when the prior
shift explains the move (the residual is not significant at ``explained_alpha`` or is small);
a confusion shift is the residual itself, so a concept change is not mistaken for label drift.

=================  ===============================  ==========================================================
kind               statistic                        effect (warning / critical) and test
=================  ===============================  ==========================================================
``performance``    ``accuracy_drop`` (baseline,     expected - observed accuracy >= 0.05 / 0.1; one-sided
                   training)                        z-test (variance of the pairs + of the bin estimates)
``performance``    ``macro_f1_drop`` (baseline)     F1(expected confusion) - F1(observed) >= 0.05 / 0.1;
                                                    delta-method z-test
``performance``    ``recall_drop``,                 one class's recall / precision down 0.1 / 0.2 vs the
                   ``precision_drop`` (per class)   baseline; one-sided two-proportion test
``performance``    ``confusion_shift`` (baseline)   total variation between observed and prior-adjusted
                                                    expected confusion >= 0.1 / 0.2; G-test per predicted
                                                    class, summed (df minus the fitted priors)
``label_drift``    ``class_prior_ratio`` (baseline  a class's label odds vs what the predictions expect: odds
                   and training, trailing day)      ratio confidently beyond x1.25 (x1.5): the lower 95% bound
                                                    of |log OR| >= log 1.25 (log 1.5), and |delta| >= 0.01;
                                                    G-test; vs the baseline only when a prior shift explains it
``score_drift``    ``predicted_class_psi``          trailing-day predicted class mix vs training: PSI 0.2 /
                   (training)                       0.5; G-test
``calibration``    ``ece_delta`` (baseline)         top-label ECE up 0.05 / 0.1; chi-square of per-bin accuracy
``calibration``    ``observed_expected_ratio``      accuracy / mean confidence vs training's >= 1.3 or <= 1/1.3
                   (training)                       (2); z-test
=================  ===============================  ==========================================================

As for regression: ``performance`` findings become ``concept_drift`` in the monitor when inputs
and labels are stable; with input alerts open the raw label priors must move the same way too;
training comparisons test all traffic only and complements mirror it; "critical" needs
``critical_labels`` labelled pairs.

Why the class-prior gate is an odds ratio with a confidence bound: a prior shift multiplies a
class's odds (Bayes' rule under label shift), and the same odds factor is a share ratio near the
factor for a rare class but far below it for a common one (odds x3 takes a 30% class to 56%, a
share ratio of 1.9; x1.45 to 38%, 1.27). A share-ratio floor of 1.5 thus hid large shifts of
common classes. And a floor on the point estimate is blind to sample size: with a few hundred labels
the estimate of one class's ratio wanders by +-20%, so a clear shift flickers around the floor,
while with tens of thousands of labels a persistent x1.45 stays below it for ever. The gate asks
instead that the shift be *confidently* beyond a minimal relevant size (the lower bound of the log
odds ratio, sampling of the cohort's labels and of the expectation's source rows both counted):
little evidence needs a large shift, much evidence a smaller one - never one below x1.25.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.cohort import calibration_change, ece
from detector.core.outcomes.tasks.base import CheckContext, Counters
from detector.core.outcomes.tasks.multiclass_confusion import (
    confusion_metrics,
    expected_confusion,
    macro_f1_se,
    prior_shift,
)
from detector.core.stats import distributions as stats
from detector.core.stats.effects import (
    div,
    gtest_vs_expected,
    log_effect,
    mirror,
    one_sided_z,
    pct,
    ratio_flags,
    rnd,
    two_sided_z,
)

__all__ = ["MulticlassThresholds", "multiclass_checks", "expected_confusion", "prior_shift", "confusion_metrics",
           "macro_f1_se"]


class _Task(Protocol):
    """What the checks read of the multiclass task (:class:`~detector.core.outcomes.tasks.multiclass.MulticlassTask`)."""

    th: MulticlassThresholds
    C: int
    classes: list[str]
    ref: Mapping[str, Any]


@dataclass(frozen=True)
class MulticlassThresholds:
    """Effect sizes and minimum counts of the multiclass checks (see the module table)."""

    min_labels: int = 100
    base_factor: int = 3
    min_class: int = 30  # labelled pairs of a class (or predictions of it) for a per-class test
    min_predictions: int = 100
    prior: float = 5.0
    accuracy_drop: float = 0.05
    accuracy_drop_critical: float = 0.1
    f1_drop: float = 0.05
    f1_drop_critical: float = 0.1
    class_drop: float = 0.1
    class_drop_critical: float = 0.2
    confusion_tvd: float = 0.1
    confusion_tvd_critical: float = 0.2
    explained_alpha: float = 0.001  # a prior shift "explains" the move unless its residual is this significant
    prior_odds: float = 1.25  # a class's odds moved confidently beyond this factor (lower 95% bound)
    prior_odds_critical: float = 1.5
    prior_z: float = 1.96  # the confidence bound of the class-prior odds ratio
    prior_abs: float = 0.01
    psi: float = 0.2
    psi_critical: float = 0.5
    ece_delta: float = 0.05
    ece_delta_critical: float = 0.1
    oe_ratio: float = 1.3
    oe_ratio_critical: float = 2.0
    critical_labels: int = 500



def _class_odds(obs: np.ndarray, exp: np.ndarray, ref_n: np.ndarray, th: MulticlassThresholds
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the odds ratio (observed vs expected label share) of the class that moved most surely, its
    index, and the lower confidence bound of its |log odds ratio| (-inf where no class really moved).

    The variance counts the cohort's labels (``obs``) and the rows the expectation was learnt from
    (``ref_n``: baseline or training labelled pairs): ``1/a + 1/(n-a) + 1/(q m) + 1/((1-q) m)``.
    """
    n = obs.sum(-1, keepdims=True)
    p = np.clip(np.nan_to_num(div(obs, n)), 1e-9, 1 - 1e-9)
    q = np.clip(np.nan_to_num(div(exp, exp.sum(-1, keepdims=True))), 1e-9, 1 - 1e-9)
    lor = np.log(p / (1 - p)) - np.log(q / (1 - q))
    m = np.maximum(np.asarray(ref_n, dtype=np.float64), 1.0)[..., None]
    var = 1 / np.maximum(obs, 0.5) + 1 / np.maximum(n - obs, 0.5) + 1 / (q * m) + 1 / ((1 - q) * m)
    lb = np.abs(lor) - th.prior_z * np.sqrt(var)
    moved = (np.abs(p - q) >= th.prior_abs) & (exp >= 5)
    eff = np.where(moved, lb, -np.inf)
    k = np.argmax(eff, -1)
    def take(a: np.ndarray) -> np.ndarray:
        return np.take_along_axis(a, k[..., None], -1)[..., 0]

    best = take(eff)
    return np.where(np.isfinite(best), np.exp(take(lor)), 1.0), k, best


def _odds_flags(lb: np.ndarray, th: MulticlassThresholds, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warning / critical where the shift is confidently beyond ``prior_odds`` / ``prior_odds_critical``, and ``extra``."""
    return (lb >= np.log(th.prior_odds)) & extra, (lb >= np.log(th.prior_odds_critical)) & extra


def multiclass_checks(t: _Task, cur: Counters, base: Counters, ctx: CheckContext) -> list[Result]:
    th = t.th
    P, C = cur.rows, t.C
    out: list[Result] = []
    conf_c, conf_b = cur["conf"], base["conf"]
    n, nb = conf_c.sum((1, 2)), conf_b.sum((1, 2))
    big = n >= th.critical_labels
    names = t.classes
    E, cond = expected_confusion(conf_c, conf_b, th.prior)
    ncj, colb = conf_c.sum(1), conf_b.sum(1)
    tested_b = (n >= th.min_labels) & (nb >= th.min_labels * th.base_factor)

    # ---- accuracy vs the baseline, for this predicted-class mix
    q = np.diagonal(cond, axis1=1, axis2=2)
    exp_ok, obs_ok = (ncj * q).sum(1), np.trace(conf_c, axis1=1, axis2=2)
    var = (ncj * q * (1 - q)).sum(1) + (ncj * ncj * q * (1 - q) / (colb + th.prior)).sum(1)
    drop = div(exp_ok - obs_ok, n)
    out.append(_drop("accuracy_drop", "accuracy", drop, div(exp_ok, n), div(obs_ok, n), one_sided_z(div(exp_ok - obs_ok, np.sqrt(var))),
                     tested_b, th.accuracy_drop, th.accuracy_drop_critical, big, "production baseline, for this predicted-class mix"))
    ref = ctx.reference if ctx.reference is not None else t.ref
    if ref.get("confusion") and len(ref["confusion"]) == C:  # vs training, all traffic
        rc = np.asarray(ref["confusion"], dtype=np.float64)[None]
        Et, condt = expected_confusion(conf_c, np.broadcast_to(rc, conf_c.shape), th.prior)
        qt = np.diagonal(condt, axis1=1, axis2=2)
        exp_t = (ncj * qt).sum(1)
        vt = (ncj * qt * (1 - qt)).sum(1) + (ncj * ncj * qt * (1 - qt) / (rc.sum(1) + th.prior)).sum(1)
        r = _drop("accuracy_drop", "accuracy", div(exp_t - obs_ok, n), div(exp_t, n), div(obs_ok, n),
                  one_sided_z(div(exp_t - obs_ok, np.sqrt(vt))), (n >= th.min_labels) & (np.arange(P) == 0),
                  th.accuracy_drop, th.accuracy_drop_critical, big, "training, for this predicted-class mix")
        mirror(ctx.comp, r.value, r.tested, r.warn, r.crit, r.pvalue)
        out.append(r)

    # ---- macro-F1 vs the expected confusion
    f_exp, f_obs = confusion_metrics(E)["macro_f1"], confusion_metrics(conf_c)["macro_f1"]
    se = np.sqrt(macro_f1_se(conf_c) ** 2 + macro_f1_se(conf_b) ** 2)
    out.append(_drop("macro_f1_drop", "macro-F1", f_exp - f_obs, f_exp, f_obs, one_sided_z(div(f_exp - f_obs, se)),
                     tested_b, th.f1_drop, th.f1_drop_critical, big, "production baseline, for this predicted-class mix"))

    # ---- per-class recall and precision vs the baseline
    mc, mb = confusion_metrics(conf_c), confusion_metrics(conf_b)
    tp = np.diagonal(conf_c, axis1=1, axis2=2)
    for stat, word, key, sup in (("recall_drop", "recall", "recall", "support"), ("precision_drop", "precision", "precision", "predicted")):
        for j in range(C - 1):
            v, vb, k, kb = mc[key][:, j], mb[key][:, j], mc[sup][:, j], mb[sup][:, j]
            tested = (k >= th.min_class) & (kb >= 2 * th.min_class)
            pv = np.asarray(stats.proportion_test(np.minimum(tp[:, j], k), k, np.where(tested, np.clip(np.nan_to_num(vb), 0, 1), 0.5),
                                                  "less", n0=np.maximum(kb, 1)))
            r = _drop(stat, f"{word} of class {names[j]!r}", vb - v, vb, v, pv, tested, th.class_drop, th.class_drop_critical,
                      big, "production baseline")
            r.evidence = (lambda i, v=v, vb=vb, k=k, j=j, word=word: {
                "reference": {word: rnd(vb[i])}, "current": {word: rnd(v[i]), "pairs": int(k[i])}, "class": names[j]})
            out.append(r)

    # ---- confusion shift: what a change of class priors cannot explain (per predicted class, summed)
    _, Ew = prior_shift(conf_c, cond)
    obs = np.moveaxis(conf_c, 2, 1).reshape(P * C, C)
    expd = np.moveaxis(Ew, 2, 1).reshape(P * C, C)
    g, df, _ = stats.gtest_gof(obs, expd + 1e-12, ref_n=np.maximum(colb.reshape(P * C), 1.0))
    used = obs.sum(1) > 0
    G = np.where(used, np.nan_to_num(np.asarray(g, dtype=np.float64)), 0.0).reshape(P, C).sum(1)
    DF = np.where(used, np.asarray(df), 0).reshape(P, C).sum(1) - (C - 1)
    pv = np.where(DF > 0, np.asarray(stats.chi2_sf(G, np.maximum(DF, 1))), 1.0)
    tvd = div(0.5 * np.abs(conf_c - Ew).sum((1, 2)), n)
    explained = (pv >= th.explained_alpha) | (np.nan_to_num(tvd) < 0.5 * th.confusion_tvd)
    out.append(Result(
        "performance", None, "confusion_shift", tvd, tested_b, np.nan_to_num(tvd) >= th.confusion_tvd,
        (np.nan_to_num(tvd) >= th.confusion_tvd_critical) & big, pv, th.confusion_tvd,
        lambda i: {"reference": {"source": "production baseline, for these predicted classes, after the best class-prior change"},
                   "current": {"total_variation": rnd(tvd[i]), "labelled": int(n[i]), "largest_moves": _moves(conf_c[i], Ew[i], names)}},
        lambda i: f"the pattern of errors changed: {pct(tvd[i])} of labelled predictions sit in other cells of the "
                  "confusion matrix than the baseline expects for these predicted classes, beyond any change of class priors",
        effect=np.nan_to_num(tvd)))

    # ---- label drift: class priors vs what the predictions expect (baseline), and vs training (trailing day)
    lab_c, lab_e = conf_c.sum(2), E.sum(2)
    ratio, k, lb = _class_odds(lab_c, lab_e, nb, th)
    # a class-prior move counts as evidence of label drift only where a prior shift explains it
    pv = np.where(explained, gtest_vs_expected(lab_c, lab_e, nb), 1.0)
    warn, crit = _odds_flags(lb, th, explained)
    if not ctx.inputs_stable:  # the predicted mix may be broken: the raw label share must move the same way
        raw = div(div(lab_c, n[:, None]), div(conf_b.sum(2), nb[:, None]))
        rk = np.take_along_axis(raw, k[:, None], 1)[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            lr, la = np.log(np.nan_to_num(rk, nan=1.0) + 1e-12), np.log(np.nan_to_num(ratio, nan=1.0) + 1e-12)
        agree = (np.sign(lr) == np.sign(la)) & (np.abs(lr) >= np.log(th.prior_odds))
        warn, crit = warn & agree, crit & agree
        pv = np.maximum(pv, gtest_vs_expected(lab_c, conf_b.sum(2), nb))
    out.append(_prior_result("class_prior_ratio", ratio, k, lb, lab_c, lab_e, tested_b, warn, crit & big, pv, th, names,
                             "production baseline, for these predictions"))
    lab_ref = (ref.get("labels") or {}).get("priors")
    if ctx.day is not None and lab_ref and len(lab_ref) == C:
        dl = ctx.day["conf"].sum(2)
        rp = np.asarray(lab_ref, dtype=np.float64)
        rn = float(ref["labels"].get("n") or 0)
        de = dl.sum(1, keepdims=True) * rp[None]
        ratio_t, kt, lb_t = _class_odds(dl, de, np.full(P, rn), th)
        pv_t = gtest_vs_expected(dl, np.broadcast_to(rp, dl.shape), np.full(P, rn))
        w_t, c_t = _odds_flags(lb_t, th, np.ones(P, bool))
        tested_t = (dl.sum(1) >= th.min_labels) & (rn >= th.min_labels) & (np.arange(P) == 0)
        mirror(ctx.comp, ratio_t, tested_t, w_t, c_t, pv_t)
        out.append(_prior_result("class_prior_ratio", ratio_t, kt, lb_t, dl, de, tested_t, w_t, c_t, pv_t, th, names,
                                 "training (trailing day)"))
    pred_ref = (ref.get("predictions") or {}).get("priors")
    if ctx.day is not None and pred_ref and len(pred_ref) == C:
        dp = ctx.day["pcls"]
        rp = np.asarray(pred_ref, dtype=np.float64)
        rn = float(ref["predictions"].get("n") or 0)
        psi = np.asarray(stats.psi(rp, dp), dtype=np.float64)
        pv_p = gtest_vs_expected(dp, np.broadcast_to(rp, dp.shape), np.full(P, rn))
        tested_p = (dp.sum(1) >= th.min_predictions) & (rn >= th.min_predictions) & (np.arange(P) == 0)
        w_p, c_p = np.nan_to_num(psi) >= th.psi, np.nan_to_num(psi) >= th.psi_critical
        mirror(ctx.comp, psi, tested_p, w_p, c_p, pv_p)
        sh = div(dp, dp.sum(1, keepdims=True))
        out.append(Result(
            "score_drift", None, "predicted_class_psi", psi, tested_p, w_p, c_p, pv_p, th.psi,
            lambda i: {"reference": {"shares": dict(zip(names, map(rnd, rp), strict=True)), "source": "training"},
                       "current": {"shares": dict(zip(names, map(rnd, sh[i]), strict=True)), "span": "trailing day"}},
            lambda i: f"over the last day the model predicts a different class mix than in training (PSI {psi[i]:.2f})",
            effect=np.nan_to_num(psi)))
    out.extend(_calibration(cur, base, ref, th, ctx.comp, big))
    return out


def _drop(stat: str, word: str, value: np.ndarray, ref_v: np.ndarray, cur_v: np.ndarray, pv: np.ndarray, tested: np.ndarray,
          warn_d: float, crit_d: float, big: np.ndarray, source: str) -> Result:
    return Result(
        "performance", None, stat, value, tested, np.nan_to_num(value) >= warn_d, (np.nan_to_num(value) >= crit_d) & big,
        np.asarray(pv, dtype=np.float64), warn_d,
        lambda i: {"reference": {"value": rnd(ref_v[i]), "source": source}, "current": {"value": rnd(cur_v[i])}},
        lambda i: f"{word} fell to {pct(cur_v[i])} from {pct(ref_v[i])} ({source})",
        effect=np.abs(np.nan_to_num(value)))


def _prior_result(stat: str, ratio: np.ndarray, k: np.ndarray, lb: np.ndarray, obs: np.ndarray, exp: np.ndarray, tested: np.ndarray,
                  warn: np.ndarray, crit: np.ndarray, pv: np.ndarray, th: MulticlassThresholds, names: list[str],
                  source: str) -> Result:
    so, se_ = div(obs, obs.sum(1, keepdims=True)), div(exp, exp.sum(1, keepdims=True))
    return Result(
        "label_drift", None, stat, ratio, tested, warn, crit, pv, th.prior_odds,
        lambda i: {"reference": {"shares": dict(zip(names, map(rnd, se_[i]), strict=True)), "source": source},
                   "current": {"shares": dict(zip(names, map(rnd, so[i]), strict=True)), "labelled": int(obs[i].sum()),
                               "odds_ratio": rnd(ratio[i]), "odds_ratio_at_least": rnd(np.exp(lb[i])) if np.isfinite(lb[i]) else None},
                   "class": names[int(k[i])]},
        lambda i: f"class {names[int(k[i])]!r} is {pct(so[i, k[i]])} of labels where {pct(se_[i, k[i]])} is expected "
                  f"({source}; odds x{ratio[i]:.2f}): the class priors moved",
        effect=log_effect(ratio))


def _moves(obs: np.ndarray, exp: np.ndarray, names: list[str], top: int = 3) -> list[dict[str, Any]]:
    d = obs - exp
    order = np.argsort(-np.abs(d), axis=None)[:top]
    return [{"true": names[i], "predicted": names[j], "observed": int(obs[i, j]), "expected": rnd(exp[i, j], 1)}
            for i, j in (np.unravel_index(o, d.shape) for o in order.tolist())]


def _calibration(cur: Counters, base: Counters, ref: Any, th: MulticlassThresholds, comp: np.ndarray,
                 big: np.ndarray) -> list[Result]:
    rel_c, rel_b = cur["rel"], base["rel"]
    sc, scb = rel_c[..., 0].sum(1), rel_b[..., 0].sum(1)
    out: list[Result] = []
    d, chi, df = calibration_change(rel_c, rel_b)
    e, eb = ece(rel_c), ece(rel_b)
    out.append(Result(
        "calibration", None, "ece_delta", d, (sc >= th.min_labels) & (scb >= th.min_labels * th.base_factor) & (df > 0),
        np.nan_to_num(d) >= th.ece_delta, (np.nan_to_num(d) >= th.ece_delta_critical) & big,
        np.asarray(stats.chi2_sf(chi, np.maximum(df, 1))), th.ece_delta,
        lambda i: {"reference": {"ece": rnd(eb[i])}, "current": {"ece": rnd(e[i])}},
        lambda i: f"top-label calibration worsened: ECE {e[i]:.3f} vs {eb[i]:.3f} usually (a confidence no longer "
                  "means the same chance of being right)"))
    rr = ref.get("reliability")
    if rr and sum(rr["count"]) > 0 and sum(rr["confidence"]) > 0:
        ref_oe = sum(rr["correct"]) / sum(rr["confidence"])
        obs, E, S2 = rel_c[..., 2].sum(1), rel_c[..., 1].sum(1), (rel_c[..., 1] ** 2 / np.maximum(rel_c[..., 0], 1)).sum(1)
        ratio = div(div(obs, E), ref_oe)
        v = np.maximum(ref_oe * E - ref_oe**2 * S2, ref_oe * E * 0.05)
        pv = two_sided_z(div(obs - ref_oe * E, np.sqrt(v)))
        tested = (sc >= th.min_labels) & (np.arange(len(sc)) == 0) & (E > 0)
        warn, crit = ratio_flags(ratio, th.oe_ratio, th.oe_ratio_critical, np.ones(len(sc), bool))
        crit = crit & big
        mirror(comp, ratio, tested, warn, crit, pv)
        out.append(Result(
            "calibration", None, "observed_expected_ratio", ratio, tested, warn, crit, pv, th.oe_ratio,
            lambda i: {"reference": {"observed_over_expected": rnd(ref_oe), "source": "training"},
                       "current": {"accuracy_over_confidence": rnd(div(obs[i], E[i]))}},
            lambda i: f"predictions are right {float(div(obs[i], E[i])):.2f}x as often as their confidence says "
                      f"(training: {ref_oe:.2f}x): the class scores are miscalibrated",
            effect=log_effect(ratio)))
    return out
