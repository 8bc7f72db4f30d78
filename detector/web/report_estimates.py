"""The report's "performance before labels" section: what the scores say performance will be, and how right that was.

Per model whose reference has a calibration map (:mod:`detector.core.outcomes.estimate.monitor`):
one row per metric with the last closed window's estimate and stated error (all traffic), the
trailing day the ``estimated_*`` alert tests against training's score mix at production's
decisions, and - once labels matured - realised minus estimated and the RMS of that gap in stated
errors (about 1 when the stated error is honest). Then the ``estimated_*`` incidents and the last
window's estimates per slice (the ten busiest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detector.web import esc
from detector.web.alert_text import short_ts
from detector.web.svg import fmt_num, fmt_pct

__all__ = ["estimates_html"]

MAX_SLICES = 10


def estimates_html(engine: Any, model: str, incidents: Sequence[dict[str, Any]]) -> str:
    ms = engine.models.get(model)
    pe = getattr(ms, "estimate", None)
    if pe is None:
        return ('<p class="muted">not estimated: the reference has no calibration map (build it with '
                "<code>skewwatch baseline --label-column ... --score-column ...</code> on labelled, held-out scores)</p>")
    last = pe.last or {}
    if not last:
        return '<p class="muted">no window closed yet</p>'
    metrics = tuple(pe.est.metrics)
    fmt = fmt_pct if getattr(pe.est, "ratio", True) else fmt_num  # shares, or errors in the target's units
    allt = (last.get("slices") or {}).get("") or {}
    day = last.get("day") or {}
    ref = day.get("reference") or {}
    errors = pe.errors()
    rows = []
    for m in metrics:
        e = errors.get(m) or {}
        rows.append(f"<tr><td>{esc(m)}</td><td class=\"num\">{fmt(allt.get(m))} ± {fmt(allt.get(f'{m}_se'))}</td>"
                    f"<td class=\"num\">{fmt(day.get(m))}</td><td class=\"num\">{fmt(ref.get(m))}</td>"
                    f"<td class=\"num\">{fmt(e.get('gap'))}</td><td class=\"num\">{fmt_num(e.get('rms_z'))}"
                    f"{' (' + str(e['windows']) + ' windows)' if e.get('windows') else ''}</td></tr>")
    head = (f'<p class="muted">expected from the scores through training\'s calibration map, before any label; '
            f"{'trailing day tested' if day else 'the trailing day is tested once a full day has been seen'}. "
            "An estimate assumes a score still means what it meant in training: a gap to the realised value that "
            "grows while inputs are stable is concept drift, which only the labels show.</p>")
    table = ('<table class="small" data-estimates="metrics"><tr><th>metric</th><th class="num">last window</th>'
             '<th class="num">trailing day</th><th class="num">training (same decisions)</th>'
             '<th class="num">realised − estimated</th><th class="num">RMS z</th></tr>' + "".join(rows) + "</table>")
    incs = [r for r in incidents if str(r["alert"].get("statistic", "")).startswith("estimated_")]
    if incs:
        ir = "".join(f"<tr><td>{esc(short_ts(r['start']))}</td><td>{esc(r['alert'].get('statistic', ''))}</td>"
                     f"<td class=\"num\">{fmt_num(r['alert'].get('value'))}</td><td>{esc(r['alert'].get('cause', ''))}</td>"
                     f"<td>{'open' if r['open'] else 'resolved'}</td></tr>" for r in incs)
        table += ('<table class="small" data-estimates="incidents"><tr><th>from</th><th>statistic</th>'
                  '<th class="num">value</th><th>cause</th><th>state</th></tr>' + ir + "</table>")
    else:
        table += "<p>no estimated performance drop</p>"
    sl = sorted(((k, v) for k, v in (last.get("slices") or {}).items() if k), key=lambda kv: -(kv[1].get("predictions") or 0))
    if sl:
        cells = "".join(f'<th class="num">{esc(m)}</th>' for m in metrics)
        body = "".join(f"<tr><td>{esc(k)}</td><td class=\"num\">{fmt_num(v.get('predictions'))}</td>"
                       + "".join(f'<td class="num">{fmt(v.get(m))}</td>' for m in metrics) + "</tr>"
                       for k, v in sl[:MAX_SLICES])
        table += (f'<table class="small" data-estimates="slices"><tr><th>slice (last window)</th><th class="num">predictions'
                  f"</th>{cells}</tr>{body}</table>")
    return head + table

