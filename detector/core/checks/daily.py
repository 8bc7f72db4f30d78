"""Skew over a full day: the trailing 24 h of closed windows against the training reference.

Training data without timestamps is a sample of whole days. One hour of serving is not: at 03:00
UTC a local-hour feature takes one value per region, the part of the day is "night" in one
region and "morning" in another, the channel mix (and every feature that depends on the channel,
such as a field that is null by design for card-present payments) follows the clock. Comparing
that hour with the all-day training profile cries wolf every hour. So when the reference has no
hour-of-day profiles (:mod:`detector.core.reference.hourly`), the *distribution* skew statistics - missing
rate, the share of one exact value, values outside the training range, PSI and L-infinity - are
judged on the trailing day (:class:`DayRing`, the sum of the windows that closed in the last
``period``), which covers every hour in the proportions training does. Statistics that time of
day cannot produce stay hourly (unit changes, unseen categories, schema), and production's own
history at the same time of day keeps hourly drift tests sensitive
(:mod:`detector.core.checks.seasonal`).

The share of one exact value over the day is tested as quasi-binomial: events come in bursts, so the
day counts as ``n / phi`` independent events, ``phi`` being how much more the value's daily share
varied over the previous whole days than independent events allow (:mod:`detector.core.checks.dispersion`).
The day's whole distribution (PSI of the coarse bins, L-infinity of the category mix) is judged the
same way: its G-test counts the day as ``n / phi`` events, ``phi`` being how far production's own
whole days scatter around production's pooled mix, and once a week has passed the day is also
compared with training re-weighted by production's time-of-week profile, the more charitable
comparison kept (:mod:`detector.core.checks.mixdispersion`): a Sunday is not an average day.
Features that production's own history shows to be set by the clock (a local hour: one value per
region and hour, :mod:`detector.core.checks.clockseen`) have no value-share test against training; the
same hour of earlier days judges them.

Memory: ``period / window`` windows of coarse bins, categories and exact-value hits per slice row, and
14 whole days of the same (:class:`~detector.core.checks.dispersion.ShareHistory`,
:class:`~detector.core.checks.mixdispersion.DaySums`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.core.checks.clockseen import clock_in_production
from detector.core.checks.common import _cat_shares, _r, _shares
from detector.core.checks.dispersion import MIN_DAYS, ShareHistory, quasi_binomial_sf, spread
from detector.core.checks.mixdispersion import DaySums, multinomial_overdispersion, same_week, tilted
from detector.core.checks.result import Result
from detector.core.checks.view import View, _ref_rows
from detector.core.inputs.layout import SCORE, Layout
from detector.core.inputs.seasonal import Frozen, SeasonalBaseline
from detector.core.inputs.window import RATE, WindowCounts
from detector.core.reference.profile import CategoricalProfile, NumericProfile, value_share
from detector.core.settings import DetectorSettings
from detector.core.stats import distributions as stats

__all__ = ["DayRing", "daily_checks", "SPAN"]

SPAN = "trailing 24 h"
_WEEK_NOTE = {True: {"mix": "training re-weighted to production's same time of earlier weeks"}}


class DayRing:
    """The last ``period`` seconds of closed windows (coarse bins, categories, value hits, events)."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.items: deque[tuple[float, dict[str, np.ndarray]]] = deque()
        self.first = math.inf  # start of the first window ever added
        self.last_end = -math.inf
        # whole days of candidate-value hits: how bursty each value's daily share is (detector.core.checks.dispersion)
        self.history = ShareHistory(period)
        # whole days of coarse bins and category counts: how far each feature's daily distribution strays
        # from production's own pooled mix (detector.core.checks.mixdispersion)
        self.mixes = DaySums(period)

    def add(self, w: WindowCounts, coarse: np.ndarray, sb: SeasonalBaseline | None = None, frozen: Frozen | None = None) -> None:
        """Add a closed window. The ``frozen`` series (those of an hourly finding or an open incident) are
        added as they usually are at this time of day (the seasonal slot, scaled to the window's
        counts): an incident the hourly checks already report must not linger in the day for 24 h
        as a second alert, and dropping the hours instead would skew the day's time-of-day mix."""
        num, cat, cand = coarse.astype(np.float64), w.cat.astype(np.float64), w.cand.copy()
        # the window as it was seen, for the pooled clock check (detector.core.checks.pooled_shift): a clock
        # shift that one window already reported must stay in the trailing hours' evidence
        seen = {"num_seen": num.copy(), "cat_seen": cat.copy()} if frozen is not None and (frozen.num.any() or frozen.cat.any()) else {}
        if sb is not None and frozen is not None and sb.days[sb.slot(w.start)] > 0:
            s = sb.slot(w.start)
            for j in np.flatnonzero(frozen.num).tolist():
                b = sb.blocks[j]
                num[:, b] = _scaled(sb.num[s][:, b], num[:, b])
                cand[:, j] = sb.cand[s][:, j] / np.maximum(sb.num[s][:, b][:, :-1].sum(1), 1e-12)[:, None] * num[:, b][:, :-1].sum(1)[:, None]
            for lo, hi in _runs(frozen.cat):
                cat[:, lo:hi] = _scaled(sb.cat[s][:, lo:hi], cat[:, lo:hi])
        self.items.append((w.start, {"num": num, "cat": cat, "cand": cand, "events": w.rates[:, RATE["events"]].copy(), **seen}))
        if sb is not None:  # the counts the day sums (held series as usual), per numeric block
            self.history.add(w.start, cand, np.stack([num[:, b][:, :-1].sum(axis=1) for b in sb.blocks], axis=1))
        self.mixes.add(w.start, {"num": num, "cat": cat})
        self.first = min(self.first, w.start)
        self.last_end = max(self.last_end, w.end)
        while self.items and self.items[0][0] < self.last_end - self.period:
            self.items.popleft()

    @property
    def oldest(self) -> float:
        """Start of the oldest window in the day (inf when empty)."""
        return self.items[0][0] if self.items else np.inf

    @property
    def ready(self) -> bool:
        """A full period of history (windows without traffic simply add nothing)."""
        return self.last_end - self.first >= self.period

    def to_state(self) -> dict[str, Any]:
        return {"period": self.period, "first": self.first, "last_end": self.last_end,
                "items": [[start, arrs] for start, arrs in self.items], "history": self.history.to_state(),
                "mixes": self.mixes.to_state()}

    def load_state(self, st: Any, rows: int) -> None:
        """Restore :meth:`to_state` (``rows``: the layout's slice rows, which every array must have)."""
        from detector.core.state.codec import check

        check(isinstance(st, dict) and isinstance(st.get("items"), list), "trailing day state")
        items: deque[tuple[float, dict[str, np.ndarray]]] = deque()
        for it in st["items"]:
            check(isinstance(it, list) and len(it) == 2 and isinstance(it[1], dict)
                  and set(it[1]) in ({"num", "cat", "cand", "events"}, {"num", "cat", "cand", "events", "num_seen", "cat_seen"})
                  and all(isinstance(a, np.ndarray) and a.ndim >= 1 and a.shape[0] == rows and a.dtype.kind == "f"
                          for a in it[1].values()), "trailing day window")
            items.append((float(it[0]), {k: np.asarray(a, dtype=np.float64) for k, a in it[1].items()}))
        self.period, self.first, self.last_end = float(st["period"]), float(st["first"]), float(st["last_end"])
        self.items = items
        # a state written before the history existed starts one (the dispersion factor is 1 until two days pass)
        self.history = ShareHistory.from_state(st["history"], rows) if "history" in st else ShareHistory(self.period)
        # likewise the daily distributions (the distribution tests count events as independent until two days pass)
        self.mixes = DaySums.from_state(st["mixes"], rows) if "mixes" in st else DaySums(self.period)

    def dispersion(self, v: View, since: np.ndarray, blocks: list[slice]) -> np.ndarray | None:
        """Over-dispersion of each candidate value's daily share per pseudo-row of ``v``, block and candidate,
        from the whole days before the trailing one (``since``: when each candidate began to be tracked);
        for series with fewer than ``MIN_DAYS`` such days, the larger of that and the trailing day's windows'."""
        if not self.items:
            return None
        ext = lambda a: np.maximum(_ext(a, v), 0.0)  # noqa: E731
        hourly, _ = spread([t for t, _ in self.items], [ext(a["cand"]) for _, a in self.items],
                           [ext(np.stack([a["num"][:, b][:, :-1].sum(axis=1) for b in blocks], axis=1)) for _, a in self.items], since)
        daily = self.history.dispersion(since, self.oldest, ext)
        if daily is None:
            return hourly
        return np.where(daily[1] >= MIN_DAYS, daily[0], np.maximum(daily[0], hourly))

    def mix(self, v: View, lay: Layout, blocks: list[slice]) -> DayMix | None:
        """What the day's distribution tests need from production's own whole days before the trailing one
        (see :class:`DayMix`); None when the day is empty."""
        if not self.items:
            return None
        ext = lambda a: np.maximum(_ext(a, v), 0.0)  # noqa: E731
        days = self.mixes.before(self.oldest)
        hourly = len(days) < MIN_DAYS
        stacks = {k: np.stack([ext(d[k]) for _, d in days]) for k in ("num", "cat")} if days else {}
        windows = {k: np.stack([ext(a[k]) for _, a in self.items]) for k in ("num", "cat")} if hourly else {}

        def phi(src: str, cols: slice) -> np.ndarray:
            out = multinomial_overdispersion(stacks[src][:, :, cols], robust=True) if len(days) >= 2 else np.ones(v.P)
            return np.maximum(out, multinomial_overdispersion(windows[src][:, :, cols])) if windows else out

        phis = {("num", j): phi("num", slice(b.start, b.stop - 1)) for j, b in enumerate(blocks)}
        for j, name in enumerate(lay.categorical):
            off = int(lay.cat_offsets[j])
            phis[("cat", j)] = phi("cat", slice(off, off + len(lay.cat_vocab[name]) + 1))
        w = same_week(np.array([s for s, _ in days]), self.oldest, self.period)
        if not w.any():
            return DayMix(phis)
        return DayMix(phis, {k: np.tensordot(w, a, axes=(0, 0)) for k, a in stacks.items()},
                      {k: a.sum(axis=0) for k, a in stacks.items()})

    def total(self) -> dict[str, np.ndarray]:
        out = {k: self.items[0][1][k].copy() for k in _SUMMED}
        for _, arrs in list(self.items)[1:]:
            for k in _SUMMED:
                out[k] += arrs[k]
        return out

    def seen(self, since: float) -> list[tuple[float, dict[str, np.ndarray]]]:
        """(start, {"num", "cat", "num_learned", "cat_learned"}) of the windows that started after ``since``, as
        they were seen (no series replaced by its usual counts), and the part of them the seasonal baseline
        learned (a series held for a finding or an open incident was replaced here and not learned there)."""
        out = []
        for t, a in self.items:
            if t <= since:
                continue
            num, cat = a.get("num_seen", a["num"]), a.get("cat_seen", a["cat"])
            out.append((t, {"num": num, "cat": cat, "num_learned": np.where(a["num"] == num, num, 0.0),
                            "cat_learned": np.where(a["cat"] == cat, cat, 0.0)}))
        return out


