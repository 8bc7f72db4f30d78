"""The status page: one self-refreshing HTML page for people without Grafana.

``render_status(engine, recent)`` shows, per model, what is firing and why (kind, feature,
slice, severity, cause -> action, summary, since when), a small reference-vs-current chart per
drifted feature (from the last closed window's bin counts), the last window's summary, and the
pipeline health counters; the Kafka worker serves it at ``/status`` and ``skewwatch report
--status-out`` writes it to a file. The page reloads itself every 10 seconds.

The pieces it draws are shared with :mod:`detector.web.report`: a feature's distribution against
training in :mod:`detector.web.distributions`, how alerts, slices and times read in
:mod:`detector.web.alert_text`, and here the firing table and the pipeline counters. The names of
both modules that pages used to import from here still are.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from detector.web import esc, finite, page
from detector.web.alert_text import (
    ACTION_TEXT,
    CAUSE_TEXT,
    FEATURE_KINDS,
    SEVERITY_ORDER,
    ago_text,
    alert_ts,
    breach_ratio,
    pill,
    short_ts,
    slice_text,
)
from detector.web.distributions import (
    Dist,
    chart_targets,
    current_window,
    distribution_svg,
    feature_distribution,
    stats_for,
)
from detector.web.svg import ACTION_COLORS, fmt_num, fmt_pct

__all__ = [
    "render_status", "Dist", "feature_distribution", "distribution_svg", "chart_targets", "alert_rows_html",
    "counters_html", "slice_text", "ACTION_TEXT", "CAUSE_TEXT", "FEATURE_KINDS", "alert_ts",
    "pill", "breach_ratio", "short_ts", "stats_for", "current_window",
]

REFRESH_SECONDS = 10


# --------------------------------------------------------------------------- alerts
def alert_rows_html(alerts: Sequence[dict[str, Any]], now: float | None = None, *, show_model: bool = False) -> str:
    """The firing table: severity, kind, feature, slice, statistic, cause -> action, summary, since."""
    if not alerts:
        return '<p class="empty">Nothing is firing.</p>'
    head = ("<tr>" + ("<th>model</th>" if show_model else "") + "<th>severity</th><th>kind</th><th>feature</th><th>slice</th>"
            "<th class=\"num\">value / threshold</th><th>cause → action</th><th>summary</th><th>since</th></tr>")
    rows = []
    for a in sorted(alerts, key=lambda a: (SEVERITY_ORDER.get(a.get("severity", ""), 2), a.get("kind", ""))):
        t = alert_ts(a)
        since = short_ts(t)
        if now is not None and math.isfinite(t):
            ago = ago_text(now - t)
            if ago:
                since += f'<br><span class="muted small">{ago} ago</span>'
        action = a.get("action", "")
        rows.append(
            '<tr class="alert">' + (f"<td>{esc(a.get('model'))}</td>" if show_model else "")
            + f"<td>{pill(a.get('severity', ''))}</td><td><b>{esc(a.get('kind'))}</b></td><td>{esc(a.get('feature') or '–')}</td>"
            f"<td>{esc(slice_text(a.get('slice')))}</td>"
            f'<td class="num">{esc(a.get("statistic", ""))} {fmt_num(finite(a.get("value")))}<br>'
            f'<span class="muted small">threshold {fmt_num(finite(a.get("threshold")))}</span></td>'
            f"<td>{esc(CAUSE_TEXT.get(a.get('cause', ''), a.get('cause', '')))} → "
            f"{pill(ACTION_TEXT.get(action, action), action)}</td>"
            f'<td class="summary">{esc(a.get("summary", ""))}</td><td class="small nowrap">{since}</td></tr>')
    return f"<table class=\"alerts\">{head}{''.join(rows)}</table>"


def recent_rows_html(recent: Sequence[dict[str, Any]], limit: int = 25) -> str:
    if not recent:
        return '<p class="empty">No alert events yet.</p>'
    rows = []
    for a in list(recent)[-limit:][::-1]:
        rows.append(f"<tr><td class=\"small nowrap\">{short_ts(alert_ts(a))}</td><td>{pill(a.get('state', ''))}</td>"
                    f"<td>{esc(a.get('model'))}</td><td>{esc(a.get('kind'))}</td><td>{esc(a.get('feature') or '–')}</td>"
                    f"<td>{esc(slice_text(a.get('slice')))}</td><td>{esc(a.get('summary', ''))}</td></tr>")
    return ("<table class=\"recent\"><tr><th>time</th><th>state</th><th>model</th><th>kind</th><th>feature</th>"
            f"<th>slice</th><th>summary</th></tr>{''.join(rows)}</table>")


# --------------------------------------------------------------------------- pipeline health
def counters_html(engine: Any, ingest: Any = None) -> str:
    """Pipeline health: events in, rejects by reason, late, windows, checks that raised, alerts, watermark,
    label joins.

    ``ingest``: the engine that decodes the input when it is not the evaluating one (the Kafka
    worker's worker engine next to its aggregator): events, rejects, late events, watermark and
    label joins are read from it, windows and alerts from ``engine``.
    """
    src = ingest if ingest is not None else engine
    c = src.counters
    ev = engine.counters
    invalid = dict(getattr(c, "invalid", {}) or {})
    n_inv = sum(invalid.values())
    hw = float(getattr(src, "high_water", math.nan))
    wm = float(getattr(src, "watermark", math.nan))
    lag = hw - wm if math.isfinite(hw) and math.isfinite(wm) else math.nan
    total = c.predictions + n_inv
    raised = {k: v for k, v in (getattr(ev, "check_errors", None) or {}).items() if v}  # detector.core.guard
    kpis = [
        ("predictions", f"{c.predictions:,}", False), ("labels", f"{c.labels:,}", False),
        ("offline feature events", f"{c.feature_events:,}", False),
        ("rejected events", f"{n_inv:,}" + (f" ({fmt_pct(n_inv / total)})" if total else ""), total > 0 and n_inv / total > 0.01),
        ("late events", f"{c.late:,}", c.late > 0 and c.late > 0.01 * max(c.predictions, 1)),
        ("windows closed", f"{ev.windows_closed:,}", False),
        ("check errors", f"{sum(raised.values()):,}", bool(raised)),
        ("alerts fired / resolved", f"{ev.alerts_fired:,} / {ev.alerts_resolved:,}", False),
        ("newest event", short_ts(hw), False), ("watermark lag", ago_text(lag) or "–", False),
    ]
    mon = getattr(src, "outcomes", None) or getattr(engine, "outcomes", None)
    join = getattr(mon, "join", None)
    if join is not None:
        try:
            kpis.append(("label match rate", fmt_pct(finite(join.match_rate)), (finite(join.match_rate) or 1.0) < 0.9))
            store = join.store
            kpis.append(("labels pending", f"{int(getattr(store, 'pending', len(store))):,}", False))
        except Exception:  # noqa: BLE001 - the label join is optional and still evolving
            pass
    out = ['<div class="kpis">']
    for k, v, bad in kpis:
        out.append(f'<div class="kpi{" bad" if bad else ""}"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>')
    out.append("</div>")
    if invalid:
        out.append('<p class="small">rejected by reason: ' + ", ".join(
            f"<code>{esc(k)}</code> {v:,}" for k, v in sorted(invalid.items(), key=lambda kv: -kv[1])) + "</p>")
    if raised:
        out.append('<p class="small">windows in which a check raised (its results there were skipped; the error log '
                   'names the exception - please report it): ' + ", ".join(
                       f"<code>{esc(k)}</code> {v:,}" for k, v in sorted(raised.items(), key=lambda kv: -kv[1])) + "</p>")
    return "".join(out)


def _model_summary(engine: Any, name: str, ms: Any) -> str:
    summ = getattr(ms, "last_summary", None) or {}
    win = summ.get("window") or {}
    parts = []
    if win:
        parts.append(f"last closed window {short_ts(win.get('_start'))}–{short_ts(win.get('_end'))[11:]} UTC: "
                     f"{int(summ.get('events', 0)):,} predictions, {int(summ.get('findings', 0))} findings")
    else:
        parts.append("no window closed yet")
    open_w = getattr(ms, "windows", {}) or {}
    if open_w:
        n_open = sum(int(w.events) for w in open_w.values())
        parts.append(f"{len(open_w)} open window(s) with {n_open:,} predictions")
    versions = getattr(ms, "versions", {}) or {}
    if versions:
        top = sorted(versions.items(), key=lambda kv: -kv[1])[:3]
        parts.append("model versions: " + ", ".join(f"<code>{esc(v)}</code> ({n:,})" for v, n in top))
    est = estimates_line(ms)  # performance expected before labels
    real = _performance(engine, name)  # realised, in the model's task's terms
    return ('<p class="small muted">' + "; ".join(parts) + "</p>"
            + (f'<p class="small" data-performance="status">{real}</p>' if real else "")
            + (f'<p class="small" data-estimates="status">{est}</p>' if est else ""))


def _performance(engine: Any, name: str) -> str | None:
    from detector.web.task_panels import performance_line

    fn = getattr(getattr(engine, "outcomes", None), "stats", None)
    try:
        st = fn(name) if fn is not None else None
    except Exception:  # noqa: BLE001 - the outcome monitor is optional
        return None
    return performance_line(st) if isinstance(st, dict) else None


def estimates_line(ms: Any) -> str | None:
    """One line for the status page: the last window's estimates (all traffic) and the trailing day vs training."""
    pe = getattr(ms, "estimate", None)
    last = getattr(pe, "last", None) or {}
    allt = (last.get("slices") or {}).get("") or {}
    if not allt:
        return None
    day = last.get("day") or {}
    fmt = fmt_pct if getattr(pe.est, "ratio", True) else fmt_num
    parts = [f"{m} {fmt(allt.get(m))} ± {fmt(allt.get(f'{m}_se'))}" for m in pe.est.metrics]
    text = "expected before labels (last window): " + ", ".join(parts)
    if day:
        ref = day.get("reference") or {}
        text += "; trailing day vs training: " + ", ".join(f"{m} {fmt(day.get(m))} vs {fmt(ref.get(m))}"
                                                            for m in pe.est.metrics)
    return esc(text)


# --------------------------------------------------------------------------- the page
def render_status(engine: Any, recent: Sequence[dict[str, Any]] | None = None, *, refresh: int | None = REFRESH_SECONDS,
                  title: str = "skewwatch status", ingest: Any = None) -> str:
    """The whole status page (HTML) for ``engine``; ``recent`` = latest alert events (dicts).

    ``ingest``: the engine that decodes the input, when it is not ``engine`` (the Kafka worker
    evaluates in its aggregator but counts events, rejects and label joins in its worker engine).
    """
    recent = list(recent or [])
    now_wall = time.time()
    marks = [float(getattr(e, "high_water", math.nan)) for e in (engine, ingest) if e is not None]
    marks = [t for t in marks if math.isfinite(t)]
    ev_now = max(marks) if marks else None
    firing_all = [a for a in engine.alerts.firing() if a]
    body = [f'<header class="top"><h1>{esc(title)}</h1><div class="meta">generated {esc(short_ts(now_wall))} UTC · '
            f"event time {esc(short_ts(ev_now))} UTC · refreshes every {int(refresh or 0)} s</div></header>"]
    n_crit = sum(1 for a in firing_all if a.get("severity") == "critical")
    by_action: dict[str, int] = {}
    for a in firing_all:
        by_action[a.get("action", "")] = by_action.get(a.get("action", ""), 0) + 1
    if firing_all:
        levers = ", ".join(f"{pill(ACTION_TEXT.get(k, k), k)} ×{v}" for k, v in sorted(by_action.items()))
        body.append(f'<div class="verdict {esc(max(by_action, key=lambda k: by_action[k]))}"><p class="headline">'
                    f'{len(firing_all)} incident(s) firing ({n_crit} critical)</p><p>levers: {levers}</p></div>')
    else:
        body.append('<div class="verdict none"><p class="headline">All clear</p><p>No incident is firing.</p></div>')
    if not engine.models:
        body.append('<p class="empty">No model has sent predictions yet.</p>')
    for name in sorted(engine.models):
        ms = engine.models[name]
        firing = [a for a in firing_all if a.get("model") == name]
        body.append(f'<section class="model" id="model-{esc(name)}"><h2>model <code>{esc(name)}</code> · '
                    f"{len(firing)} firing</h2>")
        body.append(_model_summary(engine, name, ms))
        body.append(alert_rows_html(firing, ev_now))
        targets = chart_targets(engine, name, firing, limit=6)
        charts = []
        for feat, sl, als in targets:
            d = feature_distribution(ms, feat, sl)
            if d is None:
                continue
            kind_list = ", ".join(sorted({a.get("kind", "") for a in als}))
            charts.append(f'<div class="chart"><h3>{esc(d.feature)} · {esc(slice_text(sl))}</h3>'
                          f'<p class="cap">{esc(kind_list)} — {esc(d.source)}</p>{distribution_svg(d, width=380, height=190)}'
                          + "".join(f'<p class="cap">{esc(n)}</p>' for n in d.notes) + "</div>")
        if charts:
            body.append(f'<h3>drifted features</h3><div class="charts three">{"".join(charts)}</div>')
        body.append("</section>")
    body.append('<section id="pipeline"><h2>pipeline health</h2>')
    body.append(counters_html(engine, ingest))
    body.append("</section>")
    body.append(f'<section id="recent"><h2>recent alert events</h2>{recent_rows_html(recent)}</section>')
    legend = " ".join(f'<span style="color:{c}">■</span> {esc(ACTION_TEXT[k])}' for k, c in ACTION_COLORS.items())
    footer = (f"skewwatch status page · levers: {legend} · full diagnosis: <code>skewwatch report</code> · "
              "metrics: <code>/metrics</code>")
    return page(title, "\n".join(body), footer=footer, refresh=refresh)
