"""Statistical checks over one closed window, vectorised across slice rows.

Each check returns a :class:`Result`: for every *pseudo-row* (a slice row, or the complement of
a slice row: all traffic minus that slice) the statistic's value, whether it was tested (enough
events, a reference to compare with), whether the effect crosses the warning / critical
threshold, and a p-value for the observed difference at this sample size. Selection
(:mod:`detector.core.decisions.select`) then applies false-discovery-rate control and localises findings
to the slice that explains them. Nothing here keeps detection state (the reference profile of each
pseudo-row is cached on the layout: the same rows, hours and feature give the same profiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.checks.result import Result
from detector.core.inputs.layout import SCORE, Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.inputs.window import N_CAND, RATE, WindowCounts
from detector.core.reference.hourly import hour_weights, mix_profiles
from detector.core.reference.profile import CategoricalProfile, NumericProfile, value_share
from detector.core.settings import DetectorSettings
from detector.core.stats import distributions as stats

__all__ = ["Result", "View", "build_view", "is_clock", "run_checks"]


@dataclass
class View:
    """Pseudo-rows of one window: active rows, then complements of the active slice rows."""

    rows: np.ndarray  # real row per pseudo-row
    comp: np.ndarray  # True = complement (all traffic minus that row)
    w: WindowCounts
    arrays: dict[str, np.ndarray]
    base: dict[str, np.ndarray] | None  # seasonal slot arrays per pseudo-row, or None
    coarse: np.ndarray  # (P, n_coarse)
    events: np.ndarray  # (P,)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def P(self) -> int:
        return len(self.rows)


def _ext(a: np.ndarray, real: np.ndarray, slice_rows: np.ndarray) -> np.ndarray:
    return np.concatenate([a[real], a[0][None] - a[slice_rows]], axis=0)


def build_view(lay: Layout, w: WindowCounts, sb: SeasonalBaseline, settings: DetectorSettings) -> View:
    active = lay.active_rows()
    ev = w.rates[:, RATE["events"]]
    real = active[ev[active] > 0]
    if real.size == 0 or real[0] != 0:
        real = np.concatenate([[0], real[real != 0]])
    slice_rows = real[real != 0]
    arrays = {name: _ext(getattr(w, name), real, slice_rows) for name in ("num", "cat", "nz", "slog", "slog2", "sx", "cand", "rates", "lat")}
    coarse = np.add.reduceat(arrays["num"], sb.starts, axis=1)
    base = None
    if sb.ready(w.start, settings.seasonal_min_days):
        s = sb.slot(w.start)
        base = {name: _ext(getattr(sb, name)[s], real, slice_rows) for name in ("num", "cat", "rates", "lat", "sx", "nx", "cand", "cand_n")}
    rows = np.concatenate([real, slice_rows])
    comp = np.concatenate([np.zeros(len(real), bool), np.ones(len(slice_rows), bool)])
    # without hour-of-day training profiles an hour is not comparable with training's whole days:
    # distribution skew is then judged on the trailing day (detector.core.checks.daily)
    extra: dict[str, Any] = {"blocks": sb.blocks, "hourly_skew": bool(lay.ref.hourly) or w.end - w.start >= 86400}
    if base is None and sb.days.sum() * sb.slot_len >= 6 * 3600:  # >= 6 h of history, any hour
        extra["all_hours"] = {name: _ext(getattr(sb, name).sum(axis=0), real, slice_rows) for name in ("rates", "lat")}
    if lay.ref.hourly and lay.ref.hourly.get("features") and w.end - w.start < 86400:
        extra["hours"] = hour_weights(w.start, w.end, lay.ref.hourly["counts"])
    return View(rows=rows, comp=comp, w=w, arrays=arrays, base=base, coarse=coarse,
                events=arrays["rates"][:, RATE["events"]], extra=extra)


def is_clock(lay: Layout, feature: str) -> bool:
    """A feature the calendar sets (a local hour, a weekday), recognised from timestamped training
    (:func:`detector.core.reference.hourly.clock_features`): no distribution or value-share tests."""
    return feature in ((lay.ref.hourly or {}).get("clock") or ())


# --------------------------------------------------------------------------- reference per pseudo-row


def _ref_rows(lay: Layout, v: View, feature: str) -> list[Any]:
    """Reference profile per pseudo-row (complements: derived from global - slice when possible).

    Cached on the layout: the same rows, hours and feature give the same profiles every window.
    """
    hours = v.extra.get("hours")
    key = (feature, None if hours is None else hours.tobytes(), v.rows.tobytes(), v.comp.tobytes(),
           tuple(len(voc.values) for voc in lay.vocabs))
    hit = lay._ref_rows_cache.get(key)
    if hit is None:
        if len(lay._ref_rows_cache) > 2048:
            lay._ref_rows_cache.clear()
        hit = lay._ref_rows_cache[key] = _ref_rows_uncached(lay, v, feature, hours)
    mixes = v.extra.get("variant_mix")
    if mixes:  # re-mixed all-traffic rows (detector.core.checks.remix): training in this window's slice shares
        hit = list(hit)
        for k, (rows, w) in zip(v.extra["variants"], mixes, strict=True):
            if hit[k] is None:
                continue
            profs = [lay.ref_for_row(int(r), feature, hours) if x > 0 else None for r, x in zip(rows.tolist(), w.tolist(), strict=True)]
            keep = w > 0
            used = [p for p, use in zip(profs, keep.tolist(), strict=True) if use]
            if any(isinstance(p, NumericProfile) and (p.n == 0 or p.min is None) for p in used):
                continue  # a slice without a single training value (null by design there): no mixture to form
            mixed = mix_profiles(used, w[keep], hit[k])
            if mixed is not None:
                hit[k] = mixed
    return hit


def _ref_rows_uncached(lay: Layout, v: View, feature: str, hours: Any) -> list[Any]:
    out: list[Any] = []
    for r, c in zip(v.rows.tolist(), v.comp.tolist(), strict=True):
        if not c:
            out.append(lay.ref_for_row(r, feature, hours))
        else:
            g = lay.ref_for_row(0, feature, hours)
            s = lay.ref_for_row(r, feature, hours)
            out.append(_complement_profile(g, s))
    return out


def _complement_profile(g: Any, s: Any) -> Any:
    if g is None:
        return None
    if s is None or type(s) is not type(g):
        return g
    if isinstance(g, NumericProfile):
        if len(s.freqs) != len(g.freqs) or g.n - s.n <= 0:
            return g
        freqs = (np.asarray(g.freqs) * g.n - np.asarray(s.freqs) * s.n) / (g.n - s.n)
        freqs = np.clip(freqs, 0.0, None)
        freqs = freqs / freqs.sum() if freqs.sum() > 0 else np.asarray(g.freqs)
        return NumericProfile(**{**g.__dict__, "count": g.count - s.count, "missing": max(0, g.missing - s.missing),
                                 "freqs": freqs.tolist()})
    return g


def _fine_ref(lay: Layout, j: int, p: Any) -> np.ndarray | None:
    if p is None or not isinstance(p, NumericProfile):
        return None
    f = np.asarray(p.freqs, dtype=np.float64)
    if len(f) != len(lay.coarse[j]):
        return None  # a profile binned on other edges cannot be compared bin by bin
    return f


def _coarse_of(lay: Layout, j: int, fine: np.ndarray) -> np.ndarray:
    g = lay.coarse[j]
    return np.bincount(g, weights=fine, minlength=int(g.max()) + 1)


# --------------------------------------------------------------------------- numeric blocks


def _numeric(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings, j: int, cands: np.ndarray,
             cand_ref: np.ndarray) -> list[Result]:
    th = st.thresholds
    name = SCORE if j == lay.n_num_blocks - 1 else lay.numeric[j]
    feature = "score" if name == SCORE else name
    drift_kind = "score_drift" if name == SCORE else "feature_drift"
    off, size = int(lay.num_offsets[j]), int(lay.num_sizes[j])
    fine = v.arrays["num"][:, off : off + size - 1].astype(np.float64)
    miss = v.arrays["num"][:, off + size - 1].astype(np.float64)
    n_nm = fine.sum(axis=1)
    n_all = n_nm + miss
    P = v.P
    refs = _ref_rows(lay, v, name)
    has_ref = np.array([r is not None for r in refs])
    enough = n_nm >= st.min_count
    out: list[Result] = []
    cb = sb.blocks[j]
    coarse = v.coarse[:, cb.start : cb.stop - 1]

    # ---- missing values vs training
    p0 = np.array([r.missing_rate if r is not None else np.nan for r in refs])
    n0 = np.array([r.count if r is not None else 0 for r in refs], dtype=np.float64)
    rate = np.divide(miss, n_all, out=np.zeros(P), where=n_all > 0)
    delta = rate - np.nan_to_num(p0)
    hourly = bool(v.extra.get("hourly_skew", True))
    # a feature set by the clock (a local hour) has no sampling distribution to test (detector.core.reference.hourly)
    dist = hourly and not is_clock(lay, name)
    # without hour-of-day profiles an hour is judged against training only for what no hour of training
    # had at all (a feature never missing, a value never seen): time of day cannot produce that
    tested = has_ref & (n_all >= st.min_count_rate) & (hourly | (np.nan_to_num(p0, nan=1.0) == 0))
    pv = stats.proportion_test(miss, n_all, np.nan_to_num(p0), alternative="greater", n0=np.maximum(n0, 1))
    out.append(Result(
        "missing_values", feature, "missing_rate_delta", delta, tested, delta >= th.missing_delta_warning,
        delta >= th.missing_delta_critical, pv, th.missing_delta_warning,
        lambda i: {"reference": {"missing_rate": _r(p0[i])}, "current": {"missing_rate": _r(rate[i]), "missing": int(miss[i]), "count": int(n_all[i])}},
        lambda i: f"{feature} is missing in {rate[i]:.1%} of events (training: {p0[i]:.1%}): check the feature pipeline / join that fills it",
    ))
    if name == SCORE and not any(r is not None for r in refs):
        pass
    # ---- unit change: pure shift of log|x| with unchanged log-spread
    nz = v.arrays["nz"][:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        mlog = v.arrays["slog"][:, j] / nz
        sdlog = np.sqrt(np.maximum(v.arrays["slog2"][:, j] / nz - mlog * mlog, 0.0))
    rm = np.array([r.log_abs_mean if r is not None and r.log_abs_mean is not None else np.nan for r in refs])
    rs = np.array([r.log_abs_std if r is not None and r.log_abs_std is not None else np.nan for r in refs])
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ratio = np.exp(mlog - rm)
        spread = np.where(rs > 1e-9, sdlog / rs, np.where(sdlog < 1e-9, 1.0, np.inf))
        z = (mlog - rm) / (np.maximum(rs, 1e-9) / np.sqrt(np.maximum(nz, 1)))
    # a probability has no unit, and a reference that is (nearly) one value has no scale to compare
    tested_u = (nz >= st.min_count_rate) & ~np.isnan(rm) & (name != SCORE) & (np.nan_to_num(rs) >= 0.05)
    big = (ratio >= th.unit_ratio) | (ratio <= 1.0 / th.unit_ratio)
    same_shape = (spread <= th.unit_spread_tolerance) & (spread >= 1.0 / th.unit_spread_tolerance)
    pv_u = 2.0 * stats.norm_sf(np.abs(np.nan_to_num(z)))
    out.append(Result(
        "unit_shift", feature, "scale_ratio", ratio, tested_u, big & same_shape, big & same_shape, pv_u, th.unit_ratio,
        lambda i: {"reference": {"geometric_mean_abs": _r(math.exp(rm[i])), "log_spread": _r(rs[i])},
                   "current": {"geometric_mean_abs": _r(math.exp(mlog[i])), "log_spread": _r(sdlog[i])}},
        lambda i: f"{feature} is ~{_times(ratio[i])} than in training with the same shape: a unit change ({_unit_guess(ratio[i])})",
        effect=np.abs(np.log(np.where(ratio > 0, ratio, 1.0))),
    ))
    # ---- default / fallback value spike: share of one exact value
    shares = v.arrays["cand"][:, j, :] / np.maximum(n_nm, 1)[:, None]  # (P, N_CAND)
    d_all = shares - cand_ref[j][None, :]
    d_all[:, np.isnan(cands[j])] = -np.inf
    best = np.argmax(d_all, axis=1)
    sh = shares[np.arange(P), best]
    vals = cands[j][best]
    r0 = np.array([value_share(r, float(vals[i])) if isinstance(r, NumericProfile) else np.nan
                   for i, r in enumerate(refs)])  # no reference for this row: no skew test
    dd = sh - r0
    # a value training never had: for a clock feature, at no hour at all (its hour is the clock's business)
    g = lay.num_all_profiles[j] if j < len(lay.num_all_profiles) else None
    never = (r0 == 0) if dist or not isinstance(g, NumericProfile) else np.array(
        [value_share(g, float(x)) == 0 for x in vals.tolist()]) & (r0 == 0)
    pv_d = stats.proportion_test(sh * n_nm, n_nm, np.nan_to_num(r0), alternative="greater")
    warn_d = (dd >= th.default_share_delta) & (sh >= 2 * r0)
    spike_kind = "score_drift" if name == SCORE else "default_value_spike"
    what = ("a constant default score is being served (fallback?)" if name == SCORE
            else "a default or fallback value is being served")
    out.append(Result(
        spike_kind, feature, "value_share", sh, (n_nm >= st.min_count_rate) & np.isfinite(dd) & (dist | never), warn_d,
        warn_d & (dd >= 2 * th.default_share_delta), pv_d, r0 + th.default_share_delta,
        lambda i: {"value": _r(vals[i]), "reference": {"share": _r(r0[i])}, "current": {"share": _r(sh[i]), "count": int(sh[i] * n_nm[i])}},
        lambda i: f"{feature} = {_fmt(vals[i])} in {sh[i]:.1%} of events (training: {r0[i]:.1%}): {what}",
    ))
    # ---- vs training distribution
    ref_f = [_fine_ref(lay, j, r) for r in refs]
    ok_ref = np.array([f is not None for f in ref_f])
    if ok_ref.any():
        fallback_f = next(f for f in ref_f if f is not None)
        RF = np.stack([f if f is not None else fallback_f for f in ref_f])
        RC = np.stack([_coarse_of(lay, j, f) for f in RF])
        ref_n = np.array([r.n if r is not None else 1 for r in refs], dtype=np.float64)
        psi = stats.psi(RC, coarse)
        _, _, pv_psi = stats.gtest_gof(coarse, RC, ref_n=ref_n)
        ks = stats.ks_binned(RF, fine)
        js = stats.js_distance(RC, coarse)
        oor = np.divide(fine[:, 0] + fine[:, -1], n_nm, out=np.zeros(P), where=n_nm > 0)
        pv_oor = stats.proportion_test(fine[:, 0] + fine[:, -1], n_nm, 1.0 / np.maximum(ref_n, 1), alternative="greater")
        tested_r = ok_ref & enough & dist
        out.append(Result(
            drift_kind, feature, "out_of_range_share", oor, tested_r, oor >= th.out_of_range_warning,
            oor >= 4 * th.out_of_range_warning, pv_oor, th.out_of_range_warning,
            lambda i: {"reference": {"min": _r(refs[i].min), "max": _r(refs[i].max)},
                       "current": {"below_min": _r(fine[i, 0] / max(n_nm[i], 1)), "above_max": _r(fine[i, -1] / max(n_nm[i], 1))}},
            lambda i: f"{oor[i]:.1%} of {feature} values fall outside the training range [{_fmt(refs[i].min)}, {_fmt(refs[i].max)}]",
        ))
        out.append(Result(
            drift_kind, feature, "psi", psi, tested_r, psi >= th.psi_warning, psi >= th.psi_critical, pv_psi, th.psi_warning,
            lambda i: {"reference": {"bins": _shares(RC[i]), "median": _r(refs[i].median)},
                       "current": {"bins": _shares(coarse[i]), "median": _r(_median_from_fine(lay.num_edges[j] if j < len(lay.num_edges) else lay.score_edges, fine[i])), "count": int(n_nm[i])},
                       "ks": _r(ks[i]), "js_distance": _r(js[i])},
            lambda i: f"{feature} distribution moved away from training (PSI {psi[i]:.2f}, KS {ks[i]:.2f}; median {_fmt(refs[i].median)} -> {_fmt(_median_from_fine(lay.num_edges[j] if j < len(lay.num_edges) else lay.score_edges, fine[i]))})",
        ))
    # ---- vs production's own seasonal history (drift)
    if v.base is not None:
        bc = v.base["num"][:, cb.start : cb.stop - 1]
        bn = bc.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            bp = bc / bn[:, None]
        psi_s = stats.psi(np.nan_to_num(bp), coarse)
        _, _, pv_s = stats.gtest_gof(coarse, np.nan_to_num(bp), ref_n=np.maximum(bn, 1))
        tested_s = enough & (bn >= st.min_count) & (name == SCORE or not is_clock(lay, name))
        out.append(Result(
            drift_kind, feature, "psi_vs_seasonal", psi_s, tested_s, psi_s >= th.psi_warning, psi_s >= th.psi_critical,
            pv_s, th.psi_warning,
            lambda i: {"reference": {"bins": _shares(bc[i]), "source": "production, same time of day"},
                       "current": {"bins": _shares(coarse[i]), "count": int(n_nm[i])}},
            lambda i: f"{feature} differs from its usual distribution at this time of day (PSI {psi_s[i]:.2f} vs the seasonal baseline)",
        ))
    return out


# --------------------------------------------------------------------------- categorical features


def _categorical(lay: Layout, v: View, st: DetectorSettings, j: int) -> list[Result]:
    th = st.thresholds
    name = lay.categorical[j]
    vocab = lay.cat_vocab[name]
    cats = list(vocab)
    V = len(vocab)
    off = int(lay.cat_offsets[j])
    cnt = v.arrays["cat"][:, off : off + V + 2].astype(np.float64)
    known, unseen, miss = cnt[:, :V], cnt[:, V], cnt[:, V + 1]
    n_nm = known.sum(axis=1) + unseen
    n_all = n_nm + miss
    P = v.P
    refs = _ref_rows(lay, v, name)
    out: list[Result] = []
    # missing
    p0 = np.array([r.missing_rate if r is not None else np.nan for r in refs])
    n0 = np.array([r.count if r is not None else 0 for r in refs], dtype=np.float64)
    rate = np.divide(miss, n_all, out=np.zeros(P), where=n_all > 0)
    delta = rate - np.nan_to_num(p0)
    pv = stats.proportion_test(miss, n_all, np.nan_to_num(p0), alternative="greater", n0=np.maximum(n0, 1))
    hourly = bool(v.extra.get("hourly_skew", True)) | (np.nan_to_num(p0, nan=1.0) == 0)  # see _numeric
    out.append(Result(
        "missing_values", name, "missing_rate_delta", delta, ~np.isnan(p0) & (n_all >= st.min_count_rate) & hourly,
        delta >= th.missing_delta_warning, delta >= th.missing_delta_critical, pv, th.missing_delta_warning,
        lambda i: {"reference": {"missing_rate": _r(p0[i])}, "current": {"missing_rate": _r(rate[i]), "count": int(n_all[i])}},
        lambda i: f"{name} is missing in {rate[i]:.1%} of events (training: {p0[i]:.1%}): check the feature pipeline / join that fills it",
    ))
    # reference shares per pseudo-row on the global vocabulary (+ "other" bucket)
    RS = np.full((P, V + 1), np.nan)
    for i, r in enumerate(refs):
        if isinstance(r, CategoricalProfile):
            row = np.array([r.categories.get(c, 0.0) for c in cats] + [0.0])
            row[V] = max(0.0, 1.0 - row[:V].sum())
            RS[i] = row
    has = ~np.isnan(RS[:, 0])
    ref_n = np.array([r.n if r is not None else 1 for r in refs], dtype=np.float64)
    enough = n_nm >= st.min_count
    obs = np.concatenate([known, unseen[:, None]], axis=1)
    # unseen categories
    ush = np.divide(unseen, n_nm, out=np.zeros(P), where=n_nm > 0)
    uref = np.nan_to_num(RS[:, V])
    ud = ush - uref
    pv_u = stats.proportion_test(unseen, n_nm, uref, alternative="greater", n0=np.maximum(ref_n, 1))
    top_unseen = sorted(v.w.unseen[j].items(), key=lambda kv: -kv[1])[:5]

    def _vanished(i: int) -> list[str]:
        if not has[i] or n_nm[i] == 0:
            return []
        cur = known[i] / n_nm[i]
        return [c for k, c in enumerate(cats) if RS[i, k] >= 0.02 and cur[k] <= RS[i, k] / 5][:5]

    def _unseen_summary(i: int) -> str:
        van = _vanished(i)
        new = [k for k, _ in top_unseen]
        s = f"{ush[i]:.1%} of {name} values were never seen in training"
        if new:
            s += f" (e.g. {', '.join(repr(x) for x in new[:3])})"
        if van:
            s += f"; {', '.join(repr(x) for x in van[:3])} vanished: renamed category / changed encoding?"
        return s

    out.append(Result(
        "unseen_categories", name, "unseen_share", ush, has & (n_nm >= st.min_count_rate), ud >= th.unseen_share_warning,
        ud >= th.unseen_share_critical, pv_u, th.unseen_share_warning,
        lambda i: {"reference": {"other_share": _r(uref[i])}, "current": {"unseen_share": _r(ush[i]),
                   "top_unseen": {k: c for k, c in top_unseen}, "vanished": _vanished(i)}},
        _unseen_summary,
    ))
    if has.any():
        RSf = np.where(has[:, None], RS, np.nan_to_num(RS[has][0]) if has.any() else 0.0)
        li = stats.linf(RSf, obs)
        js = stats.js_distance(RSf, obs)
        _, _, pv_l = stats.gtest_gof(obs, RSf, ref_n=ref_n)
        out.append(Result(
            "feature_drift", name, "linf", li, has & enough & bool(v.extra.get("hourly_skew", True)) & (not is_clock(lay, name)), li >= th.linf_warning, li >= th.linf_critical, pv_l, th.linf_warning,
            lambda i: {"reference": _cat_shares(cats, RSf[i]), "current": _cat_shares(cats, obs[i] / max(n_nm[i], 1)),
                       "js_distance": _r(js[i])},
            lambda i: f"{name} category mix moved away from training (L-inf {li[i]:.2f}, JS {js[i]:.2f})",
        ))
    if v.base is not None:
        bc = v.base["cat"][:, off : off + V + 1]
        bn = bc.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            bp = np.nan_to_num(bc / bn[:, None])
        li_s = stats.linf(bp, obs)
        _, _, pv_s = stats.gtest_gof(obs, bp, ref_n=np.maximum(bn, 1))
        out.append(Result(
            "feature_drift", name, "linf_vs_seasonal", li_s, enough & (bn >= st.min_count) & (not is_clock(lay, name)), li_s >= th.linf_warning,
            li_s >= th.linf_critical, pv_s, th.linf_warning,
            lambda i: {"reference": _cat_shares(cats + ["__unseen__"], bp[i]), "current": _cat_shares(cats + ["__unseen__"], obs[i] / max(n_nm[i], 1))},
            lambda i: f"{name} category mix differs from its usual mix at this time of day (L-inf {li_s[i]:.2f})",
        ))
    return out


# --------------------------------------------------------------------------- rates: decisions, fallback, latency


def _rates(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings) -> list[Result]:
    th = st.thresholds
    R = v.arrays["rates"]
    P = v.P
    out: list[Result] = []
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
            "decision_rate", None, "decision_rate_delta", dd, (decided >= st.min_count_rate) & (bd >= st.min_count_rate),
            np.abs(dd) >= th.decision_rate_delta, np.abs(dd) >= 2 * th.decision_rate_delta, pv, th.decision_rate_delta,
            lambda i: {"reference": {"decision_rate": _r(b_rate[i]), "source": "production, same time of day"},
                       "current": {"decision_rate": _r(rate_d[i]), "decided": int(decided[i])}, "thresholds": _thr(v.w)},
            lambda i: f"the model acts on {rate_d[i]:.1%} of events (usually {b_rate[i]:.1%} at this time): check the threshold / decision policy",
            effect=np.abs(dd),
        ))
    agg = v.extra.get("all_hours")
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
        "fallback_rate", None, "fallback_rate", rate_f, fk >= st.min_count_rate, fd >= th.fallback_rate_delta,
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
        p95 = _hist_quantile(L, edges, 0.95)
        bp95 = _hist_quantile(BL, edges, 0.95)
        ratio = np.divide(p95, bp95, out=np.ones(P), where=bp95 > 0)
        # share of current events above the baseline's p95 bucket
        bidx = np.searchsorted(edges, bp95, side="right")
        above = np.array([L[i, min(int(bidx[i]) + 1, L.shape[1]) :].sum() for i in range(P)])
        pv_l = stats.proportion_test(above, n_l, np.full(P, 0.05), alternative="greater")
        out.append(Result(
            "latency", None, "p95_ratio", ratio, (n_l >= st.min_count_rate) & (bn_l >= st.min_count_rate),
            ratio >= th.latency_ratio, ratio >= 2 * th.latency_ratio, pv_l, th.latency_ratio,
            lambda i: {"reference": {"p95_ms": _r(bp95[i])}, "current": {"p95_ms": _r(p95[i])}},
            lambda i: f"p95 latency {p95[i]:.0f} ms is {ratio[i]:.1f}x its usual {bp95[i]:.0f} ms: expect timeouts and fallbacks",
        ))
    return out


# --------------------------------------------------------------------------- schema (all traffic only)


def _schema(lay: Layout, v: View, st: DetectorSettings) -> list[Result]:
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


# --------------------------------------------------------------------------- clock / timezone shifts


def _time_shift(lay: Layout, v: View, st: DetectorSettings) -> list[Result]:
    """A seasonal feature that matches *another* hour of the training day: a shifted clock.

    When ``hour_of_day`` is computed in UTC instead of local time, every window looks exactly
    like the training data of k hours later. For each seasonal feature the window (all
    traffic) is compared with the training mixture of its own hours and of the same hours
    shifted by k = -12..12; a window far from its own hours (PSI / L-inf over the warning
    threshold) but close to a shifted set (at most a fifth of that, and under 0.1) is a clock
    or timezone bug in the pipeline, reported with the shift in hours.
    """
    hours = v.extra.get("hours")
    hourly = lay.ref.hourly.get("features", {}) if lay.ref.hourly else {}
    if hours is None or not hourly or v.events[0] < st.min_count:
        return []
    out: list[Result] = []
    th = st.thresholds
    P = v.P
    for name, profs in hourly.items():
        if name in lay.numeric:
            j = lay.numeric.index(name)
            cb = v.coarse[0, slice(*_block(v, j))]
            glob = lay.num_all_profiles[j]

            def dist(p: Any, j: int = j, cb: np.ndarray = cb) -> float:
                return float(stats.psi(_coarse_of(lay, j, np.asarray(p.freqs)), cb))
            thr = th.psi_warning
        elif name in lay.categorical:
            k = lay.categorical.index(name)
            V = len(lay.cat_vocab[name])
            off = int(lay.cat_offsets[k])
            obs = v.arrays["cat"][0, off : off + V + 1].astype(np.float64)
            glob = lay.ref.features[name]
            cats = list(lay.cat_vocab[name])

            def dist(p: Any, obs: np.ndarray = obs, cats: list[str] = cats) -> float:
                row = np.array([p.categories.get(c, 0.0) for c in cats] + [p.other_share])
                return float(stats.linf(row, obs))
            thr = th.linf_warning
        else:
            continue
        scores = {}
        for shift in range(-12, 13):
            mixed = lay._mixed(("g", name), profs, np.roll(hours, shift), glob)
            if mixed is not None:
                scores[shift] = dist(mixed)
        own = scores.get(0)
        if own is None or own < 2 * thr or len(scores) < 2:
            continue
        best = min((k for k in scores if k != 0), key=lambda k: scores[k])
        if scores[best] <= min(0.1, own / 5):
            val = np.zeros(P)
            val[0] = -best  # as the seasonal check says it: +k = looks like the data of k hours earlier
            m = np.zeros(P, bool)
            m[0] = True
            feature = "score" if name == SCORE else name
            out.append(Result(
                "feature_drift", feature, "time_shift_hours", val, m, m.copy(), m.copy(), np.full(P, np.nan), 0.0,
                lambda i, own=own, best=best, sc=scores[best]: {"reference": {"distance_own_hours": round(own, 4)},
                                                              "current": {"best_shift_hours": -best, "distance_shifted": round(sc, 4)}},
                lambda i, feature=feature, best=best: (
                    f"{feature} looks like training data from {abs(best)} h {'later' if best > 0 else 'earlier'}: "
                    "a clock / timezone shift in the feature pipeline (UTC vs local time?)"),
                effect=np.abs(val),
            ))
    return out


def _block(v: View, j: int) -> tuple[int, int]:
    b = v.extra["blocks"][j]
    return b.start, b.stop - 1


# --------------------------------------------------------------------------- entry point


def run_checks(lay: Layout, v: View, sb: SeasonalBaseline, st: DetectorSettings, cands: np.ndarray,
               cand_ref: np.ndarray) -> list[Result]:
    results: list[Result] = []
    for j in range(lay.n_num_blocks):
        results.extend(_numeric(lay, v, sb, st, j, cands, cand_ref))
    for j in range(len(lay.categorical)):
        results.extend(_categorical(lay, v, st, j))
    results.extend(_rates(lay, v, sb, st))
    results.extend(_schema(lay, v, st))
    results.extend(_time_shift(lay, v, st))
    from detector.core.reference.audit import (
        leak_serving_checks,  # leak suspects constant at serving (schema)
    )

    results.extend(leak_serving_checks(lay, v, st, cands))
    return results


# --------------------------------------------------------------------------- helpers


def _r(x: Any, nd: int = 4) -> Any:
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return x
    if not math.isfinite(f):
        return None
    return float(f"{f:.{nd}g}")


def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.4g}"


def _shares(c: np.ndarray) -> list[float]:
    s = c.sum()
    return [round(float(x) / s, 4) if s > 0 else 0.0 for x in c]


def _cat_shares(cats: list[str], shares: np.ndarray, top: int = 8) -> dict[str, float]:
    names = cats + ["__other__"] if len(shares) == len(cats) + 1 else cats
    pairs = sorted(zip(names, shares.tolist(), strict=False), key=lambda kv: -kv[1])[:top]
    return {k: round(v, 4) for k, v in pairs}


def _thr(w: WindowCounts) -> dict[str, int]:
    return {str(k): v for k, v in sorted(w.thresholds.items(), key=lambda kv: -kv[1])[:5]}


def _median_from_fine(edges: np.ndarray, fine: np.ndarray) -> float:
    n = fine.sum()
    if n <= 0:
        return float("nan")
    c = np.cumsum(fine)
    b = int(np.searchsorted(c, n / 2.0))
    if b == 0:
        return float(edges[0])
    if b >= len(edges):
        return float(edges[-1])
    lo, hi = edges[b - 1], edges[b]
    prev = c[b - 1] if b > 0 else 0.0
    frac = (n / 2.0 - prev) / max(fine[b], 1)
    return float(lo + (hi - lo) * frac)


def _hist_quantile(h: np.ndarray, edges: np.ndarray, q: float) -> np.ndarray:
    n = h.sum(axis=1)
    c = np.cumsum(h, axis=1)
    idx = np.array([int(np.searchsorted(c[i], q * n[i])) if n[i] > 0 else 0 for i in range(h.shape[0])])
    idx = np.clip(idx, 1, len(edges))
    return edges[idx - 1] * 1.0 + 0.0


def _times(r: float) -> str:
    return f"{r:.3g}x larger" if r >= 1 else f"{1 / r:.3g}x smaller"


_UNITS = [(100, "cents vs dollars?"), (1000, "ms vs s, or g vs kg?"), (60, "minutes vs hours, or s vs min?"),
          (3600, "s vs h?"), (1e6, "micro vs whole units?"), (24, "hours vs days?"), (1024, "bytes vs KiB?")]


def _unit_guess(r: float) -> str:
    x = r if r >= 1 else 1 / r
    best = min(_UNITS, key=lambda u: abs(math.log(x / u[0])))
    if abs(math.log(x / best[0])) < math.log(1.3):
        return best[1]
    return "check the units and scaling of this feature upstream"


__all__ += ["N_CAND"]
