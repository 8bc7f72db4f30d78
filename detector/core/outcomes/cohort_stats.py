"""What an evaluated binary cohort reports (per slice: rates, AUC, calibration, cost) and the river feed.

:func:`binary_stats` is the ``stats`` of :meth:`detector.core.outcomes.monitor.OutcomeMonitor.stats` for a
binary classifier; :func:`feed_river` feeds the cohort's per-pair squared errors, reconstructed from
its score bins, to the model's ADWIN (``error_rate_change``). Other tasks report their task's
metrics (:mod:`detector.core.outcomes.tasked`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.core.outcomes.cohort import C, Cohort, average_precision, best_threshold, binned_auc, brier, ece
from detector.core.outcomes.labels import hist_quantile
from detector.core.stats.effects import div as _div

__all__ = ["binary_stats", "feed_river", "slice_key", "plain_float"]


def plain_float(x: Any) -> float | None:
    """A finite float rounded for reports, None for NaN / inf."""
    x = float(x)
    return None if x != x or math.isinf(x) else round(x, 6)


_f = plain_float


def slice_key(sl: dict[str, str]) -> str:
    """``""`` for all traffic, else ``"dim=value"`` (joined by commas, sorted)."""
    return ",".join(f"{k}={v}" for k, v in sorted(sl.items()))


def feed_river(m: Any, c: Cohort, base: Cohort | None, river_pairs: int, river_brier_ratio: float) -> None:
    """Feed the cohort's per-pair squared errors (reconstructed from the bins, evenly interleaved) to ADWIN."""
    h = c.hist[0]
    cnt = np.maximum(h, 0).ravel()
    tot = cnt.sum()
    if tot <= 0:
        return
    if tot > river_pairs:
        cnt = np.round(cnt * river_pairs / tot)
    centre = (np.arange(h.shape[1]) + 0.5) / h.shape[1]
    err = np.concatenate([centre**2, (1 - centre) ** 2])
    g = np.repeat(np.arange(cnt.size), cnt.astype(np.int64))
    if g.size == 0:
        return
    within = np.arange(g.size) - np.repeat(np.cumsum(cnt) - cnt, cnt.astype(np.int64))
    key = (within + 0.5) / np.repeat(cnt, cnt.astype(np.int64))
    seq = err[g[np.argsort(key, kind="stable")]]
    detected = False
    for v in seq.tolist():
        m.adwin.update(v)
        detected |= m.adwin.drift_detected
    b = brier(c.cnt[0])
    bb = brier(base.cnt[0]) if base is not None else math.nan
    if detected and b > bb:
        m.latched = True
    elif m.latched and not b >= bb * (1 + (river_brier_ratio - 1) / 2):
        m.latched = False


def binary_stats(m: Any, c: Cohort, real: np.ndarray, mat: float, window: dict[str, Any]) -> dict[str, Any]:
    cnt = c.cnt[real]
    neg, pos = c.hist[real, 0, :], c.hist[real, 1, :]
    auc, auc_err = binned_auc(neg, pos)
    ap = average_precision(neg, pos)
    e, br = ece(c.rel[real]), brier(cnt)
    tp, fp, fn, tn = (cnt[:, C[k]] for k in ("tp", "fp", "fn", "tn"))
    cfp, cfn, cap = m.costs
    cost = best = np.full(real.size, np.nan)
    if cfp is not None and cfn is not None:
        cost = _div(cfp * fp + cfn * fn, tp + fp + fn + tn)
        share = np.full(real.size, 1.0)
        if cap is not None and cnt[0, C["pred"]] > 0:
            share[0] = cap / cnt[0, C["pred"]]
        best, _ = best_threshold(c.hist[real], cfp, cfn, share)
    slices: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(real.tolist()):
        dh = m.delay_all[r]
        slices[slice_key(m.layout.row_label(r))] = {
            "predictions": int(cnt[i, C["pred"]]), "labels": int(cnt[i, C["lab"]]),
            "match_rate": _f(_div(cnt[i, C["lab"]], cnt[i, C["pred"]])),
            "delay_p50_s": _f(hist_quantile(dh, 0.5)), "delay_p90_s": _f(hist_quantile(dh, 0.9)),
            "base_rate": _f(_div(cnt[i, C["pos"]], cnt[i, C["lab"]])),
            "ece": _f(e[i]), "brier": _f(br[i]), "auc": _f(auc[i]), "auc_bin_error": _f(auc_err[i]), "pr_auc": _f(ap[i]),
            "precision": _f(_div(tp[i], tp[i] + fp[i])), "recall": _f(_div(tp[i], tp[i] + fn[i])),
            "threshold": _f(_div(cnt[i, C["thr_s"]], cnt[i, C["thr_n"]])),
            "expected_cost": _f(cost[i]), "best_threshold": _f(best[i]),
        }
    return {"window": {k: v for k, v in window.items() if not k.startswith("_")}, "maturity_s": mat, "slices": slices,
            "late_labels": c.late}
