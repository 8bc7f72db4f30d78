"""Score one scenario's alert stream against its fault's expectation (pure: no I/O).

Definitions (SPEC.md, "Scoring"):

* only ``firing`` alerts count; their order in the stream is the order a user sees them;
* an alert is **after the onset** when its window ends after the onset;
* it becomes **visible** at the latest of its own window end (plus the label age stated in its
  evidence, for outcome alerts evaluated on matured cohorts) and the window ends of every alert
  before it in the stream: an outcome or parity alert about an early cohort is only emitted
  once the stream has moved on, and the stream order bounds when (a lower bound of when
  ``replay`` emitted it; a driver that evaluates outcomes and parity only at the end of a large
  batch emits them that much later). ``delay_h`` is measured to this time; ``window_delay_h``
  to the window end alone;
* **caught**: a firing alert after the onset that matches the expected kind (and feature and
  slice where given) and is visible within the deadline;
* **first alert right**: the first firing alert after the onset has an expected cause
  (``first_cause_ok``, the headline) and an expected kind (``first_kind_ok``);
* **false alarms**: firing alerts before the onset plus alerts after it that are not related to
  the fault (not the expected kind, not on the fault's feature, not a listed consequence).

>>> exp = {"kinds": ["unit_shift"], "causes": ["pipeline_skew"], "feature": "amount", "slices": None, "related": []}
>>> meta = {"onset": 100.0, "deadline_h": 24.0, "expect": exp, "days": 14.0, "start": 0.0}
>>> a = {"state": "firing", "kind": "unit_shift", "feature": "amount", "slice": {}, "cause": "pipeline_skew",
...      "ts": "1970-01-01T01:00:00Z", "window": {"start": "1970-01-01T00:00:00Z", "end": "1970-01-01T01:00:00Z"}}
>>> r = score(meta, [a])
>>> r["caught"], r["delay_h"], r["first_cause_ok"], r["false_alarms"]
(True, 0.9722, True, 0)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["score", "parse_ts", "matches", "related", "OUTCOME_KINDS"]

OUTCOME_KINDS = frozenset({"calibration", "performance", "label_drift", "concept_drift", "label_delay"})
_AGE_KEYS = ("label_age_s", "horizon_s", "maturity_s")


def parse_ts(s: Any) -> float:
    if isinstance(s, int | float):
        return float(s)
    return datetime.fromisoformat(str(s).replace("Z", "+00:00")).timestamp()


def _end(a: dict[str, Any]) -> float:
    w = a.get("window") or {}
    return parse_ts(w.get("end") or a["ts"])


def _own_visible(a: dict[str, Any]) -> float:
    t = max(_end(a), parse_ts(a["ts"]))
    if a.get("kind") in OUTCOME_KINDS:
        ev = a.get("evidence") or {}
        for src in (ev, ev.get("current") or {}):
            for k in _AGE_KEYS:
                v = src.get(k) if isinstance(src, dict) else None
                if isinstance(v, int | float):
                    return max(t, _end(a) + float(v))
    return t


def _slice_ok(a: dict[str, Any], slices: list[dict[str, str]] | None) -> bool:
    return slices is None or (a.get("slice") or {}) in slices


def matches(a: dict[str, Any], exp: dict[str, Any]) -> bool:
    """The alert is the expected one (kind, and feature / slice where the fault names them)."""
    return (a.get("kind") in exp["kinds"]
            and (exp.get("feature") is None or a.get("feature") == exp["feature"])
            and _slice_ok(a, exp.get("slices")))


def related(a: dict[str, Any], exp: dict[str, Any]) -> bool:
    """Expected (in any slice), on the fault's feature, or a listed consequence: not a false alarm."""
    if a.get("kind") in exp["kinds"]:
        return True
    if exp.get("feature") is not None and a.get("feature") == exp["feature"]:
        return True
    return a.get("kind") in set(exp.get("related") or ())


def _brief(a: dict[str, Any]) -> str:
    sl = ",".join(f"{k}={v}" for k, v in sorted((a.get("slice") or {}).items()))
    feat = a.get("feature") or "-"
    return f"{a.get('kind')}/{feat}" + (f"[{sl}]" if sl else "") + f" ({a.get('cause')})"


def score(meta: dict[str, Any], alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """Scenario result: caught, delay, first alert, false alarms (see the module docstring)."""
    firing = []
    horizon = float("-inf")
    for a in alerts:  # stream order
        vis = max(_own_visible(a), horizon)
        horizon = max(horizon, _end(a))
        if a.get("state") == "firing":
            firing.append((a, vis))
    days = float(meta["days"])
    onset = meta.get("onset")
    if onset is None:
        return {"clean": True, "false_alarms": len(firing), "per_14d": round(len(firing) * 14.0 / days, 2),
                "false_alarm_list": [_brief(a) for a, _ in firing][:20]}
    exp = meta["expect"]
    deadline = float(meta["deadline_h"]) * 3600.0
    pre = [a for a, _ in firing if _end(a) <= onset]
    post = [(a, v) for a, v in firing if _end(a) > onset]
    hits = [(a, v) for a, v in post if matches(a, exp)]
    in_time = [(a, v) for a, v in hits if v - onset <= deadline]
    hit = in_time[0] if in_time else (hits[0] if hits else None)
    first = post[0][0] if post else None
    unrelated = [a for a, _ in post if not related(a, exp)]
    return {
        "clean": False,
        "caught": bool(in_time),
        "detected_late": bool(hits) and not in_time,
        "delay_h": None if hit is None else round((hit[1] - onset) / 3600.0, 4),
        "window_delay_h": None if hit is None else round((_end(hit[0]) - onset) / 3600.0, 4),
        "alert": None if hit is None else _brief(hit[0]),
        "alert_cause_ok": None if hit is None else hit[0].get("cause") in exp["causes"],
        "first": None if first is None else _brief(first),
        "first_cause_ok": first is not None and first.get("cause") in exp["causes"],
        "first_kind_ok": first is not None and first.get("kind") in exp["kinds"],
        "false_alarms": len(pre) + len(unrelated),
        "false_before_onset": len(pre),
        "false_after_onset": len(unrelated),
        "false_alarm_list": [_brief(a) for a in (pre + unrelated)][:20],
    }
