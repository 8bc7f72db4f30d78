"""Multivariate drift per window: mergeable sums of the PCA reconstruction error, and the check on them.

State per slice row (a :class:`~detector.core.outcomes.tasks.base.Counters`, ``task = "multivariate"``):
``err`` ``(R, 3)`` - rows, sum and sum of squares of the reconstruction error - and ``res``
``(R, F)`` - the sum of each feature's squared residual (what the components fail to explain,
per feature). ``(3 + F) x 8`` bytes per row; no raw rows; workers merge by addition.

The check (kind ``multivariate_drift``, feature null, statistic ``reconstruction_error_ratio``):

* against **training**: the window's mean error over the reference's (held-out) mean; its
  variance adds the window's own spread, the reference's, the reference's between-hour
  systematic spread (:mod:`detector.core.outcomes.estimate.stated_error`) and clean production's
  window-to-window spread beyond sampling. All traffic only (the reference has no per-slice
  errors): complements mirror it. Only with a reference fitted by hour of day (timestamps):
  an all-day reference would call every rush hour a broken joint structure;
* against the **production baseline** (recent clean windows - or, without timestamps in the
  reference, the same hour on previous days - per slice row and complement): the
  window's mean over theirs, the variance adding their between-window spread beyond sampling,
  so whatever moves the error from window to window in clean traffic is not a finding - and a
  slice whose joint structure broke is localised like any other finding.

Effect: ratio >= 1.1 (warning) / 1.25 (critical, with ``critical_rows``); one-sided z-test.
Evidence lists the features whose residuals grew most (current vs reference mean squared
residual): the pair or group whose relationship changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.core.checks.multivariate.pca import PCAModel
from detector.core.checks.window import Result
from detector.core.outcomes.tasks.base import Counters, fold
from detector.core.stats.effects import div, log_effect, mirror, one_sided_z, rnd

__all__ = ["MultivariateThresholds", "multivariate_counters", "add_rows", "multivariate_checks", "TOP_FEATURES"]

TOP_FEATURES = 3


@dataclass(frozen=True)
class MultivariateThresholds:
    min_rows: int = 100
    min_history: int = 6  # clean windows before the production-baseline comparison
    min_days: int = 2  # same-hour windows of previous days, when the reference has no timestamps
    ratio: float = 1.1
    ratio_critical: float = 1.25
    critical_rows: int = 500


def multivariate_counters(model: PCAModel, rows: int) -> Counters:
    return Counters("multivariate", {"err": np.zeros((rows, 3)), "res": np.zeros((rows, model.F))})


def add_rows(c: Counters, ridx: np.ndarray, model: PCAModel, columns: Mapping[str, np.ndarray],
             hours: np.ndarray | None = None) -> None:
    """Fold a batch of rows (numeric feature columns by name; UTC hour of day when the model is hourly)."""
    e, r2 = model.errors(columns, hours)
    R = c.rows
    c["err"] += fold(ridx, R, 3, None, np.stack([np.ones(e.size), e, e * e], axis=1))
    c["res"] += fold(ridx, R, model.F, None, r2)


def _moments(err: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = err[..., 0]
    m = div(err[..., 1], n)
    v = np.maximum(div(err[..., 2], n) - m * m, 0.0)
    return n, m, v


def multivariate_checks(model: PCAModel, cur: Counters, history: np.ndarray | None, comp: np.ndarray,
                        th: MultivariateThresholds | None = None) -> list[Result]:
    """Results vs training and vs the production baseline.

    ``history``: ``(W, P, 3)`` - the ``err`` sums of earlier clean windows, as pseudo-rows like
    ``cur``. With an hourly model (reference with timestamps): the last clean windows (at least
    ``min_history``). Without: the clean windows at *this hour of day* on previous days (at
    least ``min_days``) - the time of day moves the error, and only the same hour can say what
    is normal for it; until then neither comparison runs.
    """
    th = th or MultivariateThresholds()
    P = cur.rows
    n, m, v = _moments(cur["err"])
    big = n >= th.critical_rows
    ref = model.spec["error"]
    rres = np.asarray(model.spec["residual_sq_mean"], dtype=np.float64)
    cres = div(cur["res"], n[:, None])
    out: list[Result] = []

    def evidence(i: int, ref_mean: float, source: str) -> dict[str, Any]:
        grow = div(cres[i], rres)
        top = np.argsort(-np.nan_to_num(grow))[:TOP_FEATURES]
        return {"reference": {"mean_error": rnd(ref_mean), "source": source},
                "current": {"mean_error": rnd(m[i]), "rows": int(n[i])},
                "features": [{"feature": model.features[j], "residual_ratio": rnd(grow[j], 3),
                              "residual": rnd(cres[i, j]), "reference_residual": rnd(rres[j])} for j in top.tolist()]}

    def summary(i: int, ratio: np.ndarray, source: str) -> str:
        grow = div(cres[i], rres)
        top = [model.features[j] for j in np.argsort(-np.nan_to_num(grow))[:2].tolist()]
        return (f"the numeric features no longer move together as in {source}: reconstruction error {ratio[i]:.2f}x "
                f"(most in {' and '.join(top)}) while each feature's own distribution may look unchanged")

    # window-to-window spread of clean production beyond sampling (the day's rhythm, what the reference missed)
    extra = bm = W = None
    need = th.min_history if model.hourly is not None else th.min_days
    if history is not None and len(history) >= need:
        hn, hm, hv = _moments(history)  # (W, P)
        bm = div((hn * np.nan_to_num(hm)).sum(0), hn.sum(0))
        ok = hn > 0
        W = ok.sum(0)
        between = div((np.where(ok, (hm - bm) ** 2, 0.0)).sum(0), np.maximum(W - 1, 1))
        sampling = div(np.where(ok, div(hv, hn), 0.0).sum(0), np.maximum(W, 1))
        extra = np.maximum(np.nan_to_num(between - sampling), 0.0)

    # ---- vs training (all traffic); only a reference standardised by hour can say what is normal at this hour
    tau = float(ref.get("tau") or 0.0)
    ratio_t = div(m, ref["mean"])
    var_t = div(v, n) + ref["sd"] ** 2 / max(ref["n"], 1) + tau**2 + (extra if extra is not None else 0.0)
    tested = (n >= th.min_rows) & (np.arange(P) == 0) & (model.hourly is not None)
    warn, crit = np.nan_to_num(ratio_t) >= th.ratio, (np.nan_to_num(ratio_t) >= th.ratio_critical) & big
    pv = one_sided_z(div(m - ref["mean"], np.sqrt(var_t)))
    mirror(comp, ratio_t, tested, warn, crit, pv)
    out.append(Result("multivariate_drift", None, "reconstruction_error_ratio", ratio_t, tested, warn, crit, pv, th.ratio,
                      lambda i: evidence(i, ref["mean"], "training"), lambda i: summary(i, ratio_t, "training"),
                      effect=log_effect(ratio_t)))

    # ---- vs the production baseline (every pseudo-row)
    if extra is not None and bm is not None and W is not None:
        ratio_b = div(m, bm)
        var_b = div(v, n) + extra + div(extra, np.maximum(W, 1))
        tested_b = (n >= th.min_rows) & (W >= need) & (np.nan_to_num(bm) > 0)
        out.append(Result(
            "multivariate_drift", None, "reconstruction_error_ratio", ratio_b, tested_b, np.nan_to_num(ratio_b) >= th.ratio,
            (np.nan_to_num(ratio_b) >= th.ratio_critical) & big, one_sided_z(div(m - bm, np.sqrt(var_b))), th.ratio,
            lambda i: evidence(i, bm[i], "production baseline"), lambda i: summary(i, ratio_b, "recent clean windows"),
            effect=log_effect(ratio_b)))
    return out
