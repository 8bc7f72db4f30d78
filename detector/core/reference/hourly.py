"""Time-of-day aware reference profiles: training data, hour by hour.

A one-hour serving window at 03:00 is not a sample of the whole training day: a feature such as
``hour_of_day`` is a single value in it, and money amounts are lower at night. Comparing such a
window with the all-day training profile cries wolf every night. When the training data has a
timestamp column, ``skewwatch baseline`` therefore also profiles every *seasonal* feature hour
by hour (UTC hour of the timestamp, on the global bin edges), and a serving window is compared
with the mixture of the training hours it covers, weighted by training volume per hour.

A feature is *seasonal* when some hour's distribution differs from the all-day one by more than
sampling noise can explain: coarse PSI >= max(0.05, 3 x (bins - 1) / rows in that hour), or
L-infinity >= max(0.05, 3 / sqrt(rows)) for categories. Other features keep the all-day profile
(no extra state). Hours with fewer than ``MIN_ROWS`` training rows have no profile; a window
that falls in them gets no skew test for that feature (drift against production's own history
still runs).

A feature is *set by the clock* (``hourly["clock"]``) when, in training, one calendar hour (UTC
hour of one day) together with one value of a slice dimension, or the calendar hour alone, almost
fixes its value (the rows' most common value within such groups is >= :data:`CLOCK_SHARE` of
them) while the slice value alone does not (a local hour or weekday: one value per region and hour;
a currency set by the region is not a clock feature). Its distribution in a window is then a fact
of the calendar (which weekday it is, which regions are awake), not a sample to test against
training or against other days: the engine skips its distribution and value-share tests and keeps
the checks that a clock cannot fail (missing, unseen, schema, parity, a value never seen in
training) and the clock-shift check, which such a feature serves best.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.core.reference.profile import CategoricalProfile, NumericProfile, Reference, coarse_groups

__all__ = ["build_hourly", "clock_features", "mix_profiles", "hour_weights", "MIN_ROWS", "CLOCK_SHARE"]

MIN_ROWS = 30
HOURS = 24
CLOCK_SHARE = 0.95  # within-(calendar hour, slice) share of the most common value of a clock feature
SLICE_SHARE = 0.8  # a feature the slice alone fixes this well is a slice attribute, not a clock one


def _numeric_on_edges(x: np.ndarray, g: NumericProfile) -> NumericProfile | None:
    n_all = len(x)
    fin = x[np.isfinite(x)]
    n = len(fin)
    if n < MIN_ROWS:
        return None
    edges = np.asarray(g.edges)
    freqs = np.bincount(np.searchsorted(edges, fin, side="right"), minlength=len(edges) + 1) / n
    vals, cnt = np.unique(fin, return_counts=True)
    k = int(np.argmax(cnt))
    nz = np.abs(fin[fin != 0])
    la = np.log(nz) if nz.size else None
    q1, med, q3 = np.quantile(fin, [0.25, 0.5, 0.75])
    return NumericProfile(
        count=n_all, missing=n_all - n, edges=[], freqs=freqs.tolist(), min=float(fin.min()), max=float(fin.max()),
        median=float(med), iqr=float(q3 - q1), mean=float(fin.mean()), std=float(fin.std()),
        top_value=float(vals[k]), top_share=float(cnt[k] / n),
        log_abs_mean=float(la.mean()) if la is not None else None, log_abs_std=float(la.std()) if la is not None else None,
        zero_share=float((fin == 0).mean()), integer=g.integer,
    )


def _categorical_on_vocab(v: Sequence[Any], g: CategoricalProfile) -> CategoricalProfile | None:
    vals = [x for x in v if x is not None]
    n = len(vals)
    if n < MIN_ROWS:
        return None
    uniq, cnt = np.unique(np.asarray([str(x) for x in vals], dtype=object), return_counts=True)
    shares = dict(zip(uniq.tolist(), (cnt / n).tolist(), strict=True))
    cats = {c: shares.get(c, 0.0) for c in g.categories}
    k = int(np.argmax(cnt))
    return CategoricalProfile(count=len(v), missing=len(v) - n, categories=cats,
                              other_share=max(0.0, 1.0 - sum(cats.values())), n_distinct=len(uniq),
                              top_value=str(uniq[k]), top_share=float(cnt[k] / n))


def _is_seasonal(profiles: list[Any], g: Any) -> bool:
    if isinstance(g, NumericProfile):
        grp = coarse_groups(g.edges)
        ref = np.bincount(grp, weights=np.asarray(g.freqs), minlength=int(grp.max()) + 1)
        for p in profiles:
            if p is None:
                continue
            cur = np.bincount(grp, weights=np.asarray(p.freqs), minlength=int(grp.max()) + 1)
            a, b = np.clip(ref, 1e-4, None), np.clip(cur, 1e-4, None)
            psi = float(np.sum((b - a) * np.log(b / a)))
            miss = abs(p.missing_rate - g.missing_rate)
            if psi >= max(0.05, 3 * (len(ref) - 1) / max(p.n, 1)) or miss >= max(0.05, 3 / math.sqrt(max(p.count, 1))):
                return True
        return False
    for p in profiles:
        if p is None:
            continue
        linf = max([abs(p.categories.get(c, 0.0) - s) for c, s in g.categories.items()] + [0.0])
        if linf >= max(0.05, 3 / math.sqrt(max(p.n, 1))):
            return True
    return False


def build_hourly(columns: dict[str, Any], ts: np.ndarray, ref: Reference, slice_columns: Sequence[str] = ()) -> None:
    """Add hour-of-day profiles of the seasonal features to ``ref`` (in place)."""
    ok = np.isfinite(ts)
    if ok.sum() < MIN_ROWS * 4:
        return
    hour = np.full(len(ts), -1, dtype=np.int64)
    hour[ok] = ((ts[ok] // 3600) % HOURS).astype(np.int64)
    idx_by_hour = [np.flatnonzero(hour == h) for h in range(HOURS)]
    counts = [int(len(i)) for i in idx_by_hour]
    feats: dict[str, Any] = dict(ref.features)
    if ref.score is not None and ref.score_column and ref.score_column in columns:
        feats["__score__"] = ref.score
    hourly: dict[str, list[Any]] = {}
    for name, g in feats.items():
        col = columns[ref.score_column] if name == "__score__" else columns.get(name)
        if col is None:
            continue
        profs = [_one(col, idx, g) for idx in idx_by_hour]
        if _is_seasonal(profs, g):
            hourly[name] = profs
    ref.hourly = {"counts": counts, "features": hourly}
    if not hourly or not slice_columns:
        return
    out: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for dim in slice_columns:
        sv = columns.get(dim)
        if sv is None or dim not in ref.slices:
            continue
        sv_arr = np.asarray([str(x) if x is not None else None for x in sv], dtype=object)
        for val, sp in ref.slices[dim].items():
            mask = sv_arr == val
            per: dict[str, list[Any]] = {}
            for name in hourly:
                g = sp.score if name == "__score__" else sp.features.get(name)
                if g is None:
                    continue
                col = columns[ref.score_column] if name == "__score__" else columns[name]
                per[name] = [_one(col, np.flatnonzero(mask & (hour == h)), g, edges_from=feats[name]) for h in range(HOURS)]
            out.setdefault(dim, {})[val] = per
    ref.hourly["slices"] = out


def clock_features(columns: dict[str, Any], ts: np.ndarray, names: Sequence[str], slice_columns: Sequence[str] = ()) -> list[str]:
    """Features whose value the calendar hour (with one slice value) fixes (see the module docstring).

    >>> ts = np.arange(2000) * 180.0  # 100 hours, 20 rows an hour
    >>> region = np.array(["a", "b"] * 1000, dtype=object)
    >>> local = (ts // 3600 + np.where(region == "a", 0, 5)) % 24
    >>> noise = np.random.default_rng(0).integers(0, 24, 2000).astype(float)
    >>> clock_features({"local": local, "noise": noise, "region": region}, ts, ["local", "noise"], ["region"])
    ['local']
    """
    ok = np.isfinite(ts)
    if ok.sum() < MIN_ROWS * 4:
        return []
    bucket = np.unique(np.where(ok, ts // 3600, -1), return_inverse=True)[1].astype(np.int64)
    groupings: list[tuple[np.ndarray, np.ndarray | None]] = [(bucket, None)]
    for dim in slice_columns:
        sv = columns.get(dim)
        if sv is None:
            continue
        code = np.unique(np.asarray([str(x) for x in sv], dtype=object), return_inverse=True)[1].astype(np.int64)
        groupings.append((bucket * (int(code.max()) + 1) + code, code))
    out = []
    for name in names:
        col = columns.get(name)
        if col is None:
            continue
        a = np.asarray(col)
        if a.dtype.kind == "f":
            known = ok & np.isfinite(a)
            vals = np.unique(a[known], return_inverse=True)[1]
        else:
            known = ok & np.array([x is not None for x in a.tolist()], dtype=bool)
            vals = np.unique(np.asarray([str(x) for x in a[known].tolist()], dtype=object), return_inverse=True)[1]
        n = int(known.sum())
        if n < MIN_ROWS * 4 or np.bincount(vals).max() / n >= 0.5:
            continue  # too few values to judge, or mostly one value anyway
        for group, slice_code in groupings:
            if _modal_share(group[known], vals) >= CLOCK_SHARE and (
                    slice_code is None or _modal_share(slice_code[known], vals, min_size=1) < SLICE_SHARE):
                out.append(name)
                break
    return out


def _modal_share(group: np.ndarray, vals: np.ndarray, min_size: int = 2) -> float:
    """Share of rows holding their group's most common value (groups of at least ``min_size`` rows)."""
    pair = np.unique(group * (int(vals.max()) + 1) + vals, return_counts=True)
    g_of_pair = pair[0] // (int(vals.max()) + 1)
    size = np.bincount(group)
    modal = np.zeros(len(size))
    np.maximum.at(modal, g_of_pair, pair[1])
    use = size >= min_size
    return float(modal[use].sum() / size[use].sum()) if use.any() and size[use].sum() >= MIN_ROWS * 4 else 0.0


def _one(col: Any, idx: np.ndarray, g: Any, edges_from: Any = None) -> Any:
    if isinstance(g, NumericProfile):
        base = edges_from if edges_from is not None else g
        x = np.asarray(col, dtype=np.float64)[idx] if len(idx) else np.empty(0)
        return _numeric_on_edges(x, base)
    arr = np.asarray(col, dtype=object)
    return _categorical_on_vocab(arr[idx].tolist() if len(idx) else [], g)


def hour_weights(start: float, end: float, counts: Sequence[int]) -> np.ndarray:
    """Training-volume weights of the UTC hours a window covers (sum to 1).

    >>> hour_weights(3600 * 5, 3600 * 6, [1] * 24).nonzero()[0].tolist()
    [5]
    """
    w = np.zeros(HOURS)
    if end - start >= 86400:
        w[:] = np.asarray(counts, dtype=np.float64)
    else:
        t = start
        while t < end:
            h = int((t // 3600) % HOURS)
            nxt = min(end, (t // 3600 + 1) * 3600)
            w[h] += (nxt - t) * counts[h]
            t = nxt
    s = w.sum()
    return w / s if s > 0 else w


def mix_profiles(profiles: Sequence[Any], weights: np.ndarray, global_profile: Any) -> Any:
    """Mixture of hourly profiles (None where any covered hour lacks a profile)."""
    sel = [(p, float(w)) for p, w in zip(profiles, weights, strict=True) if w > 0]
    if not sel or any(p is None for p, _ in sel):
        return None
    if len(sel) == 1:
        p = sel[0][0]
        if isinstance(p, NumericProfile) and not p.edges:
            return NumericProfile(**{**p.__dict__, "edges": list(global_profile.edges)})
        return p
    W = sum(w for _, w in sel)
    if isinstance(global_profile, NumericProfile):
        freqs = sum(np.asarray(p.freqs) * w for p, w in sel) / W
        miss = sum(p.missing_rate * w for p, w in sel) / W
        count = int(round(sum(p.count for p, _ in sel)))
        lm = [(p.log_abs_mean, p.log_abs_std, w) for p, w in sel if p.log_abs_mean is not None]
        if lm:
            lw = sum(w for *_, w in lm)
            mean = sum(m * w for m, _, w in lm) / lw
            var = sum((s * s + m * m) * w for m, s, w in lm) / lw - mean * mean
            lam, las = mean, math.sqrt(max(var, 0.0))
        else:
            lam, las = None, None
        top = global_profile.top_value
        top_share = sum((p.top_share if p.top_value == top else 0.0) * w for p, w in sel) / W
        return NumericProfile(
            count=count, missing=int(round(miss * count)), edges=list(global_profile.edges), freqs=freqs.tolist(),
            min=min(p.min for p, _ in sel), max=max(p.max for p, _ in sel),
            median=float(np.median([p.median for p, _ in sel])), iqr=float(np.median([p.iqr for p, _ in sel])),
            mean=sum(p.mean * w for p, w in sel) / W, std=float(np.sqrt(sum(p.std**2 * w for p, w in sel) / W)),
            top_value=top, top_share=top_share, log_abs_mean=lam, log_abs_std=las,
            zero_share=sum(p.zero_share * w for p, w in sel) / W, integer=global_profile.integer,
        )
    cats = {c: sum(p.categories.get(c, 0.0) * w for p, w in sel) / W for c in global_profile.categories}
    count = int(round(sum(p.count for p, _ in sel)))
    miss = sum(p.missing_rate * w for p, w in sel) / W
    return CategoricalProfile(count=count, missing=int(round(miss * count)), categories=cats,
                              other_share=max(0.0, 1.0 - sum(cats.values())), n_distinct=global_profile.n_distinct,
                              top_value=global_profile.top_value, top_share=cats.get(global_profile.top_value or "", 0.0))
