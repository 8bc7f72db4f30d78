"""Hourly checks against production's own history at the same time of day (the seasonal baseline).

Time structure is stable from one day to the next: at 03:00 UTC a local-hour feature takes the
same values as yesterday at 03:00, the channel mix is yesterday's, and so is the share of a field
that is null by design for one channel. So a *sudden* pipeline fault is seen hour by hour against
the same hour of earlier days, whatever the training data look like:

* ``missing_values`` / ``missing_rate_vs_seasonal``: the missing rate rose (+5 points, critical +20);
* ``default_value_spike`` / ``value_share_vs_seasonal``: one exact value's share rose (+10 points
  and at least doubled), measured only once the value has been tracked for ``seasonal_min_days``;
* ``feature_drift`` / ``time_shift_hours``: a feature that differs from its own hour but matches
  another hour of the day (PSI / L-infinity at most a fifth of its own distance, and under 0.1):
  a producer whose clock or time zone is off (local time sent as UTC). The distance from its own hour
  and the difference between the two hours' histories must both exceed three times what sampling
  noise gives at their counts (:func:`noise`): a feature without time structure has no hour to be
  shifted to.

The same effect thresholds and the same false-discovery-rate control apply as everywhere else
(:mod:`detector.core.decisions.select`). Nothing here keeps state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.core.checks.common import _r
from detector.core.checks.mixbound import mix_bound
from detector.core.checks.result import Result
from detector.core.checks.view import View, is_clock
from detector.core.inputs.layout import SCORE, Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.settings import DetectorSettings
from detector.core.stats import distributions as stats

__all__ = ["seasonal_checks"]

SOURCE = "production, same time of day"


def seasonal_checks(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings, cands: np.ndarray) -> list[Result]:
    if v.base is None:
        return []
    out: list[Result] = []
    slot = sb.slot(v.w.start)
    for j in range(lay.n_num_blocks):
        out.extend(_numeric(lay, v, sb, st, j, cands, slot))
    for j in range(len(lay.categorical)):
        out.extend(_categorical(lay, v, st, j))
    out.extend(_time_shift(lay, v, sb, st, slot))
    return out


def _missing(feature: str, miss: np.ndarray, n_all: np.ndarray, bmiss: np.ndarray, bn: np.ndarray, st: DetectorSettings,
             P: int) -> Result:
    th = st.thresholds
    rate = np.divide(miss, n_all, out=np.zeros(P), where=n_all > 0)
    brate = np.clip(np.divide(bmiss, bn, out=np.zeros(P), where=bn > 0), 0.0, 1.0)
    delta = rate - brate
    pv = stats.proportion_test(miss, n_all, brate, alternative="greater", n0=np.maximum(bn, 1))
    return Result(
        "missing_values", feature, "missing_rate_vs_seasonal", delta, (n_all >= st.min_count_rate) & (bn >= st.min_count),
        delta >= th.missing_delta_warning, delta >= th.missing_delta_critical, pv, th.missing_delta_warning,
        lambda i: {"reference": {"missing_rate": _r(brate[i]), "source": SOURCE}, "current": {"missing_rate": _r(rate[i]),
                                                                                            "count": int(n_all[i])}},
        lambda i: f"{feature} is missing in {rate[i]:.1%} of events (usually {brate[i]:.1%} at this time): check the feature "
                  "pipeline / join that fills it")


def _numeric(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings, j: int, cands: np.ndarray,
             slot: int) -> list[Result]:
    th = st.thresholds
    name = SCORE if j == lay.n_num_blocks - 1 else lay.numeric[j]
    feature = "score" if name == SCORE else name
    P = v.P
    cb = sb.blocks[j]
    cur = v.coarse[:, cb.start : cb.stop]
    base = v.base["num"][:, cb.start : cb.stop]  # type: ignore[index]
    n_nm, bn_nm = cur[:, :-1].sum(axis=1), base[:, :-1].sum(axis=1)
    out = [_missing(feature, cur[:, -1], n_nm + cur[:, -1], base[:, -1], bn_nm + base[:, -1], st, P)]
    # one exact value's share against its share at this time of day: the value's own history once it
    # has been tracked long enough, before that the usual share of the bin it falls in (an upper bound)
    known = ~np.isnan(cands[j])
    if known.any() and (name == SCORE or not is_clock(lay, name)):
        edges = lay.score_edges if name == SCORE else lay.num_edges[j]
        fine = np.searchsorted(edges, np.nan_to_num(cands[j]), side="right")
        cbin = lay.coarse[j][np.minimum(fine, len(lay.coarse[j]) - 1)]
        sh = v.arrays["cand"][:, j, :] / np.maximum(n_nm, 1)[:, None]
        bnc = v.base["cand_n"][:, j, :]  # type: ignore[index]
        own = (sb.cand_days[slot, j] >= st.seasonal_min_days)[None, :] & (bnc >= st.min_count)
        b_own = v.base["cand"][:, j, :] / np.maximum(bnc, 1e-12)  # type: ignore[index]
        b_bin = base[:, cbin] / np.maximum(bn_nm, 1e-12)[:, None]
        bsh = np.clip(np.where(own, b_own, b_bin), 0.0, 1.0)
        bcount = np.where(own, bnc, bn_nm[:, None])
        ok = known[None, :] & (bcount >= st.min_count)
        # a slice whose mix along another dimension moved: at most as often as in any of its present slices
        bound = mix_bound(v, np.where(ok, bsh, np.nan), lay.top_k) if name != SCORE else None
        if bound is not None:
            bsh = np.fmax(bsh, np.nan_to_num(bound, nan=0.0))
        d_all = np.where(ok, sh - bsh, -np.inf)
        best = np.argmax(d_all, axis=1)
        idx = np.arange(P)
        s, b, vals, bn_c = sh[idx, best], bsh[idx, best], cands[j][best], bcount[idx, best]
        dd = s - b
        pv = stats.proportion_test(s * n_nm, n_nm, b, alternative="greater", n0=np.maximum(bn_c, 1))
        warn = (dd >= th.default_share_delta) & (s >= 2 * b)
        kind = "score_drift" if name == SCORE else "default_value_spike"
        what = ("a constant default score is being served (fallback?)" if name == SCORE
                else "a default or fallback value is being served")
        out.append(Result(
            kind, feature, "value_share_vs_seasonal", s, (n_nm >= st.min_count_rate) & np.isfinite(d_all[idx, best]), warn,
            warn & (dd >= 2 * th.default_share_delta), pv, b + th.default_share_delta,
            lambda i: {"value": _r(vals[i]), "reference": {"share": _r(b[i]), "source": SOURCE},
                       "current": {"share": _r(s[i]), "count": int(s[i] * n_nm[i])}},
            lambda i: f"{feature} = {vals[i]:.4g} in {s[i]:.1%} of events (usually {b[i]:.1%} at this time): {what}"))
    return out


def _categorical(lay: Layout, v: View, st: DetectorSettings, j: int) -> list[Result]:
    name = lay.categorical[j]
    V = len(lay.cat_vocab[name])
    off = int(lay.cat_offsets[j])
    cur = v.arrays["cat"][:, off : off + V + 2].astype(np.float64)
    base = v.base["cat"][:, off : off + V + 2]  # type: ignore[index]
    return [_missing(name, cur[:, -1], cur.sum(axis=1), base[:, -1], base.sum(axis=1), st, v.P)]


def _time_shift(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings, slot: int) -> list[Result]:
    """Rows whose feature looks like another hour of the day: a producer's clock or time zone is off."""
    if sb.slots < 2 or not np.all(sb.days >= st.seasonal_min_days):
        return []
    th = st.thresholds
    out: list[Result] = []
    per_day = int(round(86400 / sb.slot_len)) if sb.slot_len < 86400 else 1
    feats: list[tuple[str, Any, Any, float]] = []
    for j in range(lay.n_num_blocks - 1):
        cb = sb.blocks[j]
        feats.append((lay.numeric[j], slice(cb.start, cb.stop - 1), "coarse", th.psi_warning))
    for j, name in enumerate(lay.categorical):
        off = int(lay.cat_offsets[j])
        feats.append((name, slice(off, off + len(lay.cat_vocab[name]) + 1), "cat", th.linf_warning))
    for name, cols, src, thr in feats:
        cur = (v.coarse if src == "coarse" else v.arrays["cat"])[:, cols].astype(np.float64)
        n = cur.sum(axis=1)
        hist = sb.num if src == "coarse" else sb.cat
        rows = hist[:, v.rows][:, :, cols]  # every slot, in the view's pseudo-row order
        every = np.where(v.comp[None, :, None], hist[:, 0][:, None, cols] - rows, rows)
        own = _dist(src, every[slot], cur)
        n_slot = every[slot].sum(axis=1)
        cand = np.flatnonzero(~v.comp & (n >= st.min_count_rate) & (n_slot >= st.min_count_rate)
                              & (own >= np.maximum(2 * thr, noise(src, cur.shape[1], n, n_slot))))
        for i in cand.tolist():
            scores = {}
            for k in range(1, per_day):
                for shift in (k, -k):
                    s2 = (slot - shift) % sb.slots
                    if every[s2, i].sum() >= st.min_count_rate:
                        scores[shift] = float(_dist(src, every[s2, i][None], cur[i][None])[0])
            if not scores:
                continue
            best = min(scores, key=lambda k: (scores[k], abs(k)))
            s2 = (slot - best) % sb.slots
            structure = float(_dist(src, every[s2, i][None], every[slot, i][None] )[0])
            if scores[best] > min(0.1, own[i] / 5) or structure < max(2 * thr, float(noise(src, cur.shape[1], every[s2, i].sum(), n_slot[i]))):
                continue  # no better hour, or the hours look alike (no time structure to be shifted)
            ref_p = every[slot, i] / max(every[slot, i].sum(), 1e-12)
            _, _, pv = stats.gtest_gof(cur[i], ref_p, ref_n=every[slot, i].sum())
            pvals = np.full(v.P, np.nan)
            pvals[i] = float(pv)
            val = np.zeros(v.P)
            val[i] = best
            m = np.zeros(v.P, bool)
            m[i] = True
            o, d = float(own[i]), scores[best]
            out.append(Result(
                "feature_drift", name, "time_shift_hours", val * sb.slot_len / 3600, m, m.copy(), m.copy(), pvals, 0.0,
                lambda i, o=o, d=d, best=best: {"reference": {"distance_same_hour": round(o, 4), "source": SOURCE},
                                                "current": {"best_shift_hours": best * sb.slot_len / 3600, "distance_shifted": round(d, 4)}},
                lambda i, name=name, best=best: (
                    f"{name} looks like this traffic's usual data from {abs(best) * sb.slot_len / 3600:.0f} h "
                    f"{'earlier' if best > 0 else 'later'}: a producer's clock / time zone is shifted (local time sent as UTC?)"),
                effect=np.abs(val)))
    return out


