"""One closed window, evaluated: checks -> findings -> incidents -> alerts.

:func:`close_window` runs every check family on the window's pseudo-rows (all traffic, slice rows,
complements; :mod:`detector.core.checks`), selects findings under one Benjamini-Hochberg pass
(:mod:`detector.core.decisions.select`), adds the change detectors' change points and the trailing
day's comparisons, holds what a more specific finding explains, and updates the incidents
(:mod:`detector.core.decisions.alerts`). It then teaches the seasonal baseline with every series
that no finding or open incident claims. Every check family runs under a guard
(:mod:`detector.core.guard`): one that raises is counted, logged and skipped for this window.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.core.checks.adoption import Adoption
from detector.core.checks.daily import daily_checks
from detector.core.checks.multivariate.window import hold_explained
from detector.core.checks.pooled_shift import POOL, pooled_time_shift
from detector.core.checks.remix import add_variants, collapse, hold_mixed
from detector.core.checks.seasonal import seasonal_checks
from detector.core.checks.window import build_view, run_checks
from detector.core.decisions.alerts import OUTCOME_KINDS, Alert, AlertManager, incident_kind, slice_key
from detector.core.decisions.select import SPECIFIC, Finding, dedup, hold_generic, select_findings
from detector.core.decisions.triage import PIPELINE_KINDS
from detector.core.guard import guarded
from detector.core.inputs.layout import Layout
from detector.core.inputs.seasonal import Frozen
from detector.core.inputs.window import WindowCounts
from detector.core.modelstate import Counters, ModelState
from detector.core.reference.reconcile import NOTE
from detector.core.settings import DetectorSettings

__all__ = ["close_window", "change_points", "SHIFT_MEMORY", "SHIFT_TOLERANCE"]


def close_window(ms: ModelState, w: WindowCounts, st: DetectorSettings, manager: AlertManager, adoption: Adoption,
                 counters: Counters) -> list[Alert]:
    """Evaluate the closed window ``w`` of model ``ms``; return the alerts that fired or resolved."""
    lay = ms.layout
    w.finalize_global(lay)
    ms.last_window = w
    counters.windows_closed += 1
    window = {"start": _fmt(w.start), "end": _fmt(w.end), "count": w.events, "_start": w.start, "_end": w.end}
    guard = guarded(counters, ms.name, w.start, w.end)  # a check that raises loses its own results only (detector.core.guard)

    def remixed() -> Any:  # all traffic also against its usual mix re-weighted (detector.core.checks.remix)
        v = build_view(lay, w, ms.seasonal, st)
        add_variants(v, lay, ms.seasonal)
        return v

    def checked(v: Any) -> list[Any]:
        results = run_checks(lay, v, ms.seasonal, st, cands, ms.cand_ref, guard)
        results.extend(guard("seasonal", lambda: seasonal_checks(lay, v, ms.seasonal, st, cands), []))
        results.extend(guard("adoption", lambda: adoption.results(ms.name, lay, v, st), []))
        return results

    cands = ms.cands_complete(w.start)
    v = guard("remix", remixed, None)
    if v is None:  # the mix correction broke while adding its rows: a fresh view without them
        v = build_view(lay, w, ms.seasonal, st)
    results = checked(v)
    folded = guard("remix", lambda: collapse(results, v), None)
    if folded is None:  # the mix correction broke with its rows in the view: the window without it
        v = build_view(lay, w, ms.seasonal, st)
        results = checked(v)
    else:
        results, v = folded
    if ms.joint is not None:  # joint structure of the numeric features, same pseudo-rows, same BH
        joint = ms.joint
        results.extend(guard("multivariate", lambda: joint.results(w.mv, w.start, v.rows, v.comp), []))
    if ms.estimate is not None:  # performance expected from the scores, before labels: same pseudo-rows, same BH
        est = ms.estimate
        results.extend(guard("estimate", lambda: est.results(w.est, w.start, w.end, v.rows, v.comp,
                                                             lambda r: slice_key(lay.row_label(int(r)))), []))
    # a shifted clock in a slice too quiet for one window: the trailing hours pooled (detector.core.checks.pooled_shift)
    results.extend(guard("pooled_time_shift", lambda: pooled_time_shift(
        lay, v, ms.seasonal, st, ms.day.seen(w.start - POOL), {"num": ms.seasonal.coarse(w), "cat": w.cat}), []))
    suppressed: list[Finding] = []
    findings = select_findings(results, v, st.fdr_q, suppressed)
    findings.extend(guard("change_points", lambda: change_points(ms, w, v, st), []))
    # the trailing day (skew vs training without hourly profiles), with the series of this hour's
    # findings and of open hourly incidents as they usually are at this time of day
    hourly = {(f.kind, f.feature) for f in findings + suppressed}
    hourly |= {(k, f or None) for k, f, s in manager.firing_stats(ms.name) if k not in OUTCOME_KINDS and not s.endswith("_24h")}
    ms.day.add(w, ms.seasonal.coarse(w), ms.seasonal, Frozen.of(ms.seasonal, lay, hourly))
    day_tested = np.zeros(v.P, bool)
    if not v.extra["hourly_skew"] and ms.day.ready:
        daily = guard("daily", lambda: daily_checks(lay, v, ms.day.total(), ms.seasonal, st, ms.cands_complete(ms.day.oldest),
                                                    ms.day.dispersion(v, ms.cand_since, ms.seasonal.blocks),
                                                    ms.day.mix(v, lay, ms.seasonal.blocks)), [])
        results.extend(daily)
        # a slice too quiet for one window's tests is judged by the trailing day's: a day found clean is evidence
        # too (else an incident the day's tests opened there could never resolve, and would hold its series)
        day_tested = np.any([r.tested for r in daily], axis=0) if daily else np.zeros(v.P, bool)
        findings = dedup(findings + select_findings(daily, v, st.fdr_q, suppressed), suppressed)
    findings = _persistent_shifts(ms, lay, findings, suppressed, w.start)
    held = findings
    findings = guard("remix", lambda: hold_mixed(held, v, suppressed), held)
    specific = {f for k, f in manager.firing_keys(ms.name) if k in SPECIFIC and f}
    findings = hold_generic(findings, specific, suppressed)
    if ms.joint is not None:  # a joint change led by features that moved on their own is theirs
        moved = {f.feature for f in findings + suppressed if f.feature and f.kind != "multivariate_drift"}
        held, firing = findings, moved | manager.firing_features(ms.name)
        findings = guard("multivariate", lambda: hold_explained(held, firing, suppressed), held)
    ms.last_stats = _gauges(lay, v, results)
    evaluated = {slice_key(lay.row_label(int(r))) for r, c, n in zip(v.rows, v.comp, v.events, strict=True)
                 if not c and n >= st.min_count_rate}
    by_day = {slice_key(lay.row_label(int(r))) for r, c, d in zip(v.rows, v.comp, day_tested, strict=True) if not c and d}
    version_changed = len(w.versions) > 1 or (ms.last_version is not None and bool(w.versions)
                                              and ms.last_version not in w.versions)
    kinds = {f.kind for f in findings} | manager.firing_kinds(ms.name)
    pipeline = {f.feature for f in findings if f.kind in PIPELINE_KINDS and f.feature}
    pipeline |= {f for k, f in manager.firing_keys(ms.name) if k in PIPELINE_KINDS and f}
    ctx = {"kinds": kinds, "model_version": _top(w.versions), "version_changed": version_changed,
           "pipeline_features": pipeline}
    for f in findings:
        if f.feature in ms.codes:
            f.evidence = {**f.evidence, "reconciled": NOTE}
    pairs = [(f, lay.row_label(f.row)) for f in findings]
    hold = {(ms.name, incident_kind(f.kind, f.statistic), f.feature or "", slice_key(lay.row_label(f.row))) for f in suppressed}
    alerts = manager.update(ms.name, window, pairs, evaluated, ctx, hold=hold, evaluated_daily=by_day)
    for a in alerts:
        if a.state == "firing":
            counters.alerts_fired += 1
        else:
            counters.alerts_resolved += 1
    # teach the seasonal baseline, except the series that belong to a finding or an open incident
    keys = {(f.kind, f.feature) for f in findings} | {(f.kind, f.feature) for f in suppressed}
    keys |= {(k, f or None) for k, f in manager.firing_keys(ms.name) if k not in OUTCOME_KINDS}
    ms.seasonal.update(w, Frozen.of(ms.seasonal, lay, keys), ms.cand_since <= w.start)
    if ms.joint is not None:
        if not any(k == "multivariate_drift" for k, _ in keys):
            ms.joint.learn(w.mv, w.start)
        ms.joint.closed(w.events)
    ms.last_summary = {"window": window, "events": w.events, "findings": len(findings), "late": w.late}
    return alerts


def change_points(ms: ModelState, w: WindowCounts, v: Any, st: DetectorSettings) -> list[Finding]:
    """A river change detector (``settings.change_detector``: ADWIN or Page-Hinkley) per numeric series, on
    the seasonal residual of the window mean (all traffic)."""
    if not ms.detectors or v.base is None:
        return []
    lay = ms.layout
    out: list[Finding] = []
    base_sx, base_nx = v.base["sx"][0], v.base["nx"][0]
    for j, det in enumerate(ms.detectors):
        p = lay.num_all_profiles[j]
        off, size = int(lay.num_offsets[j]), int(lay.num_sizes[j])
        n = float(w.num[0, off : off + size - 1].sum())
        if p is None or n < st.min_count or base_nx[j] < st.min_count or not p.std or p.std <= 0:
            continue
        mean = w.sx[0, j] / n
        bmean = base_sx[j] / base_nx[j]
        resid = (mean - bmean) / p.std
        det.update(resid)
        if det.drift_detected:
            ms.shift_active[j] = True
        if ms.shift_active[j]:
            if abs(resid) < st.thresholds.mean_shift_sd / 2:
                ms.shift_active[j] = False
            elif abs(resid) >= st.thresholds.mean_shift_sd:
                name = "score" if j == lay.n_num_blocks - 1 else lay.numeric[j]
                kind = "score_drift" if j == lay.n_num_blocks - 1 else "feature_drift"
                out.append(Finding(kind, name, 0, "mean_shift", float(resid), st.thresholds.mean_shift_sd, "warning", None,
                                   {"reference": {"mean": round(float(bmean), 6), "source": "production, same time of day"},
                                    "current": {"mean": round(float(mean), 6)}, "detector": type(det).__name__},
                                   f"{name} mean shifted by {resid:+.2f} training SDs against its usual level at this time "
                                   f"(river {type(det).__name__} change point)", abs(resid)))
    return out


#: a clock shift must be seen again, with the same shift, within this many windows (a one-hour shift of a
#: local-hour feature can fall inside one histogram bin every other hour)
SHIFT_MEMORY = 3
#: hours two sightings may differ by and still be one shift: the check's resolution (a local hour binned
#: into deciles matches k or k +- 1 hours about equally well)
SHIFT_TOLERANCE = 1.0


def _persistent_shifts(ms: ModelState, lay: Layout, findings: list[Finding], suppressed: list[Finding],
                       start: float) -> list[Finding]:
    """A clock shift is a lasting fact of a producer: the same shift (to within the check's resolution,
    :data:`SHIFT_TOLERANCE`), on the same feature and rows, seen again within :data:`SHIFT_MEMORY` windows. One hour that happens to look like another hour of the
    usual day (a weekend or a holiday against weekday history: the branches close, the channel mix
    turns over) does not come back with the same shift; a producer's clock error does. A first
    sighting waits (held: the feature's generic drift waits with it) and is remembered.

    When training showed features that the clock sets (a local hour, a weekday: ``hourly["clock"]``),
    they witness the clock directly: a shift of another feature is a sighting only when a clock
    feature of the same rows shows the same shift in the same window (a wrong clock moves them all
    by as much, every hour; a mix that looks like another hour - a closed branch on a Sunday
    morning looks like the hour before opening, and one hour later like the same hour again, so
    its "shift" grows by an hour per window - does not). An unwitnessed sighting neither fires nor
    is remembered, so it cannot pair with a witnessed one an hour later.
    """
    clock = set((lay.ref.hourly or {}).get("clock") or ())
    shifts = [f for f in findings + suppressed if f.statistic == "time_shift_hours"]
    witnessed = [(f.row, f.value) for f in shifts if f.feature in clock]

    def witnessed_here(f: Finding) -> bool:
        return not clock or f.feature in clock or any(r == f.row and abs(v - f.value) <= SHIFT_TOLERANCE
                                                      for r, v in witnessed)

    horizon = SHIFT_MEMORY * ms.settings.window
    seen = {k: v for k, v in ms.clock_shifts.items() if start - v[1] < horizon}
    out: list[Finding] = []
    for f in findings:
        if f.statistic != "time_shift_hours":
            out.append(f)
            continue
        key = f"{f.feature}|{slice_key(lay.row_label(f.row))}"
        prev = seen.get(key)
        again = prev is not None and abs(prev[0] - f.value) <= SHIFT_TOLERANCE and prev[1] < start
        ok = witnessed_here(f)
        if again and ok:
            out.append(f)
        else:
            suppressed.append(f)
        if ok:
            seen[key] = [f.value, start]
    for f in suppressed:  # a shift held by a more specific finding is still a sighting (when witnessed)
        if f.statistic == "time_shift_hours" and witnessed_here(f):
            seen.setdefault(f"{f.feature}|{slice_key(lay.row_label(f.row))}", [f.value, start])
    ms.clock_shifts = seen
    return out


def _gauges(lay: Layout, v: Any, results: list[Any]) -> dict[tuple[str, str, str, str], tuple[float, dict[str, str], float]]:
    """Latest tested value per (kind, statistic, feature, slice) for the metrics exporter."""
    out: dict[tuple[str, str, str, str], tuple[float, dict[str, str], float]] = {}
    real = np.flatnonzero(~v.comp)
    labels = {int(k): lay.row_label(int(v.rows[k])) for k in real}
    keys = {k: slice_key(sl) for k, sl in labels.items()}
    for r in results:
        ks = real[r.tested[real]]
        if ks.size == 0:
            continue
        vals = r.value[ks].tolist()
        thr_arr = r.threshold[ks].tolist() if isinstance(r.threshold, np.ndarray) else None
        feat = r.feature or ""
        for i, k in enumerate(ks.tolist()):
            val = vals[i]
            if not math.isfinite(val):
                continue
            thr = thr_arr[i] if thr_arr is not None else float(r.threshold)
            out[(r.kind, r.statistic, feat, keys[k])] = (val, labels[k], thr)
    return out


def _top(d: dict[str, int]) -> str | None:
    return max(d.items(), key=lambda kv: kv[1])[0] if d else None


def _fmt(t: float) -> str:
    from detector.core.inputs.timeparse import format_ts

    return format_ts(t)
