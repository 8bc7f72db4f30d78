"""Classifier performance estimated before labels arrive (confidence-based, CBPE-style).

If the relationship between a score and the outcome is what it was in the reference (the
calibration map of :mod:`.calibration` holds), every prediction with calibrated probability
``c`` is a positive with probability ``c``, and the confusion matrix a window *will* show once
its labels are in has a known expectation: ``E[TP] = sum over acted predictions of c``,
``E[FP] = sum (1 - c)`` over the acted ones, and so on. Only the score histogram of the
predictions is needed - no labels.

Binary (from the ``(acted x 100 score bins)`` histogram of all predictions):

* accuracy, precision and recall at the threshold in force, ROC AUC (binned AUC of the
  expected positives / negatives per bin);
* standard errors against the realised value: the Bernoulli noise of the outcomes given the
  scores (``sum c (1 - c)``; recall by the delta method) plus the calibration map's own
  uncertainty (each bin's ``var(c)``, shared by all predictions in the bin:
  ``sum_b (count_b)^2 var(c_b)``). The AUC error is Hanley-McNeil's for the expected counts.
  Both tasks add the reference's hour-of-day systematic error when it has one (:mod:`.stated_error`).

Multiclass (from the expected confusion matrix, built at ingest from per-class calibration maps
applied to the class scores and normalised to sum to 1): accuracy (standard error: Bernoulli
noise of the predicted class plus the calibration term over (class x 10 confidence bins), all
predictions in a bin taken as sharing one calibration error - conservative) and macro-F1 (delta
method on the expected confusion, inflated by the same calibration share).

Limits: the estimate is only as good as its premise. Under concept drift (the score no longer
means the same risk) or a broken model (scores shifted by a bad artifact) the estimate is wrong
by construction; the gap to the realised metric, when labels mature, is exported as the
estimate's own error and is a signal in itself. Estimates compare a span of production with the
reference's realised metric on the same threshold; the monitor uses the trailing day (a full
daily cycle), because expected precision follows the time of day with the score mix.

>>> cal = {"format": "skewwatch.calibration/1", "bins": 100, "p": [i / 100 for i in range(100)], "n": [1000] * 100}
>>> h = np.zeros((1, 2, 100)); h[0, 1, 90] = 100; h[0, 0, 10] = 100   # acted at 0.9, not at 0.1
>>> e = binary_estimates(h, cal)
>>> round(float(e["precision"][0]), 3), round(float(e["recall"][0]), 3), round(float(e["accuracy"][0]), 3)
(0.9, 0.9, 0.9)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.cohort import auc_se, binned_auc
from detector.core.outcomes.estimate.calibration import calibration_arrays, score_bin
from detector.core.stats.effects import div, log_effect, mirror, one_sided_z, pct, rnd

__all__ = ["EstimateThresholds", "binary_estimates", "calibrated_classes", "multiclass_estimates", "estimate_checks",
           "N_CAL_BINS", "coarse_calibration_var"]

N_CAL_BINS = 10  # confidence bins of the multiclass calibration-error term


@dataclass(frozen=True)
class EstimateThresholds:
    """Effects of the ``estimated_*`` performance checks (same sizes as the realised checks)."""

    min_predictions: int = 200
    drop: float = 0.1  # precision / recall, absolute
    drop_critical: float = 0.2
    accuracy_drop: float = 0.05
    accuracy_drop_critical: float = 0.1
    auc_drop: float = 0.05
    auc_drop_critical: float = 0.1
    error_ratio: float = 1.25  # regression MAE / RMSE
    error_ratio_critical: float = 1.5


def binary_estimates(phist: np.ndarray, cal: Mapping[str, Any], tau: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """Expected metrics and their standard errors per row of ``phist`` (P, 2 [not acted, acted], bins).

    ``tau``: per metric, the systematic error measured on the reference (:mod:`.stated_error`), added
    to the variance.
    """
    c, v = calibration_arrays(cal)
    h0, h1 = phist[..., 0, :], phist[..., 1, :]
    h = h0 + h1
    n, acted = h.sum(-1), h1.sum(-1)
    tp, fn = (h1 * c).sum(-1), (h0 * c).sum(-1)
    tn = (h0 * (1 - c)).sum(-1)
    bern = c * (1 - c)
    vt, vf = (h1 * bern).sum(-1), (h0 * bern).sum(-1)
    out: dict[str, np.ndarray] = {"n": n}
    out["accuracy"] = div(tp + tn, n)
    out["accuracy_se"] = np.sqrt(vt + vf + ((h1 - h0) ** 2 * v).sum(-1)) / np.where(n > 0, n, np.nan)
    out["precision"] = div(tp, acted)
    out["precision_se"] = np.sqrt(vt + (h1 * h1 * v).sum(-1)) / np.where(acted > 0, acted, np.nan)
    pos = tp + fn
    out["recall"] = div(tp, pos)
    d4 = np.where(pos > 0, pos, np.nan) ** 4
    grad_cal = ((h1 * fn[..., None] - h0 * tp[..., None]) ** 2 * v).sum(-1)
    out["recall_se"] = np.sqrt((fn * fn * vt + tp * tp * vf + grad_cal) / d4)
    P, N = h * c, h * (1 - c)
    auc, _ = binned_auc(N, P)
    out["auc"] = auc
    out["auc_se"] = auc_se(auc, P.sum(-1), N.sum(-1))
    out["positives"] = pos
    return _with_tau(out, tau)


def _with_tau(out: dict[str, np.ndarray], tau: Mapping[str, float] | None) -> dict[str, np.ndarray]:
    for k, t in (tau or {}).items():
        if f"{k}_se" in out and t:
            out[f"{k}_se"] = np.sqrt(out[f"{k}_se"] ** 2 + float(t) ** 2)
    return out


def calibrated_classes(cals: Sequence[Mapping[str, Any]], S: np.ndarray) -> np.ndarray:
    """Per-class calibration maps applied to class scores ``S`` (m, C), normalised to sum to 1."""
    q = np.empty_like(S)
    for j, cal in enumerate(cals):
        p, _ = calibration_arrays(cal)
        q[:, j] = p[score_bin(S[:, j], int(cal["bins"]))]
    tot = q.sum(1, keepdims=True)
    return np.where(tot > 0, q / np.where(tot > 0, tot, 1.0), 1.0 / S.shape[1])


def coarse_calibration_var(cals: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """(C, N_CAL_BINS) calibration variance per class and coarse confidence bin (mean over its fine bins)."""
    out = []
    for cal in cals:
        _, v = calibration_arrays(cal)
        out.append(v.reshape(N_CAL_BINS, -1).mean(1) if v.size % N_CAL_BINS == 0 else np.full(N_CAL_BINS, v.mean()))
    return np.asarray(out)


def multiclass_estimates(cbpe: np.ndarray, cbpe_v: np.ndarray, cal_cnt: np.ndarray | None = None,
                         cal_var: np.ndarray | None = None, tau: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """Expected accuracy and macro-F1 (with standard errors) from the expected confusion (P, C, C)."""
    from detector.core.outcomes.tasks.multiclass_checks import confusion_metrics, macro_f1_se

    n = cbpe_v[..., 0]
    m = confusion_metrics(cbpe)
    samp = cbpe_v[..., 1]
    cal = (cal_cnt**2 * cal_var).sum((-2, -1)) if cal_cnt is not None and cal_var is not None else np.zeros_like(n)
    inflate = np.sqrt(1.0 + np.nan_to_num(div(cal, samp)))
    return _with_tau({"n": n, "accuracy": m["accuracy"], "accuracy_se": np.sqrt(samp + cal) / np.where(n > 0, n, np.nan),
                      "macro_f1": m["macro_f1"], "macro_f1_se": macro_f1_se(cbpe) * inflate}, tau)


def _ref_se(metric: str, ref: Mapping[str, Any]) -> float:
    """Standard error of the reference's realised metric (binomial / Hanley-McNeil / mean)."""
    v, n = ref.get(metric), float(ref.get({"precision": "acted", "recall": "positives"}.get(metric, "n")) or 0)
    if v is None or n <= 0:
        return float("nan")
    if metric == "auc":
        pos = float(ref.get("positives") or 0)
        return float(auc_se(np.array([v]), np.array([pos]), np.array([float(ref["n"]) - pos]))[0])
    if metric in ("mae", "rmse"):
        return float(ref.get(f"{metric}_se") or 0.0)
    return float(np.sqrt(v * (1 - v) / n))


