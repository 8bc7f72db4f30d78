"""The report's "joint structure" section: multivariate drift incidents and the features behind them.

A ``multivariate_drift`` alert names no feature: its evidence lists the features whose residual
(what the reference's components fail to explain) grew most. This section shows, per incident,
those features with their residual ratio, and otherwise the last window's reconstruction error
against training, so a reader sees that the check ran and what it saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detector.web import esc
from detector.web.alert_text import short_ts
from detector.web.svg import fmt_num

__all__ = ["joint_html"]


def joint_html(engine: Any, model: str, incidents: Sequence[dict[str, Any]]) -> str:
    ms = engine.models.get(model)
    ref = ms.layout.ref if ms is not None else engine.reference_for(model)
    mv = getattr(ref, "multivariate", None) or {}
    if not mv:
        return ('<p class="muted">not watched: the reference has no joint structure (fewer than two numeric features, '
                "too few rows, or built before this check existed; rebuild it with <code>skewwatch baseline</code>)</p>")
    head = (f'<p class="muted">{len(mv["features"])} numeric features, {len(mv["components"])} components '
            f'({"standardised by hour of day" if mv.get("hourly") else "no time column: compared with the same hour of previous days"})</p>')
    incs = [r for r in incidents if r["kind"] == "multivariate_drift"]
    if not incs:
        last = [v for (k, _s, _f, sk), (v, _sl, _t) in (ms.last_stats.items() if ms is not None else [])
                if k == "multivariate_drift" and sk == ""]
        seen = f"last window: reconstruction error {fmt_num(last[-1])}x the reference's" if last else "not tested yet"
        return head + f"<p>no change in how the features move together ({esc(seen)})</p>"
    rows = []
    for r in incs:
        a = r["alert"]
        ev = a.get("evidence") or {}
        feats = ", ".join(f"{esc(f.get('feature'))} ({fmt_num(f.get('residual_ratio'))}x)" for f in ev.get("features", []))
        src = (ev.get("reference") or {}).get("source", "")
        rows.append(f"<tr><td>{esc(short_ts(r['start']))}</td><td>{esc(_slice(a.get('slice')))}</td>"
                    f"<td class=\"num\">{fmt_num(a.get('value'))}</td><td>{esc(src)}</td><td>{feats}</td>"
                    f"<td>{esc(a.get('cause', ''))}</td><td>{'open' if r['open'] else 'resolved'}</td></tr>")
    return head + ('<table class="small"><tr><th>from</th><th>slice</th><th class="num">error ratio</th><th>vs</th>'
                   "<th>features that no longer fit (residual ratio)</th><th>cause</th><th>state</th></tr>"
                   + "".join(rows) + "</table>")


def _slice(sl: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(sl.items())) if isinstance(sl, dict) and sl else "all traffic"