_SUMMED = ("num", "cat", "cand", "events")


@dataclass
class DayMix:
    """Production's own days, for the trailing day's distribution tests (:mod:`detector.core.checks.mixdispersion`).

    ``phi``: per ("num", block) or ("cat", categorical index), each pseudo-row's over-dispersion of whole days
    (the median day's scatter around the pooled mix; with fewer than ``MIN_DAYS`` days the larger of that and
    the trailing day's own windows' scatter, as the value-share test does: conservative, it also counts the
    hours' own mix as dispersion). ``same`` / ``pooled`` ("num" / "cat": pseudo-rows x columns): the counts of
    the days at the same time of earlier weeks (weighted by overlap) and of all the days, once a week has passed."""

    phi: dict[tuple[str, int], np.ndarray]
    same: dict[str, np.ndarray] | None = None
    pooled: dict[str, np.ndarray] | None = None

    def week(self, src: str, cols: slice) -> tuple[np.ndarray, np.ndarray] | None:
        if self.same is None or self.pooled is None:
            return None
        return self.same[src][:, cols], self.pooled[src][:, cols]


def _against(ref: np.ndarray, counts: np.ndarray, ref_n: np.ndarray, phi: np.ndarray, week: tuple[np.ndarray, np.ndarray] | None,
             dist: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(distance, p-value, reference, re-weighted?) of the day's ``counts`` against training's ``ref`` per row: the
    G-test counts the day as ``n / phi`` events. With production's same time of earlier weeks (``week``), the
    comparison with training re-weighted to that time of the week is taken where it is the more charitable (a
    Sunday is compared with training as a Sunday looks; a shift that the weekly pattern does not explain stands
    out in both): its reference is a sample of the witness days too, ``1 / ref_n' = 1 / ref_n + phi / n_same
    + phi / n_pooled``."""
    d0 = np.asarray(dist(ref, counts), dtype=np.float64)
    _, _, p0 = stats.gtest_gof(counts / phi[:, None], ref, ref_n=ref_n)
    p0 = np.asarray(p0, dtype=np.float64)
    none = np.zeros(len(counts), bool)
    if week is None:
        return d0, p0, ref, none
    same, pooled = week
    ns, npool = same.sum(axis=1), pooled.sum(axis=1)
    ok = (ns > 0) & (npool > 0)
    rt = np.where(ok[:, None], tilted(ref, same, pooled), ref)
    d1 = np.asarray(dist(rt, counts), dtype=np.float64)
    n_eff = 1.0 / (1.0 / np.maximum(ref_n, 1.0) + phi / np.maximum(ns, 1e-12) + phi / np.maximum(npool, 1e-12))
    _, _, p1 = stats.gtest_gof(counts / phi[:, None], rt, ref_n=np.maximum(n_eff, 1.0))
    use = ok & (np.nan_to_num(d1, nan=np.inf) < np.nan_to_num(d0, nan=np.inf))
    return np.where(use, d1, d0), np.where(use, np.asarray(p1, dtype=np.float64), p0), np.where(use[:, None], rt, ref), use


def _scaled(usual: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``usual`` rows rescaled to the row totals of ``counts`` (rows without history keep ``counts``)."""
    tot = usual.sum(axis=1, keepdims=True)
    return np.where(tot > 0, usual / np.maximum(tot, 1e-12) * counts.sum(axis=1, keepdims=True), counts)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) runs of True in a boolean vector."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _ext(a: np.ndarray, v: View) -> np.ndarray:
    """``a``'s rows in the view's pseudo-row order (complements: all traffic minus the slice)."""
    rows = a[v.rows]
    comp = v.comp.reshape((-1,) + (1,) * (a.ndim - 1))
    return np.where(comp, a[0][None] - rows, rows)


