"""One closed window as pseudo-rows, and the reference profile of each pseudo-row.

A *pseudo-row* is all traffic, a slice row, or the complement of a slice row (all traffic minus
that slice). :func:`build_view` lays a window's counters out that way for every check in this
package; :func:`_ref_rows` gives each pseudo-row its training profile (complements derived from
global - slice where the profile allows it), cached on the layout: the same rows, hours and
feature give the same profiles every window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.inputs.layout import Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.inputs.window import RATE, WindowCounts
from detector.core.reference.hourly import hour_weights, mix_profiles
from detector.core.reference.profile import NumericProfile
from detector.core.settings import DetectorSettings

__all__ = ["View", "build_view", "is_clock"]


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



def _block(v: View, j: int) -> tuple[int, int]:
    b = v.extra["blocks"][j]
    return b.start, b.stop - 1
