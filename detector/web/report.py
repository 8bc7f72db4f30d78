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
offline, from a ticket or a mail. What the report reads from the engine is :mod:`detector.web.report_data`,
its sections are drawn by :mod:`detector.web.report_sections` (and the estimate, joint and checklist
modules); this module puts them in order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from detector.web import esc, page
from detector.web.alert_text import short_ts
from detector.web.checklist import checklist_html
from detector.web.gates import (
    Gate,
    evaluate_gates,
    verdict_of,
)
from detector.web.report_data import (
    OverrideTally,
    incidents_of,
    reliability_points,
    slice_losses,
)
from detector.web.report_estimates import estimates_html
from detector.web.report_joint import joint_html
from detector.web.report_sections import (
    audit_html,
    features_html,
    gate_html,
    levers_html,
    live_compare,
    outcomes_html,
    slices_html,
    timeline_html,
    verdict_html,
)
from detector.web.status import counters_html

__all__ = ["render_report", "OverrideTally", "checklist_html", "Gate", "evaluate_gates", "incidents_of",
           "verdict_of", "slice_losses", "reliability_points", "ReportError"]


class ReportError(ValueError):
    """Bad or missing input (exit code 2)."""


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
        live = live_compare(alerts or [], live_alerts, name) if live_alerts is not None else None
        gates = evaluate_gates(engine, name, incs, overrides=ov, live=live)
        v = verdict_of(incs, gates)
        t0, t1 = _period(engine, incs, overrides, span)
        if len(names) > 1:
            body.append(f"<h2 class=\"model\">model <code>{esc(name)}</code></h2>")
        body.append(verdict_html(name, v, incs))
        body.append(f'<section id="gates-{esc(name)}" data-section="gates"><h2>go / no-go gates</h2>'
                    f'<div class="gates">{"".join(gate_html(g) for g in gates)}</div></section>')
        body.append(f'<section id="levers-{esc(name)}" data-section="levers"><h2>what supports each lever</h2>'
                    f"{levers_html(v)}</section>")
        body.append(f'<section id="timeline-{esc(name)}" data-section="timeline"><h2>alert timeline · '
                    f"{esc(short_ts(t0))} – {esc(short_ts(t1))} UTC</h2>{timeline_html(incs, t0, t1)}</section>")
        body.append(f'<section id="features-{esc(name)}" data-section="features"><h2>drifted features: training vs '
                    f"current</h2>{features_html(engine, name, incs)}</section>")
        body.append(f'<section id="joint-{esc(name)}" data-section="joint"><h2>joint structure of the numeric features'
                    f"</h2>{joint_html(engine, name, incs)}</section>")
        body.append(f'<section id="outcomes-{esc(name)}" data-section="outcomes"><h2>outcomes and calibration</h2>'
                    f"{outcomes_html(engine, name, ref)}</section>")
        body.append(f'<section id="estimates-{esc(name)}" data-section="estimates"><h2>performance before labels '
                    f"(estimated from the scores)</h2>{estimates_html(engine, name, incs)}</section>")
        body.append(f'<section id="slices-{esc(name)}" data-section="slices"><h2>top slices by contribution to the '
                    f"performance loss</h2>{slices_html(engine, name)}</section>")
        body.append(audit_html(ref))
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