def estimate_checks(est: Mapping[str, np.ndarray], ref: Mapping[str, Any], th: EstimateThresholds, comp: np.ndarray,
                    span: str = "trailing day") -> list[Result]:
    """``performance`` results with statistics ``estimated_<metric>_drop`` (or ``_ratio`` for errors).

    ``est``: per pseudo-row estimates (``<metric>`` and ``<metric>_se``) over ``span``; ``ref``: the
    reference's realised metrics. The reference is one all-traffic number: only the all-traffic
    row is tested; complements mirror it.
    """
    out: list[Result] = []
    P = len(comp)
    n = est["n"]
    only0 = np.arange(P) == 0
    for metric in ("accuracy", "precision", "recall", "auc", "macro_f1", "mae", "rmse"):
        if metric not in est or ref.get(metric) is None:
            continue
        e, se = est[metric], est[f"{metric}_se"]
        r0, rse = float(ref[metric]), _ref_se(metric, ref)
        sd = np.sqrt(se**2 + np.nan_to_num(rse) ** 2)
        tested = (n >= th.min_predictions) & only0 & np.isfinite(e)
        if metric in ("mae", "rmse"):
            value = div(e, r0)
            pv = one_sided_z(div(e - r0, sd))
            warn, crit = np.nan_to_num(value) >= th.error_ratio, np.nan_to_num(value) >= th.error_ratio_critical
            stat, effect, thr = f"estimated_{metric}_ratio", log_effect(value), th.error_ratio
        else:
            value = r0 - e
            pv = one_sided_z(div(value, sd))
            w, c = {"accuracy": (th.accuracy_drop, th.accuracy_drop_critical), "auc": (th.auc_drop, th.auc_drop_critical),
                    "macro_f1": (th.accuracy_drop, th.accuracy_drop_critical)}.get(metric, (th.drop, th.drop_critical))
            warn, crit = np.nan_to_num(value) >= w, np.nan_to_num(value) >= c
            stat, effect, thr = f"estimated_{metric}_drop", np.abs(np.nan_to_num(value)), w
        mirror(comp, value, tested, warn, crit, pv)
        word = metric.replace("_", "-").upper() if metric in ("mae", "rmse", "auc") else metric.replace("_", "-")
        rate = metric not in ("mae", "rmse")
        out.append(Result(
            "performance", None, stat, value, tested, warn, crit, pv, thr,
            lambda i, e=e, se=se, r0=r0, rate=rate: {
                "reference": {"value": rnd(r0), "source": "training (realised)"},
                "current": {"estimate": rnd(e[i]), "standard_error": rnd(se[i]), "predictions": int(n[i]), "span": span,
                            "method": "confidence-based (calibrated scores)" if rate else "expected-error model"}},
            lambda i, e=e, se=se, r0=r0, word=word, rate=rate: (
                f"estimated {word} {_fmt(e[i], rate)} +- {_fmt(se[i], rate)} over the {span} vs {_fmt(r0, rate)} in "
                "training, before any label: expected to show in the labels when they arrive"),
            effect=effect))
    return out


def _fmt(x: float, rate: bool) -> str:
    return pct(x) if rate else ("n/a" if x != x else f"{x:.4g}")