def daily_checks(lay: Layout, v: View, day: dict[str, np.ndarray], sb: SeasonalBaseline, st: DetectorSettings,
                 cands: np.ndarray, phi: np.ndarray | None = None, mix: DayMix | None = None) -> list[Result]:
    """Distribution skew of the trailing day per pseudo-row of ``v`` (see the module docstring). ``phi``: the
    over-dispersion of each candidate value's daily share (pseudo-row x block x candidate, :meth:`DayRing.dispersion`;
    None = independent events); ``mix``: production's own whole days for the distribution tests
    (:meth:`DayRing.mix`; None = independent events, no weekly pattern)."""
    D = {k: np.maximum(_ext(a, v), 0.0) for k, a in day.items()}  # substituted series are fractional
    out: list[Result] = []
    clock = clock_in_production(lay, sb)  # their share of one value is the day's volume curve (checks.clockseen)
    for j in range(lay.n_num_blocks):
        out.extend(_numeric(lay, v, D, sb, st, j, cands, None if phi is None else phi[:, j], clock, mix))
    for j in range(len(lay.categorical)):
        out.extend(_categorical(lay, v, D, st, j, mix))
    return out


def _numeric(lay: Layout, v: View, D: dict[str, np.ndarray], sb: SeasonalBaseline, st: DetectorSettings, j: int,
             cands: np.ndarray, phi: np.ndarray | None, clock: frozenset[str] = frozenset(),
             mix: DayMix | None = None) -> list[Result]:
    th = st.thresholds
    name = SCORE if j == lay.n_num_blocks - 1 else lay.numeric[j]
    feature = "score" if name == SCORE else name
    cb = sb.blocks[j]
    coarse = D["num"][:, cb.start : cb.stop - 1]
    miss = D["num"][:, cb.stop - 1]
    n_nm = coarse.sum(axis=1)
    n_all = n_nm + miss
    P = v.P
    refs = _ref_rows(lay, v, name)
    has = np.array([isinstance(r, NumericProfile) and r.n > 0 for r in refs])
    out: list[Result] = []
    # missing values
    p0, n0 = _missing(out, feature, refs, has, miss, n_all, st, th)
    # the share of one exact value (defaults, fallbacks)
    shares = np.minimum(D["cand"][:, j, :] / np.maximum(n_nm, 1)[:, None], 1.0)
    r0 = np.array([[value_share(r, float(c)) if h and not np.isnan(c) else np.nan for c in cands[j]]
                   for r, h in zip(refs, has, strict=True)])
    d_all = np.where(np.isnan(r0), -np.inf, shares - np.nan_to_num(r0))
    best = np.argmax(d_all, axis=1)
    idx = np.arange(P)
    sh, ref_sh, vals = shares[idx, best], r0[idx, best], cands[j][best]
    dd = sh - np.nan_to_num(ref_sh)
    # bursty traffic: the day counts as n / phi independent events (quasi-binomial, detector.core.checks.dispersion)
    ph = np.ones(P) if phi is None else phi[idx, best]
    pv_d = quasi_binomial_sf(sh * n_nm, n_nm, np.nan_to_num(ref_sh), ph)
    warn_d = (dd >= th.default_share_delta) & (sh >= 2 * np.nan_to_num(ref_sh))
    spike = "score_drift" if name == SCORE else "default_value_spike"
    what = "a constant default score is being served (fallback?)" if name == SCORE else "a default or fallback value is being served"
    out.append(Result(
        spike, feature, "value_share_24h", sh, (n_nm >= st.min_count) & np.isfinite(d_all[idx, best]) & (name not in clock), warn_d,
        warn_d & (dd >= 2 * th.default_share_delta), pv_d, np.nan_to_num(ref_sh) + th.default_share_delta,
        lambda i: {"value": _r(vals[i]), "reference": {"share": _r(ref_sh[i])},
                   "current": {"share": _r(sh[i]), "count": int(sh[i] * n_nm[i])}, "span": SPAN,
                   "dispersion": _r(ph[i])},
        lambda i: f"{feature} = {vals[i]:.4g} in {sh[i]:.1%} of the last day's events (training: {ref_sh[i]:.1%}): {what}"))
    # distribution: out of range, PSI
    if has.any():
        g = lay.coarse[j]
        RC = np.stack([np.bincount(g, weights=np.asarray(r.freqs), minlength=coarse.shape[1]) if h and len(r.freqs) == len(g)
                       else np.full(coarse.shape[1], np.nan) for r, h in zip(refs, has, strict=True)])
        ok = has & ~np.isnan(RC[:, 0])
        RC = np.where(ok[:, None], RC, 1.0 / coarse.shape[1])
        ref_n = np.maximum(n0 - np.nan_to_num(p0) * n0, 1)
        tested = ok & (n_nm >= st.min_count)
        kind = "score_drift" if name == SCORE else "feature_drift"
        out_n = np.minimum(coarse[:, 0] + coarse[:, -1], n_nm)
        oor = np.divide(out_n, n_nm, out=np.zeros(P), where=n_nm > 0)
        pv_o = stats.proportion_test(out_n, n_nm, 1.0 / ref_n, alternative="greater")
        out.append(Result(
            kind, feature, "out_of_range_share_24h", oor, tested, oor >= th.out_of_range_warning, oor >= 4 * th.out_of_range_warning,
            pv_o, th.out_of_range_warning,
            lambda i: {"reference": {"min": _r(refs[i].min), "max": _r(refs[i].max)}, "current": {"outside": _r(oor[i])}, "span": SPAN},
            lambda i: f"{oor[i]:.1%} of the last day's {feature} values fall outside the training range"))
        # days are no independent draws of events, and a Sunday is no average day (detector.core.checks.mixdispersion)
        mph = np.ones(P) if mix is None else mix.phi[("num", j)]
        cols = slice(cb.start, cb.stop - 1)
        psi, pv_p, RW, wk = _against(RC, coarse, ref_n, mph, None if mix is None else mix.week("num", cols), stats.psi)
        out.append(Result(
            kind, feature, "psi_24h", psi, tested, psi >= th.psi_warning, psi >= th.psi_critical, pv_p, th.psi_warning,
            lambda i: {"reference": {"bins": _shares(RW[i])}, "current": {"bins": _shares(coarse[i]), "count": int(n_nm[i])},
                       "span": SPAN, "dispersion": _r(mph[i]), **_WEEK_NOTE.get(bool(wk[i]), {})},
            lambda i: f"over the last day {feature}'s distribution moved away from training (PSI {psi[i]:.2f})"))
    return out


