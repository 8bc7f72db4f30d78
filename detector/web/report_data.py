"""What the report reads from the engine and the inputs before it draws: human overrides tapped from the
prediction messages (:class:`OverrideTally`), incidents from the alert timeline and the open alerts
(:func:`incidents_of`), the reliability diagram's points (:func:`reliability_points`) and the slices that
cost the most performance (:func:`slice_losses`)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson

from detector.web.alert_text import alert_ts, short_ts
from detector.web.gates import (
    model_cohorts,
    outcome_stats,
)

__all__ = ["OverrideTally", "incidents_of", "reliability_points", "slice_losses"]


class OverrideTally:
    """Counts decisions and human overrides per model from raw prediction messages.

    The core does not keep ``override`` (it is not a detection input), so the report taps the
    messages on their way into the engine. Reasons are bounded (top 20 + "(other)").
    """

    def __init__(self, no_action: Iterable[str] = ()) -> None:
        self.no_action = {str(s).lower() for s in no_action}
        self.models: dict[str, dict[str, Any]] = {}
        self.t_min = math.inf
        self.t_max = -math.inf

    def _m(self, name: str) -> dict[str, Any]:
        m = self.models.get(name)
        if m is None:
            m = self.models[name] = {"events": 0, "decided": 0, "acted": 0, "overrides": 0, "overrides_acted": 0,
                                     "reasons": Counter()}
        return m

    def feed(self, raws: Sequence[bytes]) -> None:
        ts: list[Any] = []
        for raw in raws:
            try:
                o = orjson.loads(raw)
            except (orjson.JSONDecodeError, TypeError):
                continue
            for e in o if isinstance(o, list) else (o,):
                if not isinstance(e, dict) or not isinstance(e.get("model"), str):
                    continue
                m = self._m(e["model"])
                m["events"] += 1
                ts.append(e.get("ts"))
                d = e.get("decision")
                acted = d is not None and str(d).lower() not in self.no_action
                if d is not None:
                    m["decided"] += 1
                    m["acted"] += acted
                ov = e.get("override")
                if ov not in (None, "", False):
                    m["overrides"] += 1
                    m["overrides_acted"] += acted
                    reason = str(ov)[:80]
                    rs: Counter[str] = m["reasons"]
                    if reason in rs or len(rs) < 20:
                        rs[reason] += 1
                    else:
                        rs["(other)"] += 1
        if ts:
            try:
                from detector.core.inputs.timeparse import parse_timestamps

                arr = parse_timestamps(ts)
                arr = arr[np.isfinite(arr)]
                if arr.size:
                    self.t_min = min(self.t_min, float(arr.min()))
                    self.t_max = max(self.t_max, float(arr.max()))
            except Exception:  # noqa: BLE001 - timestamps are the engine's business; this is a nicety
                pass

    def tap(self, engine: Any) -> None:
        """Wrap ``engine.ingest_predictions`` so every message is also counted here."""
        orig = engine.ingest_predictions

        def ingest(raws: Sequence[bytes]) -> Any:
            self.feed(raws)
            return orig(raws)

        engine.ingest_predictions = ingest


def incidents_of(engine: Any, model: str, timeline_alerts: Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """One record per incident (alert_id) of ``model``: the firing alert, start/fired/resolved times, open?

    Built from the alert stream (firing + resolved events) and the engine's currently firing
    alerts (which also covers a snapshot without an alert file).
    """
    by_id: dict[str, dict[str, Any]] = {}
    for a in timeline_alerts or ():
        if a.get("model") != model or not a.get("alert_id"):
            continue
        rec = by_id.setdefault(a["alert_id"], {"alert": None, "fired": math.nan, "resolved": math.nan, "start": math.nan})
        t = alert_ts(a)
        if a.get("state") == "firing":
            if rec["alert"] is None or not t >= rec["fired"]:
                rec["alert"], rec["fired"] = a, t
                rec["start"] = _window_start(a, t)
        elif a.get("state") == "resolved":
            rec["resolved"] = t
            if rec["alert"] is None:
                rec["alert"] = a
    firing_ids = set()
    for a, first_start in _firing_with_start(engine, model):
        aid = a.get("alert_id")
        if not aid:
            continue
        firing_ids.add(aid)
        rec = by_id.get(aid)
        if rec is None or rec["alert"] is None or rec["alert"].get("state") != "firing":
            t = alert_ts(a)
            start = first_start if first_start is not None and math.isfinite(first_start) else t
            by_id[aid] = {"alert": a, "fired": t, "resolved": math.nan, "start": start}
    out = []
    for aid, rec in by_id.items():
        a = rec["alert"]
        if a is None:
            continue
        is_open = aid in firing_ids or not math.isfinite(rec["resolved"])
        out.append({"id": aid, "alert": a, "start": rec["start"], "fired": rec["fired"], "resolved": rec["resolved"],
                    "open": is_open, "action": a.get("action", ""), "cause": a.get("cause", ""), "kind": a.get("kind", "")})
    return sorted(out, key=lambda r: (r["start"] if math.isfinite(r["start"]) else math.inf, r["kind"]))


def _firing_with_start(engine: Any, model: str) -> list[tuple[dict[str, Any], float | None]]:
    """Currently firing alerts of ``model`` with the start of their first breaching window.

    The firing alert's ``window`` is updated as the incident goes on, so the incident start comes
    from the alert state (``first_start``) when the alert manager exposes it.
    """
    state = getattr(engine.alerts, "state", None)
    if isinstance(state, dict):
        out = [(s.last, getattr(s, "first_start", None)) for k, s in state.items()
               if getattr(s, "firing", False) and k and k[0] == model and isinstance(getattr(s, "last", None), dict)]
        if out:
            return out
    return [(a, None) for a in engine.alerts.firing(model)]


def _window_start(a: dict[str, Any], t: float) -> float:
    w = a.get("window") or {}
    try:
        s = alert_ts({"ts": w.get("start")})
    except Exception:  # noqa: BLE001
        s = math.nan
    return s if math.isfinite(s) else t


def reliability_points(engine: Any, model: str) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """(current, baseline) reliability points (mean score, observed rate, n), all traffic."""

    def pts(cs: list[Any]) -> list[tuple[float, float, float]]:
        if not cs:
            return []
        rel = sum(np.asarray(c.rel[0], dtype=np.float64) for c in cs)
        return [(float(r[1] / r[0]), float(r[2] / r[0]), float(r[0])) for r in rel if r[0] > 0]

    try:
        cur, base, _m = model_cohorts(engine, model)
        if cur:
            return pts(cur), pts(base)
    except Exception:  # noqa: BLE001 - fall back to what the stats / alerts carry
        pass
    st = outcome_stats(engine, model)
    raw = st.get("reliability") or ((st.get("slices") or {}).get("") or {}).get("reliability")
    if not raw:
        for a in engine.alerts.firing(model):
            raw = ((a.get("evidence") or {}).get("current") or {}).get("reliability")
            if raw:
                break
    out = []
    for row in raw or []:
        try:
            _lo, n, ms_, my = row[:4]
            out.append((float(ms_), float(my), float(n)))
        except (TypeError, ValueError):
            continue
    return out, []


def slice_losses(engine: Any, model: str, limit: int = 8) -> dict[str, Any] | None:
    """Slices ranked by their contribution to the performance loss in excess of the clean baseline.

    The loss is the squared error of the score (Brier: a proper scoring rule, so it sees
    calibration and ranking damage alike); with costs configured, the excess expected cost at the
    threshold in force is reported next to it. A slice's excess is its current loss minus what its
    own baseline loss rate gives on its current labelled volume; its share is that excess over the
    all-traffic excess (per slice dimension the shares add up to about 100%). Without clean
    baseline cohorts the raw loss is ranked.
    """
    from detector.core.outcomes.cohort import C

    cur, base, m = model_cohorts(engine, model)
    if not cur or m is None:
        return None
    lay = m.layout
    costs = getattr(m, "costs", (None, None, None)) or (None, None, None)
    cfp, cfn = costs[0], costs[1]
    use_cost = cfp is not None and cfn is not None

    def sums(cs: list[Any]) -> np.ndarray:
        return sum(np.asarray(c.cnt, dtype=np.float64) for c in cs)

    def excess(lc: np.ndarray, nc: np.ndarray, lb: np.ndarray | None, nb: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
        if lb is None or nb is None:
            return lc, np.zeros_like(lc), 0.0
        rate0 = lb[0] / nb[0] if nb[0] > 0 else 0.0
        rate = np.where(nb >= 30, lb / np.where(nb > 0, nb, 1.0), rate0)
        return lc - nc * rate, rate, float(rate0)

    cc = sums(cur)
    cb = sums(base) if base else None
    n_sc = cc[:, C["sl"]]
    if n_sc[0] <= 0:
        return None

    def sq(cnt: np.ndarray) -> np.ndarray:
        return np.maximum(cnt[:, C["s2"]] - 2 * cnt[:, C["sy"]] + cnt[:, C["spos"]], 0.0)

    ex, rate, rate0 = excess(sq(cc), n_sc, sq(cb) if cb is not None else None, cb[:, C["sl"]] if cb is not None else None)
    if use_cost:
        cost_c = cfp * cc[:, C["fp"]] + cfn * cc[:, C["fn"]]
        cost_b = cfp * cb[:, C["fp"]] + cfn * cb[:, C["fn"]] if cb is not None else None
        cex, _cr, _c0 = excess(cost_c, cc[:, C["lab"]], cost_b, cb[:, C["lab"]] if cb is not None else None)
    total = float(ex[0])
    rows = []
    for r in lay.active_rows().tolist():
        if r == 0 or n_sc[r] < 20:
            continue
        rows.append({"slice": lay.row_label(int(r)), "labelled": int(n_sc[r]), "traffic_share": float(n_sc[r] / n_sc[0]),
                     "loss_rate": float(sq(cc)[r] / n_sc[r]), "baseline_rate": float(rate[r]) if base else None,
                     "excess": float(ex[r]), "loss_share": float(ex[r] / total) if total > 0 else 0.0,
                     "excess_cost": float(cex[r]) if use_cost else None})
    rows.sort(key=lambda d: -d["excess"])
    return {"metric": "Brier score (squared error of the score)", "baseline": bool(base),
            "rows": [d for d in rows if d["excess"] > 0][:limit], "total_excess": total,
            "loss_rate": float(sq(cc)[0] / n_sc[0]), "baseline_rate": rate0 if base else None,
            "excess_cost": float(cex[0]) if use_cost else None, "cohorts": len(cur), "baseline_cohorts": len(base),
            "period": (short_ts(cur[0].start), short_ts(cur[-1].end))}
