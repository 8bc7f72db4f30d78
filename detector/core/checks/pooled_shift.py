"""A shifted producer clock, seen over the last hours rather than in one window.

The hourly check (:func:`detector.core.checks.seasonal._time_shift`) needs ``min_count_rate``
events of a slice in *one* window. A quiet slice - a region that sends 30 events an hour, fewer at
night - never has them, so a producer in that region that stamps local time as UTC went unnoticed
until the day's skew check reported a generic drift of its local-hour feature many hours later.

Here the evidence of the trailing :data:`POOL` seconds of closed windows (the trailing day ring of
:mod:`detector.core.checks.daily`, plus the window closing now) is pooled per slice row and
feature. Every window ``h`` is compared with production's history in its own seasonal slot
``s_h`` and in the slots ``s_h - k`` for every shift ``k`` within a day. A row is reported with
shift ``k`` (``feature_drift`` / ``time_shift_hours``, the statistic the hourly check uses) when

* the pooled counts are far from their own hours (PSI / L-infinity of the pooled counts against the
  pooled usual mix at least twice the warning threshold) and that is no sampling accident: the
  pooled G-test against the own hours (each window against its slot's history, with the history's
  own size; statistics and degrees of freedom summed) gives the p-value that enters the
  false-discovery-rate control;
* one shift ``k`` explains them: the pooled distance to the shifted hours is at most a fifth of
  the own distance and under 0.1, and the pooled G-test against the shifted hours does not reject
  them (p >= :data:`FIT_P`) - at a high rate this refuses a weekend or holiday hour that only looks
  roughly like another hour of a weekday;
* the feature has time structure at these hours (the own and the shifted usual mixes differ by at
  least twice the threshold), else there is nothing a clock could have moved;
* both distances (pooled vs own hours, own vs shifted hours) exceed three times their sampling noise
  at the counts behind them (:func:`detector.core.checks.seasonal.noise`): thin history - a slice's
  first days, hours whose own windows were taken back out - is far from everything, and the hours
  with the most history would otherwise always look closest. The history's count is what the
  pooled expectation is worth (:func:`_effective`): each window's slot is weighted by the window's
  events, so one thin slot (an hour a held feature did not teach) under a busy window is as noisy
  as its own few events, however large the other slots are.

A clock that went wrong a few hours ago leaves unshifted windows at the start of the pool, which fit
neither the own nor the shifted hours; so the trailing runs of windows are tried, longest first (at
least two windows and :data:`MIN_EVENTS` events), and the first that passes every gate is reported.
The windows of the pool are compared with their hours' history *before* them: the seasonal baseline
learned each of them when it closed (unless a finding held it), so that part is taken back out - else
a wrong clock's first hours would already be "usual" for the hours they claim.

The engine's persistence rule (:func:`detector.core.engine._persistent_shifts`) then applies as to
the hourly check. Nothing here keeps state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.core.checks.result import Result
from detector.core.checks.seasonal import _dist, noise
from detector.core.checks.view import View
from detector.core.inputs.layout import Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.settings import DetectorSettings
from detector.core.stats import distributions as stats

__all__ = ["pooled_time_shift", "POOL", "FIT_P", "MIN_EVENTS"]

POOL = 6 * 3600.0  # the trailing hours whose evidence is pooled
FIT_P = 1e-3  # the shifted hours must explain the pooled counts at this level
#: pooled events a row needs: few, because a clock-set feature is nearly one value per hour (a handful of
#: events is decisive, and the G-test's p-value says how decisive); a noisy feature cannot pass the
#: shifted-fit gates with so few
MIN_EVENTS = 10
SOURCE = "production, same time of day (trailing 6 h pooled)"


def pooled_time_shift(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings,
                      ring: Sequence[tuple[float, dict[str, np.ndarray]]], current: dict[str, np.ndarray]) -> list[Result]:
    """Rows whose trailing hours look like production's usual data of ``k`` hours earlier or later.

    ``ring``: (window start, arrays by real row) of the closed windows before this one (``num``:
    coarse bins, ``cat``: category counts, ``num_learned`` / ``cat_learned``: what of them the seasonal
    baseline learned, taken back out of its history); ``current``: the same arrays of the window closing now."""
    if sb.slots < 2 or not np.all(sb.days >= st.seasonal_min_days):
        return []
    t0 = v.w.start
    items = [(s, a) for s, a in ring if t0 - POOL < s < t0] + [(t0, current)]
    if len(items) < 2:
        return []  # one window: the hourly check's business
    slots = np.array([sb.slot(s) for s, _ in items])
    per_day = int(round(86400 / sb.slot_len)) if sb.slot_len < 86400 else 1
    shifts = [k for j in range(1, per_day) for k in (j, -j)]
    th = st.thresholds
    rows = [(i, int(r)) for i, (r, c) in enumerate(zip(v.rows.tolist(), v.comp.tolist(), strict=True)) if not c]
    out: list[Result] = []
    for name, src, cols, thr in _features(lay, sb, th):
        hist = sb.num if src == "num" else sb.cat  # (slots, rows, columns)
        learned = f"{src}_learned"
        for i, r in rows:
            cur = np.stack([a[src][r, cols] for _, a in items]).astype(np.float64)  # (H, B)
            if cur.sum() < MIN_EVENTS or cur[-1].sum() <= 0:
                continue
            # production's usual hours as they were before these windows: the baseline has since learned the
            # windows of the pool (those not held for a finding), a shifted clock's first hours among them
            h = hist[:, r, cols].copy()  # (slots, B)
            for (_, a), s in zip(items[:-1], slots[:-1].tolist(), strict=True):
                if learned in a:
                    h[s] -= a[learned][r, cols]
            np.maximum(h, 0.0, out=h)
            found = None
            # a clock that went wrong inside the pool: its hours before the change fit neither the own nor the
            # shifted hours, so the trailing windows since then (the longest such run that fits) are judged
            for m in range(len(items), 1, -1):
                part = cur[-m:]
                if part.sum() < MIN_EVENTS:
                    break
                found = _best_shift(src, h, slots[-m:], part, shifts, thr, MIN_EVENTS)
                if found is not None:
                    break
            if found is None:
                continue
            k, own, dist, p_own, p_fit = found
            out.append(_result(name, i, v.P, k * sb.slot_len / 3600.0, own, dist, p_own, p_fit, int(part.sum())))
    return out


def _features(lay: Layout, sb: SeasonalBaseline, th: Any) -> list[tuple[str, str, slice, float]]:
    """(feature, array, columns, distance threshold) of every input feature (the score has no clock)."""
    feats: list[tuple[str, str, slice, float]] = []
    for j in range(lay.n_num_blocks - 1):
        b = sb.blocks[j]
        feats.append((lay.numeric[j], "num", slice(b.start, b.stop - 1), th.psi_warning))
    for j, name in enumerate(lay.categorical):
        off = int(lay.cat_offsets[j])
        feats.append((name, "cat", slice(off, off + len(lay.cat_vocab[name]) + 1), th.linf_warning))
    return feats


def _best_shift(src: str, h: np.ndarray, slots: np.ndarray, cur: np.ndarray, shifts: list[int], thr: float,
                min_n: float) -> tuple[int, float, float, float, float] | None:
    """(shift in slots, own distance, shifted distance, own p-value, shifted-fit p-value), or None."""
    src = "coarse" if src == "num" else src  # the names of seasonal._dist
    live = cur.sum(axis=1) > 0
    cur, slots = cur[live], slots[live]
    n_h = h.sum(axis=1)
    if np.any(n_h[slots] <= 0) or n_h[slots].sum() < min_n:
        return None  # hours without history: nothing to compare with (thin ones: the G-tests weigh them)
    p = h / np.maximum(n_h, 1e-12)[:, None]
    n_cur = cur.sum(axis=1)[:, None]
    pooled = cur.sum(axis=0)[None]
    e_own = (n_cur * p[slots]).sum(axis=0)[None]
    own = float(_dist(src, e_own, pooled)[0])
    bins = cur.shape[1]
    if own < max(2 * thr, float(noise(src, bins, pooled.sum(), _effective(n_cur[:, 0], n_h[slots])))):
        return None  # not far from its own hours, or no farther than thin history and a few events put it
    best, best_d = None, np.inf
    for k in shifts:
        s2 = (slots - k) % len(h)
        if np.any(n_h[s2] <= 0) or n_h[s2].sum() < min_n:
            continue
        d = float(_dist(src, (n_cur * p[s2]).sum(axis=0)[None], pooled)[0])
        if d < best_d - 1e-12 or (abs(d - best_d) <= 1e-12 and best is not None and abs(k) < abs(best)):
            best, best_d = k, d
    if best is None or best_d > min(0.1, own / 5):
        return None
    s2 = (slots - best) % len(h)
    if float(_dist(src, (n_cur * p[s2]).sum(axis=0)[None], e_own)[0]) < max(
            2 * thr, float(noise(src, bins, _effective(n_cur[:, 0], n_h[s2]), _effective(n_cur[:, 0], n_h[slots])))):
        return None  # these hours look alike (within their histories' noise): no time structure a clock could have moved
    p_fit = _pooled_g(cur, p[s2], n_h[s2])
    if p_fit < FIT_P:
        return None  # no shift explains the hours within sampling noise (a weekend, a holiday)
    return best, own, best_d, _pooled_g(cur, p[slots], n_h[slots]), p_fit


def _effective(n_cur: np.ndarray, n_hist: np.ndarray) -> float:
    """How many events the history behind a pooled expectation is worth: the expected counts weigh each window's
    slot history by the window's events, so a thin slot under a busy window counts for more than its size -
    ``(sum n)^2 / sum(n^2 / N_slot)`` (the sum of the slots' sizes when every window and slot are alike)."""
    w = np.asarray(n_cur, dtype=np.float64)
    return float(w.sum() ** 2 / max(float(np.sum(w**2 / np.maximum(n_hist, 1e-12))), 1e-12))


def _pooled_g(cur: np.ndarray, ref_p: np.ndarray, ref_n: np.ndarray) -> float:
    """Windows against their reference rows (each a sample of ``ref_n``): G and df summed, one p-value."""
    g, df, _ = stats.gtest_gof(cur, ref_p, ref_n=ref_n)
    return float(stats.chi2_sf(float(np.sum(g)), max(int(np.sum(df)), 1)))


def _result(name: str, i: int, P: int, hours: float, own: float, dist: float, p_own: float, p_fit: float,
            n: int) -> Result:
    val = np.zeros(P)
    val[i] = hours
    m = np.zeros(P, bool)
    m[i] = True
    pv = np.full(P, np.nan)
    pv[i] = p_own
    return Result(
        "feature_drift", name, "time_shift_hours", val, m, m.copy(), m.copy(), pv, 0.0,
        lambda _i: {"reference": {"distance_same_hour": round(own, 4), "source": SOURCE},
                    "current": {"best_shift_hours": hours, "distance_shifted": round(dist, 4), "count": n,
                                "p_value_shifted_fit": float(f"{p_fit:.3g}")}},
        lambda _i: (f"{name} over the last hours looks like this traffic's usual data from about {abs(hours):.0f} h "
                    f"{'earlier' if hours > 0 else 'later'}: a producer's clock / time zone is shifted (local time sent as UTC?)"),
        effect=np.abs(val))

