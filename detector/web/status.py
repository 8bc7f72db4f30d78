"""The status page: one self-refreshing HTML page for people without Grafana.

``render_status(engine, recent)`` shows, per model, what is firing and why (kind, feature,
slice, severity, cause -> action, summary, since when), a small reference-vs-current chart per
drifted feature (from the last closed window's bin counts), the last window's summary, and the
pipeline health counters; the Kafka worker serves it at ``/status`` and ``skewwatch report
--status-out`` writes it to a file. The page reloads itself every 10 seconds.

The helpers here (distributions of a feature in the last closed window, alert formatting,
counters) are shared with :mod:`detector.web.report`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.decisions import kinds
from detector.core.decisions.alerts import slice_key
from detector.core.inputs.timeparse import format_ts, parse_timestamps
from detector.web import esc, finite, page
from detector.web.svg import ACTION_COLORS, fmt_num, fmt_pct, paired_bars

__all__ = [
    "render_status", "Dist", "feature_distribution", "distribution_svg", "chart_targets", "alert_rows_html",
    "counters_html", "slice_text", "ACTION_TEXT", "CAUSE_TEXT", "FEATURE_KINDS", "alert_ts",
    "pill", "breach_ratio", "short_ts",
]

REFRESH_SECONDS = 10

#: alert kinds about one feature's values (charted against the reference)
FEATURE_KINDS = kinds.FEATURE_KINDS
ACTION_TEXT = {"fix_data": "fix data", "fix_model": "fix model", "fix_system": "fix system"}
CAUSE_TEXT = {
    "pipeline_skew": "pipeline skew", "covariate_drift": "covariate drift", "label_drift": "label drift",
    "concept_drift": "concept drift", "decision_policy": "decision policy", "serving_health": "serving health",
    "label_quality": "label quality",
}
_SEV_ORDER = {"critical": 0, "warning": 1}


# --------------------------------------------------------------------------- small formatting helpers
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


def _ago(seconds: float) -> str:
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


# --------------------------------------------------------------------------- distributions
@dataclass
class Dist:
    """Reference vs current shares of one feature (or the score) in one slice row."""

    feature: str
    slice: dict[str, str]
    kind: str  # numeric | categorical
    labels: list[str]
    ref: list[float]
    cur: list[float]
    n: int  # events in the current window's row
    source: str  # which window, which reference
    notes: list[str] = field(default_factory=list)

    @property
    def distance(self) -> float:
        """Half the L1 distance between the two share vectors (0 = same, 1 = disjoint)."""
        return 0.5 * float(sum(abs(a - b) for a, b in zip(self.ref, self.cur, strict=True)))


def current_window(ms: Any) -> tuple[Any, str]:
    """The window to chart: the last closed one (``ms.last_window``), else the newest open one."""
    w = getattr(ms, "last_window", None)
    if w is not None:
        return w, f"last closed window {short_ts(w.start)}–{short_ts(w.end)[11:]} UTC"
    wins = getattr(ms, "windows", None) or {}
    if wins:
        w = wins[max(wins)]
        return w, f"open window from {short_ts(w.start)} UTC (so far)"
    return None, ""


def _reference(lay: Any, row: int, name: str, w: Any) -> tuple[Any, str]:
    """The training profile a row is compared with (same hours for seasonal features)."""
    from detector.core.inputs.layout import SCORE

    hours = None
    hourly = getattr(lay.ref, "hourly", None) or {}
    if name != SCORE and hourly.get("counts") and name in hourly.get("features", {}):
        try:
            from detector.core.reference.hourly import hour_weights

            hours = hour_weights(w.start, w.end, hourly["counts"])
        except Exception:  # noqa: BLE001 - fall back to the all-hours profile
            hours = None
    try:
        prof = lay.ref_for_row(row, name, hours)
    except Exception:  # noqa: BLE001
        prof = None
    what = "training, same hours of day" if hours is not None else "training"
    if prof is None and row != 0:
        glob = lay.score_profile if name == SCORE else lay.ref.features.get(name)
        return glob, "training, all traffic (no training profile for this slice)"
    return prof, what


def feature_distribution(ms: Any, feature: str, slice_: dict[str, str] | None = None) -> Dist | None:
    """Bin shares of ``feature`` ("score" = the model score) in the charted window vs its reference.

    Numeric features use the reference's decile (coarse) bins, plus the below-training-minimum,
    above-training-maximum and missing bins when either side has mass there; categorical features
    the most prominent categories, "unseen / other" and missing. None when there is no window
    yet, the feature is unknown, or the slice is not tracked.
    """
    from detector.core.inputs.layout import SCORE

    w, source = current_window(ms)
    if w is None:
        return None
    lay = ms.layout
    sl = dict(slice_ or {})
    try:
        row = lay.row_of(sl)
    except Exception:  # noqa: BLE001 - a multi-key slice: not a layout row
        row = None
    if row is None:
        return None
    name = SCORE if feature in ("score", SCORE) else feature
    if name == SCORE or name in lay.numeric:
        return _numeric_dist(lay, w, row, name, feature, sl, source)
    if name in lay.categorical:
        return _categorical_dist(lay, w, row, name, sl, source)
    return None


def _edge_label(x: float) -> str:
    return fmt_num(x, 3)


def _numeric_dist(lay: Any, w: Any, row: int, name: str, feature: str, sl: dict[str, str], source: str) -> Dist | None:
    from detector.core.inputs.layout import SCORE

    j = lay.n_num_blocks - 1 if name == SCORE else lay.numeric.index(name)
    off, size = int(lay.num_offsets[j]), int(lay.num_sizes[j])
    counts = np.asarray(w.num[row, off : off + size], dtype=np.float64)
    fine, miss = counts[:-1], float(counts[-1])
    edges = np.asarray(lay.score_edges if name == SCORE else lay.num_edges[j], dtype=np.float64)
    g = np.asarray(lay.coarse[j])
    if g.size != fine.size:
        return None
    nc = int(g.max()) + 1
    cur = np.bincount(g, weights=fine, minlength=nc)
    prof, what = _reference(lay, row, name, w)
    notes: list[str] = []
    if prof is not None and len(getattr(prof, "freqs", []) or []) == fine.size:
        mr = float(prof.missing_rate)
        ref = np.bincount(g, weights=np.asarray(prof.freqs, dtype=np.float64), minlength=nc) * (1.0 - mr)
        ref_miss = mr
    else:
        ref, ref_miss = np.zeros(nc), 0.0
        what = "no training profile"
        notes.append("no training distribution to compare with")
    total = float(fine.sum() + miss)
    if total <= 0:
        return None
    cur_sh = cur / total
    labels: list[str] = []
    r_out: list[float] = []
    c_out: list[float] = []
    for c in range(nc):
        idx = np.flatnonzero(g == c)
        lo_b, hi_b = int(idx[0]), int(idx[-1])
        if hi_b == 0:
            lab = f"< {_edge_label(edges[0])}"
        elif lo_b == fine.size - 1:
            lab = f"> {_edge_label(edges[-1])}"
        else:
            lab = f"{_edge_label(edges[lo_b - 1])}–{_edge_label(edges[hi_b])}"
        is_edge = hi_b == 0 or lo_b == fine.size - 1
        if is_edge and ref[c] < 1e-9 and cur_sh[c] < 1e-9:
            continue
        labels.append(lab)
        r_out.append(float(ref[c]))
        c_out.append(float(cur_sh[c]))
    if ref_miss > 1e-9 or miss > 0:
        labels.append("missing")
        r_out.append(float(ref_miss))
        c_out.append(miss / total)
    below = cur_sh[0] if nc else 0.0
    above = cur_sh[-1] if nc else 0.0
    if below + above >= 0.01:
        notes.append(f"{fmt_pct(below + above)} of current values outside the training range")
    return Dist(feature if feature != SCORE else "score", sl, "numeric", labels, r_out, c_out, int(total),
                f"{what} vs {source}", notes)


def _categorical_dist(lay: Any, w: Any, row: int, name: str, sl: dict[str, str], source: str) -> Dist | None:
    j = lay.categorical.index(name)
    off, size = int(lay.cat_offsets[j]), int(lay.cat_sizes[j])
    counts = np.asarray(w.cat[row, off : off + size], dtype=np.float64)
    vocab = lay.cat_vocab[name]
    K = len(vocab)
    total = float(counts.sum())
    if total <= 0 or counts.size != K + 2:
        return None
    names = [""] * K
    for cat, code in vocab.items():
        names[code] = cat
    prof, what = _reference(lay, row, name, w)
    if prof is not None and hasattr(prof, "categories"):
        mr = float(prof.missing_rate)
        ref_known = np.array([float(prof.categories.get(c, 0.0)) for c in names])
        ref = np.concatenate([ref_known, [max(0.0, 1.0 - ref_known.sum())]]) * (1.0 - mr)
    else:
        ref, mr, what = np.zeros(K + 1), 0.0, "no training profile"
    cur = counts / total
    order = sorted(range(K), key=lambda k: -max(ref[k], cur[k]))
    top = [k for k in order[:8] if max(ref[k], cur[k]) > 0]
    rest = [k for k in range(K) if k not in top]
    labels = [names[k] for k in top]
    r_out = [float(ref[k]) for k in top]
    c_out = [float(cur[k]) for k in top]
    if rest:
        labels.append(f"{len(rest)} other known")
        r_out.append(float(sum(ref[k] for k in rest)))
        c_out.append(float(sum(cur[k] for k in rest)))
    labels.append("unseen / rare")
    r_out.append(float(ref[K]))
    c_out.append(float(cur[K]))
    if mr > 0 or counts[K + 1] > 0:
        labels.append("missing")
        r_out.append(mr)
        c_out.append(float(cur[K + 1]))
    notes = []
    unseen = {}
    try:
        unseen = dict(w.unseen[j]) if row == 0 else {}
    except (IndexError, AttributeError, TypeError):
        unseen = {}
    if unseen:
        top_u = sorted(unseen.items(), key=lambda kv: -kv[1])[:4]
        notes.append("values never seen in training: " + ", ".join(f"{k!r} ({v})" for k, v in top_u))
    return Dist(name, sl, "categorical", labels, r_out, c_out, int(total), f"{what} vs {source}", notes)


def distribution_svg(d: Dist, *, width: int = 560, height: int = 230) -> str:
    hl = [abs(a - b) >= 0.05 for a, b in zip(d.ref, d.cur, strict=True)]
    title = f"{d.feature} ({slice_text(d.slice)}): training vs current share per bin"
    return paired_bars(d.labels, d.ref, d.cur, title=title, width=width, height=height, highlight=hl,
                       names=("training", f"current (n={d.n:,})"))


def chart_targets(engine: Any, model: str, alerts: Iterable[dict[str, Any]], *, extra: int = 0,
                  limit: int = 8) -> list[tuple[str, dict[str, str], list[dict[str, Any]]]]:
    """(feature, slice, alerts) to chart: features of the given alerts first, then up to ``extra``
    more from the last window's statistics furthest past their threshold."""
    out: dict[tuple[str, str], tuple[str, dict[str, str], list[dict[str, Any]]]] = {}
    for a in alerts:
        if a.get("model") != model or a.get("kind") not in FEATURE_KINDS or not a.get("feature"):
            continue
        sl = a.get("slice") or {}
        key = (str(a["feature"]), slice_key(sl))
        if key not in out:
            out[key] = (str(a["feature"]), dict(sl), [])
        out[key][2].append(a)
    if extra > 0:
        ms = engine.models.get(model)
        ranked: list[tuple[float, str, dict[str, str]]] = []
        for (kind, stat, feat, _sk), (val, sl, thr) in list(getattr(ms, "last_stats", {}).items()):
            if not feat or kind not in FEATURE_KINDS:
                continue
            r = breach_ratio(stat, val, thr)
            if r >= 1.5:  # well past: a statistic at its threshold without significance is noise
                ranked.append((r, feat, dict(sl)))
        added = 0
        for _r, feat, sl in sorted(ranked, key=lambda x: -x[0]):
            key = (feat, slice_key(sl))
            if key in out or any(f == feat for f, _ in out):
                continue  # one chart per feature is enough to show the story; prefer other features
            out[key] = (feat, sl, [])
            added += 1
            if added >= extra:
                break
    return list(out.values())[:limit]


