"""The report's sections as HTML: gates and verdict, levers, the alert timeline, the drifted features'
charts, outcomes (reliability diagram, metrics), the slices that cost the most, and the training audit.
:func:`detector.web.report.render_report` puts them in order."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from detector.core.decisions.alerts import slice_key
from detector.web import esc, finite
from detector.web.alert_text import ACTION_TEXT, CAUSE_TEXT, pill, short_ts, slice_text
from detector.web.distributions import chart_targets, distribution_svg, feature_distribution, stats_for
from detector.web.gates import (
    GATE_LEVER,
    LEVER_TEXT,
    LEVERS,
    Gate,
    duration_text,
    outcome_stats,
)
from detector.web.report_data import reliability_points, slice_losses
from detector.web.svg import ACTION_COLORS, fmt_num, fmt_pct, reliability, share_bars, timeline
from detector.web.task_panels import is_task_model, task_outcomes_html

__all__ = ["live_compare", "gate_html", "verdict_html", "levers_html", "timeline_html", "features_html", "outcomes_html",
           "slices_html", "audit_html"]


def live_compare(replay_alerts: Sequence[dict[str, Any]], live_alerts: Sequence[dict[str, Any]], model: str) -> dict[str, Any]:
    def firing(al: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {a["alert_id"]: a for a in al if a.get("model") == model and a.get("state") == "firing" and a.get("alert_id")}

    r, li = firing(replay_alerts), firing(live_alerts)
    both = sorted(set(r) & set(li))
    return {"both": both, "only_live": [li[k] for k in sorted(set(li) - set(r))],
            "only_replay": [r[k] for k in sorted(set(r) - set(li))], "same": set(r) == set(li)}


def gate_html(g: Gate) -> str:
    ev = "".join(f"<li>{esc(e)}</li>" for e in g.evidence)
    return (f'<div class="gate {g.status}" id="gate-{g.key}" data-gate="{g.key}" data-status="{g.status}">'
            f'<h3>{esc(g.title)} {pill(g.status)}</h3><p class="q">{esc(g.question)}</p><ul>{ev}</ul></div>')


def verdict_html(model: str, v: dict[str, Any], incidents: Sequence[dict[str, Any]]) -> str:
    lever = v["lever"]
    if lever is None:
        head, text = "No gap detected", ("No incident fired and no gate failed: the model sees in serving what it saw in "
                                          "training, and its outcomes hold. Unknown gates below say what data is missing "
                                          "to be sure.")
        cls = "none"
    else:
        head, text = LEVER_TEXT[lever]
        cls = lever
    n_open = sum(1 for r in incidents if r["open"])
    sup = (v["open_by_lever"][lever] or v["by_lever"][lever]) if lever else []
    causes = Counter(r["cause"] for r in sup)
    why = ""
    if sup:
        why = (f"<p><b>Why:</b> {len(sup)} {esc(v['basis'])} point at this lever — "
               + ", ".join(f"{esc(CAUSE_TEXT.get(k, k))} ×{n}" for k, n in causes.most_common()) + ".</p>")
    elif lever:
        why = f"<p><b>Why:</b> {esc(v['basis'])}.</p>"
    others = [k for k in LEVERS if k != lever and v["by_lever"][k]]
    then = ""
    if others:
        then = "<p><b>Then:</b> " + ", ".join(
            f"{pill(ACTION_TEXT[k], k)} ({len(v['by_lever'][k])} incident(s))" for k in others) + "</p>"
    failed = v["failed_gates"]
    gates_txt = ""
    if failed:
        gates_txt = f"<p class=\"small\"><b>Failed gates:</b> {esc(', '.join(failed))}"
        if lever == "fix_data" and any(GATE_LEVER[k] != "fix_data" for k in failed):
            gates_txt += (" — gates downstream of the data (decisioning, replay, adoption) often fail as a consequence; "
                          "re-check them once the data is fixed")
        gates_txt += "</p>"
    return (f'<section class="verdict {cls}" id="verdict-{esc(model)}" data-section="verdict" data-verdict="{cls}">'
            f'<p class="headline">{esc(head)}</p><p>{esc(text)}</p>{why}{then}{gates_txt}'
            f'<p class="small muted">{n_open} open / {len(incidents)} incident(s) in the period</p></section>')


def levers_html(v: dict[str, Any]) -> str:
    cols = []
    for k in LEVERS:
        rs = v["by_lever"][k]
        items = "".join(
            f"<li>{pill('open' if r['open'] else 'resolved', 'firing' if r['open'] else 'resolved')} "
            f"<b>{esc(r['kind'])}</b> {esc(r['alert'].get('feature') or '')} <span class=\"muted\">"
            f"({esc(slice_text(r['alert'].get('slice')))}; {esc(CAUSE_TEXT.get(r['cause'], r['cause']))})</span><br>"
            f"<span class=\"small\">{esc(r['alert'].get('summary', ''))}</span></li>" for r in rs[:8])
        more = f'<p class="small muted">… and {len(rs) - 8} more</p>' if len(rs) > 8 else ""
        cols.append(f'<div class="lever {k}" data-lever="{k}"><h3>{esc(LEVER_TEXT[k][0])} · {len(rs)}</h3>'
                    + (f"<ul>{items}</ul>{more}" if rs else '<p class="empty">no incident</p>') + "</div>")
    return f'<div class="levers">{"".join(cols)}</div>'


def timeline_html(incidents: Sequence[dict[str, Any]], t0: float, t1: float) -> str:
    if not incidents:
        return '<p class="empty">No incident in the period.</p>'
    lanes = []
    for r in incidents:
        a = r["alert"]
        s = r["start"] if math.isfinite(r["start"]) else t0
        e = r["resolved"] if math.isfinite(r["resolved"]) else t1
        color = ACTION_COLORS.get(r["action"], "#7f8c8d")
        tip = (f"{a.get('kind')} {a.get('feature') or ''} ({slice_text(a.get('slice'))}), {a.get('severity')}: "
               f"{a.get('summary', '')}")
        lanes.append({"label": f"{a.get('kind')} · {a.get('feature') or '–'} · {slice_text(a.get('slice'))}",
                      "segments": [(s, e, color, r["open"], tip)]})
    svg = timeline(lanes, t0, t1)
    rows = []
    for r in incidents:
        a = r["alert"]
        rows.append(f"<tr><td>{pill(a.get('severity', ''))}</td><td><b>{esc(a.get('kind'))}</b></td>"
                    f"<td>{esc(a.get('feature') or '–')}</td><td>{esc(slice_text(a.get('slice')))}</td>"
                    f"<td>{esc(CAUSE_TEXT.get(r['cause'], r['cause']))} → {pill(ACTION_TEXT.get(r['action'], r['action']), r['action'])}</td>"
                    f"<td class=\"small nowrap\">{short_ts(r['fired'])}</td>"
                    f"<td class=\"small nowrap\">{'open' if r['open'] else short_ts(r['resolved'])}</td>"
                    f"<td>{esc(a.get('summary', ''))}</td></tr>")
    table = ("<table class=\"incidents\"><tr><th>severity</th><th>kind</th><th>feature</th><th>slice</th>"
             f"<th>cause → action</th><th>fired</th><th>resolved</th><th>summary</th></tr>{''.join(rows)}</table>")
    legend = " ".join(f'<span style="color:{c}">■</span> {esc(ACTION_TEXT[k])}' for k, c in ACTION_COLORS.items())
    return f'<div class="chart">{svg}<p class="cap">{legend} · an arrow = still open at the end</p></div>{table}'


def features_html(engine: Any, model: str, incidents: Sequence[dict[str, Any]]) -> str:
    ms = engine.models.get(model)
    if ms is None:
        return '<p class="empty">No window data for this model.</p>'
    alerts = [r["alert"] for r in incidents]
    targets = chart_targets(engine, model, alerts, extra=2, limit=8)
    out = []
    for feat, sl, als in targets:
        d = feature_distribution(ms, feat, sl)
        if d is None:
            continue
        stats = stats_for(ms, feat, sl)[:5]
        st_rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{esc(s)}</td><td class=\"num\">{fmt_num(v)}</td><td class=\"num\">{fmt_num(t)}</td></tr>"
            for k, s, v, t in stats)
        st_table = (f'<table class="small"><tr><th>kind</th><th>statistic</th><th class="num">value</th>'
                    f'<th class="num">threshold</th></tr>{st_rows}</table>') if stats else ""
        why = "; ".join(sorted({f"{a.get('kind')} ({a.get('severity')})" for a in als})) or \
            "statistic well past its threshold, not (yet) an incident"
        out.append(f'<div class="chart" data-feature="{esc(d.feature)}" data-slice="{esc(slice_key(sl))}">'
                   f"<h3>{esc(d.feature)} · {esc(slice_text(sl))}</h3><p class=\"cap\">{esc(why)} — {esc(d.source)}; "
                   f"distance {fmt_pct(d.distance, 0)}</p>{distribution_svg(d)}"
                   + "".join(f'<p class="cap">{esc(n)}</p>' for n in d.notes) + st_table + "</div>")
    if not out:
        return '<p class="empty">No drifted feature, or no closed window to chart.</p>'
    return f'<div class="charts">{"".join(out)}</div>'


def outcomes_html(engine: Any, model: str, ref: Any) -> str:
    st = outcome_stats(engine, model)
    glob = (st.get("slices") or {}).get("") or {}
    if is_task_model(st):  # a regression / multiclass model: errors and classes, not scores
        return task_outcomes_html(st, getattr(ref, "task", None) or {}, duration_text(st.get("maturity_s")))
    cur, base = reliability_points(engine, model)
    if not glob and not cur:
        return ('<p class="empty">No matured labelled cohort: send labels (--labels L.jsonl or the `labels` topic) and '
                'cover at least the label delay.</p>')
    kp = [("ROC AUC", fmt_num(finite(glob.get("auc")), 3)), ("PR AUC", fmt_num(finite(glob.get("pr_auc")), 3)),
          ("calibration error (ECE)", fmt_num(finite(glob.get("ece")), 3)), ("Brier score", fmt_num(finite(glob.get("brier")), 3)),
          ("precision @ threshold", fmt_pct(finite(glob.get("precision")))), ("recall @ threshold", fmt_pct(finite(glob.get("recall")))),
          ("base rate now", fmt_pct(finite(glob.get("base_rate")))),
          ("base rate in training", fmt_pct(finite(getattr(ref, "label_base_rate", None)))),
          ("threshold in force", fmt_num(finite(glob.get("threshold")))),
          ("cost-minimising threshold", fmt_num(finite(glob.get("best_threshold")))),
          ("expected cost / prediction", fmt_num(finite(glob.get("expected_cost")))),
          ("labelled share of cohort", fmt_pct(finite(glob.get("match_rate")))),
          ("label delay p50 / p90", f"{duration_text(glob.get('delay_p50_s'))} / {duration_text(glob.get('delay_p90_s'))}")]
    kpis = "".join(f'<div class="kpi"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>' for k, v in kp)
    win = st.get("window") or {}
    cap = (f"last matured cohort {esc(win.get('start', ''))[:16]} – {esc(win.get('end', ''))[11:16]} UTC, evaluated at "
           f"label age {duration_text(st.get('maturity_s'))}") if win else ""
    if cur:
        diag = reliability(cur, base, title="reliability diagram: predicted score vs observed positive rate",
                           names=("recent cohorts", "clean baseline cohorts"))
        rel = (f'<div class="chart" id="reliability-{esc(model)}" data-chart="reliability"><h3>reliability</h3>{diag}'
               '<p class="cap">points on the dashed diagonal = calibrated; dot size = labelled predictions</p></div>')
    else:
        rel = '<p class="empty">No reliability bins yet.</p>'
    return f'<div class="two">{rel}<div><div class="kpis">{kpis}</div><p class="small muted">{cap}</p></div></div>'


def slices_html(engine: Any, model: str) -> str:
    if is_task_model(outcome_stats(engine, model)):
        return '<p class="muted">per-slice errors and classes of this model: in its outcomes section above</p>'
    try:
        sl = slice_losses(engine, model)
    except Exception as exc:  # noqa: BLE001 - the outcome monitor is optional and evolving
        return f'<p class="empty">Slice losses unavailable ({esc(type(exc).__name__)}).</p>'
    if sl is None:
        return '<p class="empty">No matured labelled cohort to attribute the performance loss to slices.</p>'
    if not sl["rows"]:
        return (f'<p class="empty">No slice shows a loss above its baseline ({esc(sl["metric"])}, '
                f'{sl["cohorts"]} recent cohorts).</p>')
    rows = []
    cost = sl["excess_cost"] is not None
    for d in sl["rows"]:
        rows.append(f"<tr><td><b>{esc(slice_text(d['slice']))}</b></td><td class=\"num\">{d['labelled']:,}</td>"
                    f"<td class=\"num\">{fmt_pct(d['traffic_share'])}</td><td class=\"num\">{fmt_num(d['loss_rate'])}</td>"
                    f"<td class=\"num\">{fmt_num(d['baseline_rate'])}</td><td class=\"num\">{fmt_pct(d['loss_share'])}</td>"
                    + (f"<td class=\"num\">{fmt_num(d['excess_cost'])}</td>" if cost else "") + "</tr>")
    basis = (f"against {sl['baseline_cohorts']} clean baseline cohorts" if sl["baseline"]
             else "no clean baseline cohorts yet: raw loss shares")
    chart = share_bars([(slice_text(d["slice"]), d["traffic_share"], d["loss_share"]) for d in sl["rows"]],
                       title="share of traffic vs share of excess loss per slice")
    return (f'<p class="small">{esc(sl["metric"])} per labelled prediction: {fmt_num(sl["loss_rate"])} now'
            + (f" vs {fmt_num(sl['baseline_rate'])} in the baseline" if sl["baseline"] else "")
            + (f"; expected cost at the threshold in force {fmt_num(abs(sl['excess_cost']))} "
               f"{'above' if sl['excess_cost'] >= 0 else 'below'} what the baseline rate gives" if cost else "")
            + f"; {sl['cohorts']} recent cohorts {esc(sl['period'][0])} – {esc(sl['period'][1])} UTC, {esc(basis)}. "
            "A slice whose share of the loss exceeds its share of traffic is where the model got worse.</p>"
            f'<div class="charts"><div><table class="slices"><tr><th>slice</th><th class="num">labelled</th>'
            f'<th class="num">traffic</th><th class="num">Brier</th><th class="num">baseline</th>'
            f'<th class="num">share of loss</th>' + ('<th class="num">excess cost</th>' if cost else "")
            + f'</tr>{"".join(rows)}</table></div>'
            f'<div class="chart" data-chart="slice-loss">{chart}</div></div>')


def audit_html(ref: Any) -> str:
    audit = getattr(ref, "audit", None) or {}
    if not audit:
        return ""
    items = []
    feats = audit.get("features") if isinstance(audit, dict) else None
    if isinstance(feats, dict):
        for f, info in list(feats.items())[:20]:
            items.append(f"<li><b>{esc(f)}</b>: {esc(orjson.dumps(info, default=str).decode()[:300])}</li>")
    for k, v in audit.items():
        if k != "features":
            items.append(f"<li><b>{esc(k)}</b>: {esc(orjson.dumps(v, default=str).decode()[:300])}</li>")
    return ('<section data-section="audit"><h2>training data audit (leakage and availability)</h2>'
            f"<ul class=\"small\">{''.join(items)}</ul></section>")
