"""Outcome checks of a regression model's matured cohort, vectorised over pseudo-rows.

Comparisons are with the trailing production baseline (the sum of recent clean matured cohorts)
and with training (the reference's errors and distributions). Errors and targets follow the time
of day (demand is higher at peak hours and so are its errors), so the error checks compare the
cohort with what the baseline's errors *for this prediction mix* expect: each pair expects the
baseline error of its prediction bin (shrunk towards the overall error with ``prior``
pseudo-pairs); the variance adds the noise of the current pairs and of the bin estimates.

=================  ===========================  ===============================================================
kind               statistic                    effect (warning / critical) and test
=================  ===========================  ===============================================================
``performance``    ``mae_ratio`` (baseline,     MAE / MAE expected for this prediction mix >= 1.25 / 1.5;
                   training)                    one-sided z-test on the sum of |e|
``performance``    ``rmse_ratio`` (baseline)    RMSE / expected RMSE >= 1.25 / 1.5; one-sided z-test on the sum
                                                of e^2 (its variance from the baseline's kurtosis)
``label_drift``    ``target_shift`` (baseline)  the mean target moved against the predictions (bias change) by
                                                0.25 / 0.5 baseline target SDs; two-sided z-test
``label_drift``    ``target_psi`` (training)    trailing-day target distribution vs training: PSI 0.2 / 0.5;
                                                G-test (two-sample, training size)
``score_drift``    ``prediction_psi``           trailing-day prediction distribution vs training, same
                   (training)
=================  ===========================  ===============================================================

``performance`` findings become ``concept_drift`` in the outcome monitor when inputs and labels
are stable, as for binary models. When input alerts are open (``ctx.inputs_stable`` False) the
prediction mix itself may be broken, so a target shift must also move the *raw* target mean
(vs the baseline) the same way by the full effect, significantly. Training comparisons have no
slice complements: complements mirror the all-traffic verdict and slice rows are not tested
against training (the reference has no per-slice errors). "Critical" needs ``critical_labels``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.tasks.base import CheckContext, Counters
from detector.core.stats import distributions as stats
from detector.core.stats.effects import div, log_effect, mirror, one_sided_z, pct, rnd, two_sided_z

__all__ = ["RegressionThresholds", "regression_checks", "expected_errors", "CNT", "I"]

#: the regression task's counters per pseudo-row (:class:`~detector.core.outcomes.tasks.regression.RegressionTask`
#: folds them, these checks read them)
CNT = ("pred", "valued", "ps", "ps2", "lab", "lv", "ys", "ys2", "es", "ea", "es2")
I = {k: i for i, k in enumerate(CNT)}  # noqa: E741 - column index of each counter


class _Task(Protocol):
    """What the checks read of the regression task (:class:`~detector.core.outcomes.tasks.regression.RegressionTask`)."""

    th: RegressionThresholds
    ref: Mapping[str, Any]
    B: int
    T: int
    e_edges: np.ndarray


@dataclass(frozen=True)
class RegressionThresholds:
    """Effect sizes and minimum counts of the regression checks (see the module table)."""

    min_labels: int = 100  # labelled pairs (with a prediction) a pseudo-row needs
    base_factor: int = 3  # the baseline needs base_factor x that
    min_predictions: int = 100  # predictions a distribution test needs
    prior: float = 5.0  # pseudo-pairs shrinking a prediction bin's baseline error to the overall one
    mae_ratio: float = 1.25
    mae_ratio_critical: float = 1.5
    rmse_ratio: float = 1.25
    rmse_ratio_critical: float = 1.5
    target_shift_sd: float = 0.25
    target_shift_sd_critical: float = 0.5
    psi: float = 0.2
    psi_critical: float = 0.5
    critical_labels: int = 500


def _bin_means(perr: np.ndarray, n: np.ndarray, prior: float) -> np.ndarray:
    """Per prediction bin: mean |e|, e^2, e, prediction, shrunk towards the overall means (P, B, 4)."""
    tot = n.sum(-1)
    overall = np.nan_to_num(div(perr.sum(-2), tot[..., None]))
    return (perr + prior * overall[..., None, :]) / (n + prior)[..., None]


def expected_errors(nc: np.ndarray, perr_b: np.ndarray, nb: np.ndarray, prior: float) -> dict[str, np.ndarray]:
    """Sums the baseline expects for ``nc`` (P, B) pairs per prediction bin, and their variances.

    Returns ``abs``/``abs_var`` (sum of |e|), ``sq``/``mse_b`` (sum of e^2 and the per-bin mean)
    and ``bias``/``bias_var`` (sum of e).
    """
    m = _bin_means(perr_b, nb, prior)
    mae, mse, bias = m[..., 0], m[..., 1], m[..., 2]
    var_abs = np.maximum(mse - mae * mae, 0.0)
    var_e = np.maximum(mse - bias * bias, 0.0)
    est = nc * nc / (nb + prior)
    return {"abs": (nc * mae).sum(-1), "abs_var": (nc * var_abs + est * var_abs).sum(-1),
            "sq": (nc * mse).sum(-1), "mse_b": mse, "bias": (nc * bias).sum(-1),
            "bias_var": (nc * var_e + est * var_e).sum(-1)}


def _excess_kurtosis(t: _Task, ehist: np.ndarray) -> np.ndarray:
    """``E[e^4] / E[e^2]^2 - 1`` per row from the |e| histogram (bin centres); 2 (normal) when empty."""
    e = t.e_edges
    step = e[1] / e[0]
    centre = np.concatenate([[e[0] / 2], np.sqrt(e[:-1] * e[1:]), [e[-1] * np.sqrt(step)]])
    h = ehist.sum(-2)
    n = h.sum(-1)
    m2, m4 = div((h * centre**2).sum(-1), n), div((h * centre**4).sum(-1), n)
    k = div(m4, m2 * m2) - 1.0
    return np.where(np.isfinite(k) & (k > 0), k, 2.0)


def regression_checks(t: _Task, cur: Counters, base: Counters, ctx: CheckContext) -> list[Result]:
    th = t.th
    P = cur.rows
    out: list[Result] = []
    cnt, bcnt = cur["cnt"], base["cnt"]

    n, nb_tot = cnt[:, I["lv"]], bcnt[:, I["lv"]]
    nc, nb = cur["joint"].sum(2), base["joint"].sum(2)
    obs_abs, obs_sq = cur["perr"][..., 0].sum(1), cur["perr"][..., 1].sum(1)
    big = n >= th.critical_labels

    # ---- performance vs the trailing baseline, for this prediction mix
    ex = expected_errors(nc, base["perr"], nb, th.prior)
    tested_b = (n >= th.min_labels) & (nb_tot >= th.min_labels * th.base_factor) & (ex["abs"] > 0)
    out.append(_ratio_result(
        "mae_ratio", "MAE", div(obs_abs, n), div(ex["abs"], n), obs_abs, ex["abs"], ex["abs_var"], tested_b,
        th.mae_ratio, th.mae_ratio_critical, big, "production baseline, for this prediction mix"))
    # heavy tails make a sum of e^2 vary more than a normal one: the larger of the baseline's and
    # the cohort's own kurtosis (a few outliers now must not pass for a higher error level)
    kappa = np.maximum(_excess_kurtosis(t, base["ehist"]), _excess_kurtosis(t, cur["ehist"]))
    est = nc * nc / (nb + th.prior)
    sq_var = ((nc + est) * ex["mse_b"] ** 2).sum(1) * kappa
    rm, rm_e = np.sqrt(div(obs_sq, n)), np.sqrt(div(ex["sq"], n))
    out.append(_ratio_result(
        "rmse_ratio", "RMSE", rm, rm_e, obs_sq, ex["sq"], sq_var, tested_b & (ex["sq"] > 0),
        th.rmse_ratio**2, th.rmse_ratio_critical**2, big, "production baseline, for this prediction mix", sqrt=True))

    # ---- performance vs training (all traffic only: the reference has no per-slice errors)
    ref = ctx.reference if ctx.reference is not None else t.ref
    bins = (ref.get("errors") or {}).get("by_prediction_bin")
    if bins and len(bins.get("n", ())) == t.B:
        rn = np.asarray(bins["n"], dtype=np.float64)[None, :]
        rperr = np.stack([np.asarray(bins[k], dtype=np.float64) for k in ("abs", "sq", "signed", "pred")], -1)[None]
        ext = expected_errors(nc, np.broadcast_to(rperr, (P, *rperr.shape[1:])), np.broadcast_to(rn, nc.shape), th.prior)
        tested_t = (n >= th.min_labels) & (rn.sum() >= th.min_labels) & (ext["abs"] > 0) & (np.arange(P) == 0)
        r = _ratio_result("mae_ratio", "MAE", div(obs_abs, n), div(ext["abs"], n), obs_abs, ext["abs"], ext["abs_var"],
                          tested_t, th.mae_ratio, th.mae_ratio_critical, big, "training, for this prediction mix")
        mirror(ctx.comp, r.value, r.tested, r.warn, r.crit, r.pvalue)
        out.append(r)

    # ---- label drift: the target moved against the predictions (the bias changed)
    obs_y = (cur["perr"][..., 3] - cur["perr"][..., 2]).sum(1)
    exp_y = cur["perr"][..., 3].sum(1) - ex["bias"]
    my_b = div(bcnt[:, I["ys"]], nb_tot)
    sd_b = np.sqrt(np.maximum(div(bcnt[:, I["ys2"]], nb_tot) - my_b**2, 0.0))
    shift = div(div(obs_y - exp_y, n), sd_b)
    z = div(obs_y - exp_y, np.sqrt(ex["bias_var"]))
    pv = two_sided_z(z)
    warn = np.abs(np.nan_to_num(shift)) >= th.target_shift_sd
    crit = np.abs(np.nan_to_num(shift)) >= th.target_shift_sd_critical
    my_c = div(cnt[:, I["ys"]], n)
    raw = div(my_c - my_b, sd_b)
    if not ctx.inputs_stable:  # the prediction mix may be broken: the raw target must move the same way too
        agree = (np.sign(np.nan_to_num(raw)) == np.sign(np.nan_to_num(shift))) & (np.abs(np.nan_to_num(raw)) >= th.target_shift_sd)
        var_c = np.maximum(div(cnt[:, I["ys2"]], n) - my_c**2, 0.0)
        zr = div(my_c - my_b, np.sqrt(div(var_c, n) + div(sd_b**2, nb_tot)))
        warn, crit, pv = warn & agree, crit & agree, np.maximum(pv, two_sided_z(zr))
    tested = tested_b & (sd_b > 0)
    out.append(Result(
        "label_drift", None, "target_shift", shift, tested, warn, crit & big, pv, th.target_shift_sd,
        lambda i: {"reference": {"mean_target": rnd(div(exp_y[i], n[i])), "target_sd": rnd(sd_b[i]),
                                 "source": "production baseline: what its bias expects for these predictions"},
                   "current": {"mean_target": rnd(div(obs_y[i], n[i])), "mean_target_raw_shift_sd": rnd(raw[i]),
                               "labelled": int(n[i])}},
        lambda i: f"the target averages {div(obs_y[i], n[i]):.4g} where the model's recent bias expects "
                  f"{div(exp_y[i], n[i]):.4g} for these predictions ({shift[i]:+.2f} target SDs): the outcome moved "
                  "and the predictions did not follow",
        effect=np.abs(np.nan_to_num(shift))))

    # ---- distributions vs training over the trailing day (a full daily cycle)
    for kind, stat, key in (("label_drift", "target_psi", "target"), ("score_drift", "prediction_psi", "prediction")):
        part = ref.get(key) or {}
        if ctx.day is None or not part.get("hist") or len(part["hist"]) != (t.T if key == "target" else t.B):
            continue
        hist = ctx.day["joint"].sum(1) if key == "target" else ctx.day["phist"]
        out.append(_psi_result(kind, stat, key, hist, np.asarray(part["hist"], dtype=np.float64),
                               float(part.get("n") or 0), th, ctx.comp))
    return out


def _ratio_result(stat: str, word: str, cur_v: np.ndarray, exp_v: np.ndarray, obs: np.ndarray, exp: np.ndarray,
                  var: np.ndarray, tested: np.ndarray, warn_r: float, crit_r: float, big: np.ndarray, source: str,
                  sqrt: bool = False) -> Result:
    ratio = div(obs, exp)
    pv = one_sided_z(div(obs - exp, np.sqrt(var)))
    warn = np.nan_to_num(ratio) >= warn_r
    crit = (np.nan_to_num(ratio) >= crit_r) & big
    value = np.sqrt(ratio) if sqrt else ratio
    thr = float(np.sqrt(warn_r)) if sqrt else warn_r
    return Result(
        "performance", None, stat, value, tested, warn, crit, pv, thr,
        lambda i: {"reference": {word.lower(): rnd(exp_v[i]), "source": source},
                   "current": {word.lower(): rnd(cur_v[i])}},
        lambda i: f"{word} rose to {cur_v[i]:.4g} where {exp_v[i]:.4g} is expected for this prediction mix "
                  f"({value[i]:.2f}x, {source.split(',')[0]})",
        effect=log_effect(value))


def _psi_result(kind: str, stat: str, what: str, counts: np.ndarray, ref_p: np.ndarray, ref_n: float, th: Any,
                comp: np.ndarray) -> Result:
    n = counts.sum(1)
    psi = np.asarray(stats.psi(ref_p, counts), dtype=np.float64)
    _, _, pv = stats.gtest_gof(counts, ref_p, ref_n=max(ref_n, 1.0))
    pv = np.asarray(pv, dtype=np.float64)
    tested = (n >= th.min_predictions) & (ref_n >= th.min_predictions) & (np.arange(len(n)) == 0)
    warn, crit = np.nan_to_num(psi) >= th.psi, np.nan_to_num(psi) >= th.psi_critical
    mirror(comp, psi, tested, warn, crit, pv)
    shares = div(counts, n[:, None])
    return Result(
        kind, None, stat, psi, tested, warn, crit, pv, th.psi,
        lambda i: {"reference": {"bin_shares": [rnd(v) for v in ref_p / max(ref_p.sum(), 1e-12)], "source": "training"},
                   "current": {"bin_shares": [rnd(v) for v in shares[i]], "count": int(n[i]), "span": "trailing day"}},
        lambda i: f"over the last day the {what} distribution moved from training (PSI {psi[i]:.2f}; "
                  f"{pct(float(np.abs(shares[i] - ref_p / max(ref_p.sum(), 1e-12)).sum() / 2))} of the mass moved bins)",
        effect=np.nan_to_num(psi))