def stats_for(ms: Any, feature: str, sl: dict[str, str]) -> list[tuple[str, str, float, float]]:
    """(kind, statistic, value, threshold) of one feature and slice in the last window, worst first."""
    from detector.core.inputs.layout import SCORE

    sk = slice_key(sl)
    names = {feature, SCORE, "score"} if feature in ("score", SCORE) else {feature}
    rows = [(k, s, v, t) for (k, s, f, key), (v, _sl, t) in list(getattr(ms, "last_stats", {}).items())
            if f in names and key == sk]
    return sorted(rows, key=lambda r: -breach_ratio(r[1], r[2], r[3]))


# --------------------------------------------------------------------------- alerts
def alert_rows_html(alerts: Sequence[dict[str, Any]], now: float | None = None, *, show_model: bool = False) -> str:
    """The firing table: severity, kind, feature, slice, statistic, cause -> action, summary, since."""
    if not alerts:
        return '<p class="empty">Nothing is firing.</p>'
    head = ("<tr>" + ("<th>model</th>" if show_model else "") + "<th>severity</th><th>kind</th><th>feature</th><th>slice</th>"
            "<th class=\"num\">value / threshold</th><th>cause → action</th><th>summary</th><th>since</th></tr>")
    rows = []
    for a in sorted(alerts, key=lambda a: (_SEV_ORDER.get(a.get("severity", ""), 2), a.get("kind", ""))):
        t = alert_ts(a)
        since = short_ts(t)
        if now is not None and math.isfinite(t):
            ago = _ago(now - t)
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
    """Pipeline health: events in, rejects by reason, late, windows, alerts, watermark, label joins.

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
    kpis = [
        ("predictions", f"{c.predictions:,}", False), ("labels", f"{c.labels:,}", False),
        ("offline feature events", f"{c.feature_events:,}", False),
        ("rejected events", f"{n_inv:,}" + (f" ({fmt_pct(n_inv / total)})" if total else ""), total > 0 and n_inv / total > 0.01),
        ("late events", f"{c.late:,}", c.late > 0 and c.late > 0.01 * max(c.predictions, 1)),
        ("windows closed", f"{ev.windows_closed:,}", False),
        ("alerts fired / resolved", f"{ev.alerts_fired:,} / {ev.alerts_resolved:,}", False),
        ("newest event", short_ts(hw), False), ("watermark lag", _ago(lag) or "–", False),
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
