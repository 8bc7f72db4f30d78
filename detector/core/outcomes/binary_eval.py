"""The binary classifier's outcome results of one evaluation: training rates for this label age, then the checks.

:func:`binary_results` is the binary part of :meth:`detector.core.outcomes.monitor.OutcomeMonitor._evaluate`:
training's base rate (scaled by the production censoring at this label age), per-slice training rates
and observed/expected, the trailing day of matured cohorts, the label-stability test the concept-drift
check needs, and :func:`~detector.core.outcomes.checks.outcome_checks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.checks import outcome_checks
from detector.core.outcomes.cohort import C
from detector.core.outcomes.expected import base_rate_shift, power_span

__all__ = ["binary_results"]

_DAY = 86400.0


def binary_results(mon: Any, m: Any, c: Any, cur: Any, bas: Any, rows: np.ndarray, comp: np.ndarray,
                   ext: Callable[[np.ndarray], np.ndarray], mat: float, base_h: float, inputs_stable: bool,
                   firing: set[str]) -> tuple[list[Result], np.ndarray, np.ndarray, np.ndarray]:
    """(results, stable rows, expected positives, rows whose labels moved) for a binary model's cohort ``c``."""
    th = mon.settings.thresholds
    lay, ref = m.layout, m.ref
    ref_rate, ref_n, ref_oe, s_rate, s_n = (np.full(rows.size, np.nan) for _ in range(5))
    # training knows complete labels; at this label age the slower label value is under-represented
    k, k_rv = mon.censoring(m, mat)
    # ... and the pairs labelled by this age are a riskier mix than the cohort when positives come sooner:
    # the expected side of observed/expected (their mean score) is scaled by the same selection
    k_s = mon.score_censoring(m, mat)
    g_rate = ref.label_base_rate * k if ref.label_base_rate is not None and k == k else None
    if g_rate is not None:
        ref_rate[0], ref_n[0] = g_rate, ref.label_count
        if ref.score is not None and ref.score.mean:
            ref_oe[0] = g_rate / (ref.score.mean * k_s)
    for i, (r, cp) in enumerate(zip(rows.tolist(), comp.tolist(), strict=True)):
        if r == 0 or cp:
            continue
        ((dim, val),) = lay.row_label(r).items()
        sp = ref.slices.get(dim, {}).get(val)
        if sp is not None and sp.label_base_rate is not None and g_rate is not None:
            s_rate[i], s_n[i] = sp.label_base_rate * k, sp.count
            if sp.score is not None and sp.score.mean:
                ref_oe[i] = sp.label_base_rate * k / (sp.score.mean * k_s)
    recent = [d for d in m.done.values() if d.start > c.start - _DAY and not d.label_suspect]
    day = None
    if (len(recent) + 1) * mon.L >= _DAY:  # a full daily cycle of matured cohorts
        day_cnt = c.cnt + sum((d.cnt for d in recent), np.zeros_like(c.cnt))
        day = ext(day_cnt)
        g_ratio = (day_cnt[0, C["pos"]] / day_cnt[0, C["lab"]]) / g_rate if g_rate and day_cnt[0, C["lab"]] > 0 else math.nan
    else:
        g_ratio = math.nan
    # label stability per pseudo-row (the concept-drift check needs it): the base-rate test, at p < 0.01
    expected, _, lt, lw, _, lp = base_rate_shift(cur, bas, th, inputs_stable)
    lab_unstable = lt & lw & (lp < 0.01)
    stable = ~lab_unstable & inputs_stable & ("label_drift" not in firing)
    ref_auc = ref.outcome.get("auc")
    ref_slope = (ref.outcome["slope"], ref.outcome.get("slope_se", 0.0)) if "slope" in ref.outcome else None
    seq = _sequence(m, c, mat) if ref_slope is not None else None
    span = _span(mon, m, c, cur, mat, ref_slope, th, seq)
    rp = (ref.label_count or 0) * (ref.label_base_rate or 0.0)
    results = outcome_checks(
        cur, bas, th, ref_rate=ref_rate, ref_n=ref_n, ref_oe=ref_oe, slice_ref_rate=s_rate, slice_ref_n=s_n,
        global_ratio=g_ratio, ref_auc=ref_auc if isinstance(ref_auc, float) else None,
        ref_auc_n=(ref.outcome.get("positives", rp), ref.outcome.get("negatives", (ref.label_count or 0) - rp)),
        horizon=mat, base_horizon=base_h, ref_slope=ref_slope, ref_rv=k_rv if k_rv == k_rv else 0.0, span=span, seq=seq,
        river_latched=m.latched, stable=stable, comp=comp, day=day, inputs_stable=inputs_stable)
    return results, stable, expected, lab_unstable


def _sequence(m: Any, c: Any, mat: float) -> np.ndarray:
    """All traffic's score histograms by outcome of ``c`` and the cohorts evaluated before it at the same
    label age without a label-delay suspicion, newest first ((K, 2, bins)); each earlier cohort with the
    labels in by the largest of 2, 4, 8 label ages that has passed when ``c`` matures
    (:meth:`~detector.core.outcomes.cohort.Cohort.labels_by`). Training knows complete labels, so the
    comparisons with training need not stop at the label age: a quiet model whose slower positives are mostly
    still in flight at the label age then has several times the positives a day. The calibration slope and
    the AUC do not move when one label value comes later than the other (only the intercept does), so mixing
    cohorts of different label ages costs nothing there; the base-rate comparisons keep the label age."""
    now = c.end + mat  # when ``c`` matures: the labels counted are those in by then, however they were batched
    hists = [c.hist[0]]
    for d in reversed(m.done.values()):
        if not math.isclose(d.horizon, mat) or d.label_suspect:
            break
        hists.append(d.labels_by((now - d.end) / mat))
    return np.stack(hists)


def _span(mon: Any, m: Any, c: Any, cur: Any, mat: float, ref_slope: tuple[float, float] | None, th: Any,
          seq: np.ndarray | None = None) -> np.ndarray | None:
    """The sum of the trailing cohorts of :func:`_sequence` that a fixed-span comparison with training (the
    AUC's) needs (:func:`~detector.core.outcomes.checks.power_span`); at least the pool's own pairs. None
    without a training slope (nothing to compare with). The slope itself is tested sequentially over the
    whole sequence (:mod:`detector.core.outcomes.slope_sequential`)."""
    if ref_slope is None:
        return None
    hists = _sequence(m, c, mat) if seq is None else seq
    k = power_span(hists, ref_slope[0], th)
    span = np.sum(hists[:k], axis=0)
    return span if span[1].sum() >= cur.hist[0, 1].sum() else cur.hist[0]
