"""How alerts, slices, causes and times read on the pages (status page, report, checklist, gates)."""

from __future__ import annotations

import math
from typing import Any

from detector.core.decisions import kinds
from detector.core.decisions.alerts import slice_key
from detector.core.inputs.timeparse import format_ts, parse_timestamps
from detector.web import esc

__all__ = ["FEATURE_KINDS", "ACTION_TEXT", "CAUSE_TEXT", "slice_text", "pill", "short_ts", "alert_ts", "breach_ratio"]


#: alert kinds about one feature's values (charted against the reference)
FEATURE_KINDS = kinds.FEATURE_KINDS
ACTION_TEXT = {"fix_data": "fix data", "fix_model": "fix model", "fix_system": "fix system"}
CAUSE_TEXT = {
    "pipeline_skew": "pipeline skew", "covariate_drift": "covariate drift", "label_drift": "label drift",
    "concept_drift": "concept drift", "decision_policy": "decision policy", "serving_health": "serving health",
    "label_quality": "label quality",
}
SEVERITY_ORDER = {"critical": 0, "warning": 1}


def slice_text(sl: dict[str, str] | None) -> str:
    return slice_key(sl) or "all traffic"


def pill(text: str, cls: str | None = None) -> str:
    return f'<span class="pill {esc(cls or text)}">{esc(text)}</span>'


def short_ts(t: float | None) -> str:
    if t is None or not math.isfinite(t):
        return "–"
    return format_ts(t)[:16].replace("T", " ")


def alert_ts(a: dict[str, Any]) -> float:
    """Event time of an alert dict (its ``ts``; NaN when unparsable)."""
    v = a.get("ts")
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(parse_timestamps([v])[0])
    except Exception:  # noqa: BLE001 - any bad value is "unknown time"
        return math.nan


def ago_text(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return ""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def breach_ratio(statistic: str, value: float, threshold: float) -> float:
    """How far a statistic is past its threshold (> 1 = breach), for ranking."""
    if not (math.isfinite(value) and math.isfinite(threshold)) or threshold == 0:
        return 0.0
    if kinds.is_ratio(statistic) and value > 0:
        return max(value, 1.0 / value) / abs(threshold)
    return abs(value) / abs(threshold)