def noise(src: str, bins: int, n1: Any, n2: Any) -> np.ndarray:
    """Three times the distance two samples of ``n1`` and ``n2`` events from one distribution over ``bins``
    bins lie apart by chance: PSI ~ (bins - 1) (1/n1 + 1/n2) (a two-sample chi-square over the sample sizes),
    L-infinity ~ sqrt(1/n1 + 1/n2) (twice a share's largest standard error). The rule training's hourly
    profiles use (:mod:`detector.core.reference.hourly`): a distance within sampling noise is no time
    structure and no sign that an hour was sent as another - thin history (a slice's first days, a quiet
    hour) otherwise looks far from everything, and the hours with the most history look closest."""
    inv = 1.0 / np.maximum(np.asarray(n1, dtype=np.float64), 1.0) + 1.0 / np.maximum(np.asarray(n2, dtype=np.float64), 1.0)
    if src in ("coarse", "num"):
        return 3.0 * max(bins - 1, 1) * inv
    return 3.0 * np.sqrt(inv)


def _dist(src: str, ref: np.ndarray, cur: np.ndarray) -> np.ndarray:
    rs = ref / np.maximum(ref.sum(axis=1, keepdims=True), 1e-12)
    if src == "coarse":
        return np.asarray(stats.psi(rs, cur))
    return np.asarray(stats.linf(rs, cur))
