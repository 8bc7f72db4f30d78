"""The report's checklist sections: adoption, the rules baseline, slice contribution and counterexamples,
from the core's accessors."""

from __future__ import annotations

from typing import Any

from detector.web import esc
from detector.web.alert_text import slice_text
from detector.web.svg import fmt_num, fmt_pct


def checklist_html(engine: Any, model: str) -> str:
    """Adoption, rules baseline, slice contribution and counterexample sections (data from the core's accessors)."""
    from detector.core.checks.adoption import adoption_stats, baseline_stats
    from detector.core.outcomes.contribution import contributions_for
    from detector.core.outcomes.counterexamples import counterexamples_for

    parts = []
    ad = adoption_stats(engine, model)
    glob = (ad.get("slices") or {}).get("") or {}
    if glob:
        reasons = ", ".join(f"{esc(k)} ({v})" for k, v in (glob.get("reasons") or {}).items()) or "none"
        cap = (f"; {glob.get('flags', 0):,} flags for a review capacity of {ad['review_capacity']:,} "
               f"({fmt_pct(ad.get('capacity_use'), 0)})" if ad.get("review_capacity") else "")
        parts.append(f"<p class=\"small\">Last window: humans overrode {fmt_pct(glob.get('override_rate'))} of the model's "
                     f"{glob.get('flags', 0):,} actions (acted on: {fmt_pct(glob.get('acted_on_share'))}){cap}. "
                     f"Override reasons: {reasons}.</p>")
    rb = baseline_stats(engine, model)
    rows = list((rb.get("slices") or {}).items())[:6]
    if rows:
        metric = rb.get("metric", "error_rate")
        trs = "".join(
            f"<tr><td>{esc(slice_text(_slice_of(k)))}</td><td class=\"num\">{d['pairs']:,}</td>"
            + "".join(f"<td class=\"num\">{fmt_num(d[who].get(m))}</td>" for m in ("precision", "recall", metric)
                      for who in ("model", "rules"))
            + f"<td>{esc(d.get('diagnosis', '–'))}</td></tr>" for k, d in rows)
        heads = "".join(f"<th class=\"num\">{esc(m.replace('_', ' '))} {who}</th>" for m in ("precision", "recall", metric)
                        for who in ("model", "rules"))
        parts.append("<h3>model vs the rules baseline (last matured cohort, same labelled predictions)</h3>"
                     f"<table class=\"small\"><tr><th>slice</th><th class=\"num\">pairs</th>{heads}<th>diagnosis</th></tr>"
                     f"{trs}</table>")
    sc = (contributions_for(engine, model).get("metrics") or {})
    items = [(m, d) for m, v in sc.items() for d in (v.get("top") or [])]
    if items:
        trs = "".join(f"<tr><td>{esc(m.replace('_', ' '))}</td><td>{esc(d['slice'])}</td><td class=\"num\">"
                      f"{fmt_pct(d['share'])}</td><td class=\"num\">{fmt_num(d['metric'])}</td><td class=\"num\">"
                      f"{fmt_num(d['baseline_metric'])}</td><td class=\"num\">{fmt_num(d['contribution'])}</td></tr>"
                      for m, d in items)
        parts.append("<h3>top slices by contribution to the loss (share x (baseline - slice))</h3>"
                     "<table class=\"small\"><tr><th>metric</th><th>slice</th><th class=\"num\">share</th>"
                     "<th class=\"num\">slice</th><th class=\"num\">baseline</th><th class=\"num\">contribution</th></tr>"
                     f"{trs}</table>")
    cx = [r for r in counterexamples_for(engine, model) if not r.get("slice")][:20]
    if cx:
        def feats(r: dict[str, Any]) -> str:
            f = r.get("features")
            if not f:
                return "(features no longer retained)"
            return ", ".join(f"{k}={v}" for k, v in list(f.items())[:5])

        trs = "".join(f"<tr><td>{esc(r['type'].replace('_', ' '))}</td><td><code>{esc(r['prediction_id'])}</code></td>"
                      f"<td class=\"num\">{fmt_num(r.get('score'))}</td><td class=\"num\">{fmt_num(r.get('threshold'))}</td>"
                      f"<td class=\"num\">{r.get('label')}</td><td class=\"small\">{esc(feats(r))}</td>"
                      f"<td class=\"small\">{esc(', '.join(sorted({a['kind'] for a in r.get('active_alerts') or []})) or '–')}</td></tr>"
                      for r in cx)
        parts.append("<h3>counterexamples: the worst recent errors (all traffic)</h3>"
                     "<table class=\"small\"><tr><th>type</th><th>prediction</th><th class=\"num\">score</th>"
                     "<th class=\"num\">threshold</th><th class=\"num\">label</th><th>top features</th>"
                     f"<th>alerts then</th></tr>{trs}</table>")
    if not parts:
        return ""
    return (f'<section id="checklist-{esc(model)}" data-section="checklist"><h2>adoption, rules baseline, slices and '
            f"counterexamples</h2>{''.join(parts)}</section>")


def _slice_of(key: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in key.split(",")) if key else {}
