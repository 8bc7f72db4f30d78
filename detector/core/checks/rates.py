"""Checks of the serving path over a window: decision rate, fallbacks, the threshold in force and
latency (vs production's history), and the payload's schema (absent features, type mismatches,
unexpected fields; all traffic only).

The serving rates of a row are a mixture over the slices of the *other* dimensions (a region's p95
latency is that of its channels in this hour's proportions), and there are no cross-counts to
re-weight them with. Most mix changes are ones the baseline has seen (a usual Saturday, this hour
yesterday). One it has barely seen - a value of another dimension whose share of this window is at
least :data:`OVER` times its share of the baseline (the same-hour history, or all hours while that is
short), such as the first Monday's branch traffic after a log that began on a Sunday - makes the row's
history a different population: its decision-rate, fallback and latency tests wait until the baseline
has seen that traffic (:func:`comparable`). The rows of that value's own dimension are judged as usual
(their own history, or none yet). A value that is *rarer* than usual (a Sunday without branches)
leaves the rest closer to what it was and changes nothing here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.core.checks.common import _r, _thr
from detector.core.checks.result import Result
from detector.core.checks.view import View
from detector.core.inputs.layout import Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.inputs.window import RATE
from detector.core.settings import DetectorSettings
from detector.core.stats import distributions as stats
from detector.core.stats.effects import hist_quantile

__all__ = ["rate_checks", "schema_checks"]


OVER = 4.0  # a value of another dimension this many times its baseline share: a population the history has not seen
MIN_SHARE = 0.1  # ... and at least this share of the window


def comparable(lay: Layout, v: View, base_events: np.ndarray, st: DetectorSettings) -> np.ndarray:
    """Per pseudo-row: its serving history is the same population (see the module docstring).

    ``base_events``: the baseline's events per slice row (real rows, not pseudo-rows). A dimension is
    *new* in this window when one of its values has at least ``min_count_rate`` events and
    :data:`MIN_SHARE` of the window here, and less than 1/:data:`OVER` of that share in the baseline; a
    row is comparable unless a dimension other than its own is new (all traffic: unless any is)."""
    ev = v.w.rates[:, RATE["events"]]
    if ev[0] <= 0:
        return np.ones(v.P, bool)
    share = ev / ev[0]
    b_share = base_events / base_events[0] if base_events[0] > 0 else np.zeros_like(base_events)
    span = lay.top_k + 1
    hit = (ev >= st.min_count_rate) & (share >= MIN_SHARE) & (b_share * OVER < share)
    new = [bool(hit[lo : lo + span].any()) for lo in (lay.row_offset(d) for d in range(len(lay.dims)))]
    if not any(new):
        return np.ones(v.P, bool)
    own = np.where(v.rows == 0, -1, (v.rows - 1) // span)
    return np.array([not any(n for d, n in enumerate(new) if d != o) for o in own.tolist()])


def rate_checks(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings) -> list[Result]:
    th = st.thresholds
    R = v.arrays["rates"]
    P = v.P
    out: list[Result] = []
    agg = v.extra.get("all_hours")
    if v.base is not None:
        same = comparable(lay, v, sb.rates[sb.slot(v.w.start)][:, RATE["events"]], st)
    elif agg is not None:
        same = comparable(lay, v, sb.rates.sum(axis=0)[:, RATE["events"]], st)
    else:
        same = np.ones(P, bool)
    decided, acted = R[:, RATE["decided"]], R[:, RATE["acted"]]
    fk, fb = R[:, RATE["fallback_known"]], R[:, RATE["fallback"]]
    rate_d = np.divide(acted, decided, out=np.zeros(P), where=decided > 0)
    rate_f = np.divide(fb, fk, out=np.zeros(P), where=fk > 0)
    if v.base is not None:
        B = v.base["rates"]
        bd, ba = B[:, RATE["decided"]], B[:, RATE["acted"]]
        b_rate = np.divide(ba, bd, out=np.zeros(P), where=bd > 0)
        dd = rate_d - b_rate
        pv = stats.proportion_test(acted, decided, b_rate, alternative="two-sided", n0=np.maximum(bd, 1))
        out.append(Result(
            "decision_rate", None, "decision_rate_delta", dd, (decided >= st.min_count_rate) & (bd >= st.min_count_rate) & same,
            np.abs(dd) >= th.decision_rate_delta, np.abs(dd) >= 2 * th.decision_rate_delta, pv, th.decision_rate_delta,
            lambda i: {"reference": {"decision_rate": _r(b_rate[i]), "source": "production, same time of day"},
                       "current": {"decision_rate": _r(rate_d[i]), "decided": int(decided[i])}, "thresholds": _thr(v.w)},
            lambda i: f"the model acts on {rate_d[i]:.1%} of events (usually {b_rate[i]:.1%} at this time): check the threshold / decision policy",
            effect=np.abs(dd),
        ))
    if v.base is not None or agg is not None:
        B = v.base["rates"] if v.base is not None else agg["rates"]
        bfk, bfb = B[:, RATE["fallback_known"]], B[:, RATE["fallback"]]
        p0 = np.divide(bfb, bfk, out=np.full(P, 0.01), where=bfk >= st.min_count_rate)
        src = "production, same time of day" if v.base is not None else "production, all hours (no same-hour history yet)"
    else:
        p0 = np.full(P, 0.01)
        bfk = np.full(P, 1e4)
        src = "assumed nominal 1% (no history yet)"
    fd = rate_f - p0
    pv_f = stats.proportion_test(fb, fk, p0, alternative="greater", n0=np.maximum(bfk, 1))
    out.append(Result(
        "fallback_rate", None, "fallback_rate", rate_f, (fk >= st.min_count_rate) & same, fd >= th.fallback_rate_delta,
        fd >= 4 * th.fallback_rate_delta, pv_f, th.fallback_rate_delta,
        lambda i: {"reference": {"fallback_rate": _r(p0[i]), "source": src}, "current": {"fallback_rate": _r(rate_f[i]), "count": int(fk[i])}},
        lambda i: f"{rate_f[i]:.1%} of predictions are fallbacks (usually {p0[i]:.1%}): the model is timing out or failing and defaults are served",
        effect=fd,
    ))
    # threshold in force vs the established one (global only, deterministic)
    est = sb.established_threshold()
    cur = max(v.w.thresholds.items(), key=lambda kv: kv[1])[0] if v.w.thresholds else None
    changed = est is not None and cur is not None and not math.isclose(cur, est, rel_tol=1e-9, abs_tol=1e-12)
    tv = np.zeros(P)
    tv[0] = cur if cur is not None else np.nan
    mask0 = np.zeros(P, bool)
    mask0[0] = True
    out.append(Result(
        "decision_rate", None, "threshold", tv, mask0 & (cur is not None), mask0 & changed, np.zeros(P, bool),
        np.full(P, np.nan), est if est is not None else np.nan,
        lambda i: {"reference": {"threshold": est}, "current": {"threshold": cur, "thresholds_seen": _thr(v.w)},
                   "decision_rate": _r(rate_d[0])},
        lambda i: f"decision threshold changed from {est} to {cur} (decision rate now {rate_d[0]:.1%}): a policy change, not a model change",
    ))
    # latency p95 vs seasonal (or all hours until the slot has history)
    if v.base is not None or agg is not None:
        L = v.arrays["lat"].astype(np.float64)
        BL = v.base["lat"] if v.base is not None else agg["lat"]
        n_l, bn_l = L.sum(axis=1), BL.sum(axis=1)
        edges = lay.lat_edges
        # interpolated inside the bin, as Prometheus' histogram_quantile reads the exported histogram
        p95 = hist_quantile(L, edges, 0.95)
        bp95 = hist_quantile(BL, edges, 0.95)
        ratio = np.divide(p95, bp95, out=np.ones(P), where=bp95 > 0)
        # share of current events above the bin that holds the baseline's p95
        bidx = np.searchsorted(edges, bp95, side="left")
        above = np.array([L[i, min(int(bidx[i]) + 1, L.shape[1]) :].sum() for i in range(P)])
        pv_l = stats.proportion_test(above, n_l, np.full(P, 0.05), alternative="greater")
        out.append(Result(
            "latency", None, "p95_ratio", ratio, (n_l >= st.min_count_rate) & (bn_l >= st.min_count_rate) & same,
            ratio >= th.latency_ratio, ratio >= 2 * th.latency_ratio, pv_l, th.latency_ratio,
            lambda i: {"reference": {"p95_ms": _r(bp95[i])}, "current": {"p95_ms": _r(p95[i])}},
            lambda i: f"p95 latency {p95[i]:.0f} ms is {ratio[i]:.1f}x its usual {bp95[i]:.0f} ms: expect timeouts and fallbacks",
        ))
    return out


# --------------------------------------------------------------------------- schema (all traffic only)


def schema_checks(lay: Layout, v: View, st: DetectorSettings) -> list[Result]:
    th = st.thresholds
    n = float(v.w.events)
    P = v.P
    out: list[Result] = []
    names = lay.numeric + lay.categorical
    if n < st.min_count_rate:
        return out
    only0 = np.zeros(P, bool)
    only0[0] = True
    for k, name in enumerate(names):
        a = v.w.absent[k] / n
        t = v.w.type_err[k] / n
        if a >= th.absent_share:
            audit = lay.ref.audit.get("features", {}).get(name, {}) if isinstance(lay.ref.audit, dict) else {}
            out.append(_fact("schema", name, "absent_share", a, th.absent_share, P, True,
                             {"reference": {"missing_rate": _r(lay.ref.features[name].missing_rate), **({"audit": audit} if audit else {})},
                              "current": {"absent_share": _r(a), "events": int(n)}},
                             f"{name} is absent from {a:.0%} of served events but present in training: the serving payload lost it"))
        if t >= th.type_mismatch_share:
            expected = "number" if name in lay.numeric else "string"
            out.append(_fact("schema", name, "type_mismatch_share", t, th.type_mismatch_share, P, t >= 0.2,
                             {"reference": {"type": expected}, "current": {"type_mismatch_share": _r(t)}},
                             f"{t:.1%} of {name} values are not a {expected}: a producer changed its type/encoding"))
    for name, c in sorted(v.w.unexpected.items()):
        share = c / n
        if share >= 0.5:
            out.append(_fact("schema", name, "unexpected_share", share, 0.5, P, False,
                             {"reference": {"in_training": False}, "current": {"share": _r(share)}},
                             f"{name} is served in {share:.0%} of events but is not in the training reference: a new or renamed feature?"))
    del only0
    return out


def _fact(kind: str, feature: str | None, stat: str, value: float, thr: float, P: int, critical: bool,
          ev: dict[str, Any], summary: str) -> Result:
    val = np.zeros(P)
    val[0] = value
    m = np.zeros(P, bool)
    m[0] = True
    return Result(kind, feature, stat, val, m, m.copy(), m & critical, np.full(P, np.nan), thr, lambda i: ev, lambda i: summary)