def _categorical(lay: Layout, v: View, D: dict[str, np.ndarray], st: DetectorSettings, j: int,
                 mix: DayMix | None = None) -> list[Result]:
    th = st.thresholds
    name = lay.categorical[j]
    cats = list(lay.cat_vocab[name])
    V = len(cats)
    off = int(lay.cat_offsets[j])
    cnt = D["cat"][:, off : off + V + 2]
    obs, miss = cnt[:, : V + 1], cnt[:, V + 1]
    n_nm = obs.sum(axis=1)
    n_all = n_nm + miss
    refs = _ref_rows(lay, v, name)
    has = np.array([isinstance(r, CategoricalProfile) and r.n > 0 for r in refs])
    out: list[Result] = []
    p0, n0 = _missing(out, name, refs, has, miss, n_all, st, th)
    if has.any():
        RS = np.stack([np.array([r.categories.get(c, 0.0) for c in cats] + [max(0.0, 1.0 - sum(r.categories.get(c, 0.0) for c in cats))])
                       if h else np.full(V + 1, 1.0 / (V + 1)) for r, h in zip(refs, has, strict=True)])
        ref_n = np.maximum(n0 * (1 - np.nan_to_num(p0)), 1)
        mph = np.ones(len(obs)) if mix is None else mix.phi[("cat", j)]
        li, pv_l, RW, wk = _against(RS, obs, ref_n, mph, None if mix is None else mix.week("cat", slice(off, off + V + 1)), stats.linf)
        out.append(Result(
            "feature_drift", name, "linf_24h", li, has & (n_nm >= st.min_count), li >= th.linf_warning, li >= th.linf_critical, pv_l,
            th.linf_warning,
            lambda i: {"reference": _cat_shares(cats, RW[i]), "current": _cat_shares(cats, obs[i] / max(n_nm[i], 1)), "span": SPAN,
                       "dispersion": _r(mph[i]), **_WEEK_NOTE.get(bool(wk[i]), {})},
            lambda i: f"over the last day {name}'s category mix moved away from training (L-inf {li[i]:.2f})"))
    return out


