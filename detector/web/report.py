"""The HTML diagnosis of one model - data, model or system? - rendered from an engine (``skewwatch report``,
:mod:`detector.cli.report`, reads the inputs and writes the file).

The report follows the seed article's decision framework:

* the five go/no-go **gates** — measurement, replay, parity, decisioning, adoption — each
  ``pass`` / ``fail`` / ``unknown`` with the evidence behind it;
* the **verdict**: fix data, fix model or fix the system, with the incidents that support it
  (their triaged cause and action), data first — do not retrain until the model is known to see
  in serving what it saw in training;
* the alert **timeline**, **charts of the drifted features** (training vs current share per bin,
  from the last closed window), a **reliability diagram** and the outcome metrics when labels
  matured, the **slices** that contribute most to the performance loss, and pipeline health
  (the checklist sections: :mod:`detector.web.checklist`).

Everything is inline (CSS in the template, SVG charts generated in Python): the file opens
offline, from a ticket or a mail.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson

from detector.core.decisions.alerts import slice_key
from detector.web import esc, finite, page
from detector.web.checklist import checklist_html
from detector.web.gates import (
    GATE_LEVER,
    LEVER_TEXT,
    LEVERS,
    Gate,
    _cohorts,
    _dur,
    _outcome_stats,
    evaluate_gates,
    verdict_of,
)
from detector.web.report_estimates import estimates_html
from detector.web.report_joint import joint_html
from detector.web.status import (
    ACTION_TEXT,
    CAUSE_TEXT,
    alert_ts,
    chart_targets,
    counters_html,
    distribution_svg,
    feature_distribution,
    pill,
    short_ts,
    slice_text,
    stats_for,
)
from detector.web.svg import ACTION_COLORS, fmt_num, fmt_pct, reliability, share_bars, timeline
from detector.web.task_panels import is_task_model, task_outcomes_html

__all__ = ["render_report", "OverrideTally", "checklist_html", "Gate", "evaluate_gates", "incidents_of",
           "verdict_of", "slice_losses", "reliability_points", "ReportError"]

class ReportError(ValueError):
    """Bad or missing input (exit code 2)."""


# --------------------------------------------------------------------------- override / adoption tally
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


# --------------------------------------------------------------------------- incidents
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


# --------------------------------------------------------------------------- gates
def reliability_points(engine: Any, model: str) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """(current, baseline) reliability points (mean score, observed rate, n), all traffic."""

    def pts(cs: list[Any]) -> list[tuple[float, float, float]]:
        if not cs:
            return []
        rel = sum(np.asarray(c.rel[0], dtype=np.float64) for c in cs)
        return [(float(r[1] / r[0]), float(r[2] / r[0]), float(r[0])) for r in rel if r[0] > 0]

    try:
        cur, base, _m = _cohorts(engine, model)
        if cur:
            return pts(cur), pts(base)
    except Exception:  # noqa: BLE001 - fall back to what the stats / alerts carry
        pass
    st = _outcome_stats(engine, model)
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

    cur, base, m = _cohorts(engine, model)
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


# --------------------------------------------------------------------------- rendering
def _live_compare(replay_alerts: Sequence[dict[str, Any]], live_alerts: Sequence[dict[str, Any]], model: str) -> dict[str, Any]:
    def firing(al: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {a["alert_id"]: a for a in al if a.get("model") == model and a.get("state") == "firing" and a.get("alert_id")}

    r, li = firing(replay_alerts), firing(live_alerts)
    both = sorted(set(r) & set(li))
    return {"both": both, "only_live": [li[k] for k in sorted(set(li) - set(r))],
            "only_replay": [r[k] for k in sorted(set(r) - set(li))], "same": set(r) == set(li)}


def _gate_html(g: Gate) -> str:
    ev = "".join(f"<li>{esc(e)}</li>" for e in g.evidence)
    return (f'<div class="gate {g.status}" id="gate-{g.key}" data-gate="{g.key}" data-status="{g.status}">'
            f'<h3>{esc(g.title)} {pill(g.status)}</h3><p class="q">{esc(g.question)}</p><ul>{ev}</ul></div>')


def _verdict_html(model: str, v: dict[str, Any], incidents: Sequence[dict[str, Any]]) -> str:
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


def _levers_html(v: dict[str, Any]) -> str:
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


def _timeline_html(incidents: Sequence[dict[str, Any]], t0: float, t1: float) -> str:
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


def _features_html(engine: Any, model: str, incidents: Sequence[dict[str, Any]]) -> str:
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


def _outcomes_html(engine: Any, model: str, ref: Any) -> str:
    st = _outcome_stats(engine, model)
    glob = (st.get("slices") or {}).get("") or {}
    if is_task_model(st):  # a regression / multiclass model: errors and classes, not scores
        return task_outcomes_html(st, getattr(ref, "task", None) or {}, _dur(st.get("maturity_s")))
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
          ("label delay p50 / p90", f"{_dur(glob.get('delay_p50_s'))} / {_dur(glob.get('delay_p90_s'))}")]
    kpis = "".join(f'<div class="kpi"><div class="v">{esc(v)}</div><div class="k">{esc(k)}</div></div>' for k, v in kp)
    win = st.get("window") or {}
    cap = (f"last matured cohort {esc(win.get('start', ''))[:16]} – {esc(win.get('end', ''))[11:16]} UTC, evaluated at "
           f"label age {_dur(st.get('maturity_s'))}") if win else ""
    if cur:
        diag = reliability(cur, base, title="reliability diagram: predicted score vs observed positive rate",
                           names=("recent cohorts", "clean baseline cohorts"))
        rel = (f'<div class="chart" id="reliability-{esc(model)}" data-chart="reliability"><h3>reliability</h3>{diag}'
               '<p class="cap">points on the dashed diagonal = calibrated; dot size = labelled predictions</p></div>')
    else:
        rel = '<p class="empty">No reliability bins yet.</p>'
    return f'<div class="two">{rel}<div><div class="kpis">{kpis}</div><p class="small muted">{cap}</p></div></div>'


def _slices_html(engine: Any, model: str) -> str:
    if is_task_model(_outcome_stats(engine, model)):
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


def _audit_html(ref: Any) -> str:
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


def render_report(engine: Any, *, alerts: Sequence[dict[str, Any]] | None = None,
                  overrides: OverrideTally | None = None, live_alerts: Sequence[dict[str, Any]] | None = None,
                  inputs: dict[str, str] | None = None, models: Sequence[str] | None = None,
                  span: tuple[float, float] | None = None) -> str:
    """The whole report (HTML) for the engine's models.

    ``alerts``: the alert stream of the period (timeline); ``live_alerts``: a live stream to
    compare ``alerts`` with (the replay gate); ``overrides``: the adoption tally.
    """
    names = list(models) if models else sorted(engine.models)
    generated = time.time()
    body = []
    inputs = dict(inputs or {})
    t_end = float(engine.high_water) if math.isfinite(engine.high_water) else generated
    title = f"skewwatch report — {', '.join(names) or 'no model'}"
    body.append(f'<header class="top"><h1>{esc(title)}</h1><div class="meta">generated {esc(short_ts(generated))} UTC · '
                f"data up to {esc(short_ts(t_end))} UTC</div></header>")
    if not names:
        body.append('<p class="empty">No model in the input: no prediction could be attributed to a model with a '
                    "reference.</p>")
    for name in names:
        ms = engine.models.get(name)
        ref = ms.layout.ref if ms is not None else engine.reference_for(name)
        incs = incidents_of(engine, name, alerts)
        ov = overrides.models.get(name) if overrides is not None else getattr(ms, "overrides", None)
        live = _live_compare(alerts or [], live_alerts, name) if live_alerts is not None else None
        gates = evaluate_gates(engine, name, incs, overrides=ov, live=live)
        v = verdict_of(incs, gates)
        t0, t1 = _period(engine, incs, overrides, span)
        if len(names) > 1:
            body.append(f"<h2 class=\"model\">model <code>{esc(name)}</code></h2>")
        body.append(_verdict_html(name, v, incs))
        body.append(f'<section id="gates-{esc(name)}" data-section="gates"><h2>go / no-go gates</h2>'
                    f'<div class="gates">{"".join(_gate_html(g) for g in gates)}</div></section>')
        body.append(f'<section id="levers-{esc(name)}" data-section="levers"><h2>what supports each lever</h2>'
                    f"{_levers_html(v)}</section>")
        body.append(f'<section id="timeline-{esc(name)}" data-section="timeline"><h2>alert timeline · '
                    f"{esc(short_ts(t0))} – {esc(short_ts(t1))} UTC</h2>{_timeline_html(incs, t0, t1)}</section>")
        body.append(f'<section id="features-{esc(name)}" data-section="features"><h2>drifted features: training vs '
                    f"current</h2>{_features_html(engine, name, incs)}</section>")
        body.append(f'<section id="joint-{esc(name)}" data-section="joint"><h2>joint structure of the numeric features'
                    f"</h2>{joint_html(engine, name, incs)}</section>")
        body.append(f'<section id="outcomes-{esc(name)}" data-section="outcomes"><h2>outcomes and calibration</h2>'
                    f"{_outcomes_html(engine, name, ref)}</section>")
        body.append(f'<section id="estimates-{esc(name)}" data-section="estimates"><h2>performance before labels '
                    f"(estimated from the scores)</h2>{estimates_html(engine, name, incs)}</section>")
        body.append(f'<section id="slices-{esc(name)}" data-section="slices"><h2>top slices by contribution to the '
                    f"performance loss</h2>{_slices_html(engine, name)}</section>")
        body.append(_audit_html(ref))
        body.append(checklist_html(engine, name))
    body.append('<section id="pipeline" data-section="pipeline"><h2>pipeline health</h2>'
                f"{counters_html(engine)}</section>")
    if inputs:
        body.append('<section id="inputs" data-section="inputs"><h2>inputs</h2><table>'
                    + "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(v)}</code></td></tr>" for k, v in inputs.items())
                    + "</table></section>")
    footer = ("skewwatch report · gates and levers follow the decision framework “fix data, fix model, or fix the "
              "system” · a self-contained file: no scripts, no external assets")
    return page(title, "\n".join(body), footer=footer)


def _period(engine: Any, incs: Sequence[dict[str, Any]], overrides: OverrideTally | None,
            span: tuple[float, float] | None) -> tuple[float, float]:
    t1 = float(engine.high_water) if math.isfinite(engine.high_water) else math.nan
    cands = [r["start"] for r in incs if math.isfinite(r["start"])]
    t0 = math.nan
    if span is not None:
        t0, t1 = span
    elif overrides is not None and math.isfinite(overrides.t_min):
        t0 = overrides.t_min
    if not math.isfinite(t0):
        mon_first = [getattr(m, "first_ts", math.inf) for m in (getattr(getattr(engine, "outcomes", None), "models", {})
                                                                or {}).values()]
        firsts = [t for t in mon_first if math.isfinite(t)]
        t0 = min(firsts + cands) if firsts or cands else math.nan
    ends = [r["resolved"] for r in incs if math.isfinite(r["resolved"])] + [r["fired"] for r in incs if math.isfinite(r["fired"])]
    if not math.isfinite(t1):
        t1 = max(ends) if ends else time.time()
    if not math.isfinite(t0):
        t0 = t1 - 86400.0
    if cands:
        t0 = min(t0, min(cands))
    if ends:
        t1 = max(t1, max(ends))
    if t1 <= t0:
        t1 = t0 + 3600.0
    return t0, t1