def _missing(out: list[Result], feature: str, refs: list, has: np.ndarray, miss: np.ndarray, n_all: np.ndarray,
             st: Any, th: Any) -> tuple[np.ndarray, np.ndarray]:
    """The last day's missing rate against training's, per row; appends the result, returns the reference
    missing rates and counts (the other tests of the feature use them)."""
    p0 = np.array([r.missing_rate if h else np.nan for r, h in zip(refs, has, strict=True)])
    n0 = np.array([r.count if h else 0 for r, h in zip(refs, has, strict=True)], dtype=np.float64)
    rate = np.divide(miss, n_all, out=np.zeros(len(miss)), where=n_all > 0)
    delta = rate - np.nan_to_num(p0)
    pv = stats.proportion_test(miss, n_all, np.nan_to_num(p0), alternative="greater", n0=np.maximum(n0, 1))
    out.append(Result(
        "missing_values", feature, "missing_rate_delta_24h", delta, has & (n_all >= st.min_count), delta >= th.missing_delta_warning,
        delta >= th.missing_delta_critical, pv, th.missing_delta_warning,
        lambda i: {"reference": {"missing_rate": _r(p0[i])}, "current": {"missing_rate": _r(rate[i]), "count": int(n_all[i])},
                   "span": SPAN},
        lambda i: f"{feature} was missing in {rate[i]:.1%} of the last day's events (training: {p0[i]:.1%}): check the "
                  "feature pipeline / join that fills it"))
    return p0, n0
