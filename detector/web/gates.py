"""The seed article's go/no-go gates and the fix-data / fix-model / fix-system verdict.

Pure functions over an engine's state and its incidents; ``skewwatch report`` and the status
page render what they return. A gate is ``pass`` / ``fail`` / ``unknown`` with the evidence lines
behind it; the verdict picks the lever the open incidents point at (data first: do not retrain
until the model sees in serving what it saw in training).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.decisions import kinds
from detector.web import finite
from detector.web.alert_text import CAUSE_TEXT, breach_ratio, slice_text
from detector.web.distributions import stats_for
from detector.web.svg import fmt_num, fmt_pct

PIPELINE_KINDS = kinds.PIPELINE_KINDS
DECISION_KINDS = frozenset(k.name for k in kinds.KINDS.values() if k.cause == "decision_policy")
LEVERS = kinds.ACTIONS
#: the lever a failing gate points at when no incident says otherwise
GATE_LEVER = {"measurement": "fix_data", "replay": "fix_system", "parity": "fix_data", "decisioning": "fix_system",
              "adoption": "fix_system"}
MIN_MATCH_RATE = 0.9  # share of labels that must find their prediction for metrics to be trusted
MAX_INVALID_SHARE = 0.05  # share of production events the replay may fail to decode
MAX_OVERRIDE_RATE = 0.3  # share of the model's actions humans may override before adoption fails
MAX_ECE = 0.05  # calibration error above which (and well above its baseline) the decisioning gate fails
LEVER_TEXT = {
    "fix_data": ("Fix data", "Repair feature parity first, then tighten label definitions, then refresh the training data "
                 "with time-correct snapshots. Do not retrain until the model sees in serving what it saw in training."),
    "fix_model": ("Fix model", "The pipeline is sound but the mapping from inputs to outcomes moved (concept or label "
                  "drift): new features, a different objective, or retraining on recent data."),
    "fix_system": ("Fix the system", "The model is fine; the decision system around it is not: thresholds, calibration, "
                   "fallbacks and serving health, queue capacity, UI and adoption."),
}
GATES = (
    ("measurement", "1 · Measurement", "KPI and model metrics computable reliably, with a clear ground truth and a baseline."),
    ("replay", "2 · Replay", "Offline replay on production inputs matches live scoring behaviour."),
    ("parity", "3 · Parity", "Feature availability and distributions within agreed bounds."),
    ("decisioning", "4 · Decisioning", "Thresholds and costs agreed, calibrated, feasible with operational capacity."),
    ("adoption", "5 · Adoption", "Users act on the output as intended, with override reasons captured."),
)


@dataclass
class Gate:
    key: str
    title: str
    question: str
    status: str = "unknown"  # pass | fail | unknown
    evidence: list[str] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    lever: str = ""  # the lever a failure points at when no incident says otherwise ("" = GATE_LEVER)


def outcome_stats(engine: Any, model: str) -> dict[str, Any]:
    mon = getattr(engine, "outcomes", None)
    fn = getattr(mon, "stats", None)
    if fn is None:
        return {}
    try:
        st = fn(model)
    except Exception:  # noqa: BLE001 - the outcome monitor is optional and evolving
        return {}
    return st if isinstance(st, dict) else {}


def evaluate_gates(engine: Any, model: str, incidents: Sequence[dict[str, Any]], *,
                   overrides: dict[str, Any] | None = None, live: dict[str, Any] | None = None) -> list[Gate]:
    """The seed article's five go/no-go gates for one model, with evidence."""
    gates = {k: Gate(k, t, q) for k, t, q in GATES}
    ms = engine.models.get(model)
    ref = ms.layout.ref if ms is not None else engine.reference_for(model)
    st = outcome_stats(engine, model)
    glob = (st.get("slices") or {}).get("") or {}
    labels = st.get("labels") or {}
    c = engine.counters
    _measurement(gates["measurement"], engine, ref, incidents, st, glob, labels)
    _replay(gates["replay"], engine, ms, ref, incidents, live, c)
    _parity(gates["parity"], engine, ms, incidents, st)
    _decisioning(gates["decisioning"], engine, model, ms, incidents, glob, inputs_ok=gates["parity"].status == "pass")
    _adoption(gates["adoption"], overrides)
    return list(gates.values())


def _inc_line(r: dict[str, Any]) -> str:
    a = r["alert"]
    return f"{a.get('kind')} {a.get('feature') or ''} ({slice_text(a.get('slice'))})".replace("  ", " ")


def _measurement(g: Gate, engine: Any, ref: Any, incidents: Sequence[dict[str, Any]], st: dict[str, Any],
                 glob: dict[str, Any], labels: dict[str, Any]) -> None:
    bad = [r for r in incidents if r["kind"] == "label_delay" or r["cause"] == "label_quality"]
    g.incidents = bad
    if engine.counters.labels == 0 and not glob:
        g.status = "unknown"
        g.evidence.append("no labels were joined: send label events (topic `labels`, or --labels L.jsonl) to measure "
                          "the model against ground truth")
        return
    mr = finite(labels.get("match_rate"))
    cov = finite(labels.get("coverage"))
    if mr is not None:
        g.evidence.append(f"{fmt_pct(mr)} of labels found their prediction (label match rate; needs ≥ {fmt_pct(MIN_MATCH_RATE, 0)})")
    if cov is not None:
        g.evidence.append(f"{fmt_pct(cov)} of predictions that left the join store had a label (coverage)")
    if glob:
        g.evidence.append(f"last matured cohort: {glob.get('labels', 0):,} labels for {glob.get('predictions', 0):,} "
                          f"predictions; label delay p50 {duration_text(glob.get('delay_p50_s'))}, p90 {duration_text(glob.get('delay_p90_s'))}")
    base = getattr(ref, "label_base_rate", None)
    if base is not None:
        g.evidence.append(f"baseline: training base rate {fmt_pct(base)} ({getattr(ref, 'label_count', 0):,} labels)"
                          + (f"; production now {fmt_pct(glob.get('base_rate'))}" if glob.get("base_rate") is not None else ""))
    else:
        g.evidence.append("the reference has no label column: rebuild it with `skewwatch baseline --label-column` for a "
                          "training baseline (the trailing production baseline is used meanwhile)")
    _settle(g, bad, _open(bad) or (mr is not None and mr < MIN_MATCH_RATE), bool(glob),
            "labels arrived but no prediction cohort has matured yet (label delay): run over a longer period")


def _replay(g: Gate, engine: Any, ms: Any, ref: Any, incidents: Sequence[dict[str, Any]], live: dict[str, Any] | None,
            c: Any) -> None:
    serving = [r for r in incidents if r["kind"] == "fallback_rate"
               or (r["kind"] == "score_drift" and r["cause"] == "serving_health")]
    g.incidents = serving
    fail = bool(_open(serving))
    n_inv = sum((getattr(c, "invalid", {}) or {}).values())
    total = c.predictions + n_inv
    if total:
        share = n_inv / total
        g.evidence.append(f"{fmt_pct(share, 2)} of production events could not be decoded/validated "
                          f"(limit {fmt_pct(MAX_INVALID_SHARE, 0)})")
        fail |= share > MAX_INVALID_SHARE
    if live is not None:
        same = live["same"]
        g.evidence.append(f"replay vs live alert stream: {len(live['both'])} incident(s) in both, "
                          f"{len(live['only_live'])} only live, {len(live['only_replay'])} only in the replay")
        for what in ("only_live", "only_replay"):
            for a in live[what][:5]:
                g.evidence.append(f"{what.replace('_', ' ')}: {a.get('kind')} {a.get('feature') or ''} "
                                  f"({slice_text(a.get('slice'))}) from {a.get('ts')}")
        fail |= not same
    versions = getattr(ms, "versions", {}) or {}
    if len(versions) > 1:
        g.evidence.append("model versions served: " + ", ".join(f"{v} ({n:,})" for v, n in
                                                                 sorted(versions.items(), key=lambda kv: -kv[1])[:4]))
    stats = [s for s in (stats_for(ms, "score", {}) if ms is not None else []) if s[0] == "score_drift"]
    for kind, stat, val, thr in stats[:1]:
        g.evidence.append(f"score vs training ({kind}/{stat}): {fmt_num(val)} (threshold {fmt_num(thr)})")
    _evidence_incidents(g, serving)
    upstream = [r for r in incidents if r["kind"] == "score_drift" and r["cause"] != "serving_health"]
    if fail:
        g.status = "fail"
    elif live is not None or (getattr(ref, "score", None) is not None and stats):
        g.status = "pass"
        if upstream:
            g.evidence.append("scores moved, but with the inputs (" + ", ".join(sorted({CAUSE_TEXT.get(r["cause"], r["cause"])
                                                                                     for r in upstream}))
                              + "): the served model scores those inputs as the validated one would — no serving "
                              "or fallback problem")
        elif live is None:
            g.evidence.append("live scores match the training score distribution and no fallback or serving incident "
                              "fired")
        if live is None:
            g.evidence.append("pass --alerts with the live alert stream to compare the replay alert for alert")
    else:
        g.status = "unknown"
        g.evidence.append("no training scores and no live alert stream to compare: build the reference with "
                          "--score-column, or pass --alerts with the live alerts")


def _parity(g: Gate, engine: Any, ms: Any, incidents: Sequence[dict[str, Any]], st: dict[str, Any]) -> None:
    bad = [r for r in incidents if r["kind"] in PIPELINE_KINDS or r["kind"] == "feature_drift"]
    g.incidents = bad
    last = getattr(ms, "last_stats", {}) if ms is not None else {}
    feats = {k[2] for k in last if k[2] and k[2] != "score"}
    slices = {k[3] for k in last}
    if last:
        g.evidence.append(f"last window: {len(feats)} features × {len(slices)} slice rows tested against training "
                          "and production history")
        worst = sorted(((breach_ratio(st_, v, t), k, st_, f, sl, v, t) for (k, st_, f, _), (v, sl, t) in last.items()
                        if f and f != "score"), key=lambda x: -x[0])[:3]
        for r, k, st_, f, sl, v, t in worst:
            where = "past its bound" if r > 1 else "closest to its bound"
            g.evidence.append(f"{where}: {f} ({slice_text(sl)}) {k}/{st_} = {fmt_num(v)} vs {fmt_num(t)}")
    par = ((st.get("parity") or {}).get("features")) or {}
    compared = sum(int((per.get("") or {}).get("compared") or 0) for per in par.values())
    if par:
        worst_p = sorted(((float((per.get("") or {}).get("mismatch_rate") or 0.0), f) for f, per in par.items()),
                         reverse=True)[:3]
        g.evidence.append(f"served vs offline values: {compared:,} feature values compared; highest mismatch: "
                          + ", ".join(f"{f} {fmt_pct(r)}" for r, f in worst_p))
    else:
        g.evidence.append("no offline feature events joined: send them (topic `features`, or --features F.jsonl) "
                          "for value-level parity")
    _settle(g, bad, _open(bad), bool(last), "no window has been evaluated yet")


def _decisioning(g: Gate, engine: Any, model: str, ms: Any, incidents: Sequence[dict[str, Any]],
                 glob: dict[str, Any], inputs_ok: bool = False) -> None:
    bad = [r for r in incidents if r["kind"] in DECISION_KINDS]
    g.incidents = bad
    fail = bool(_open(bad))
    known = False
    last = getattr(ms, "last_stats", {}) if ms is not None else {}
    for (kind, stat, _f, sk), (v, _sl, t) in last.items():
        if kind == "decision_rate" and sk == "":
            known = True
            if stat == "threshold":
                g.evidence.append(f"decision threshold in force in the last window: {fmt_num(v)}")
            else:
                g.evidence.append(f"{stat.replace('_', ' ')} in the last window: {fmt_num(v)}"
                                  + (f" (limit {fmt_num(t)})" if math.isfinite(t) and t else ""))
    try:
        cur, base, _m = model_cohorts(engine, model)
        e_cur, e_base = _ece(cur), _ece(base)
    except Exception:  # noqa: BLE001 - the outcome monitor is optional and evolving
        e_cur = e_base = None
    if e_cur is None and glob:
        e_cur = finite(glob.get("ece"))
    if e_cur is not None:
        known = True
        g.evidence.append(f"calibration error (ECE) of the recent cohorts {e_cur:.3f}"
                          + (f" vs {e_base:.3f} in clean baseline cohorts" if e_base is not None else ""))
        if e_cur > MAX_ECE and (e_cur > 2 * e_base + 0.02 if e_base is not None else e_cur > 2 * MAX_ECE):
            fail = True
            g.evidence.append("scores are miscalibrated: thresholds and expected costs computed from them are off")
            if inputs_ok and not _open(bad):
                g.lever = "fix_model"
                g.evidence.append("with the inputs within bounds, calibration falling means the input → outcome "
                                  "mapping moved (concept drift): recalibrate now, retrain if it persists")
    if glob:
        thr, best = finite(glob.get("threshold")), finite(glob.get("best_threshold"))
        if thr is not None and best is not None:
            g.evidence.append(f"last matured cohort: threshold in force {thr:.2f}, cost-minimising threshold {best:.2f} "
                              f"(expected cost {fmt_num(finite(glob.get('expected_cost')))} per prediction)")
        elif thr is not None:
            g.evidence.append(f"threshold in force {thr:.2f}; no costs configured (cost_fp / cost_fn in the config), "
                              "so the threshold cannot be checked against them")
    costs = getattr(getattr(engine, "outcomes", None), "costs", {}) or {}
    cap = (costs.get(model) or (None, None, None))[2] if isinstance(costs.get(model), tuple | list) else None
    w = getattr(ms, "last_window", None)
    if cap is not None and w is not None:
        try:
            from detector.core.inputs.window import RATE

            acted = float(w.rates[0, RATE["acted"]])
            g.evidence.append(f"{acted:,.0f} actions in the last window vs a review capacity of {cap:,}")
            if acted > cap:
                fail = True
                g.evidence.append("the policy asks for more actions than the team can handle")
        except Exception:  # noqa: BLE001
            pass
    _settle(g, bad, bool(fail), bool(known), "no decisions, thresholds or matured labels to judge the decision policy: "
            "send `decision` and `threshold` on predictions, and labels")


def _adoption(g: Gate, ov: dict[str, Any] | None) -> None:
    if not ov or not ov.get("overrides"):
        g.status = "unknown"
        g.evidence.append("unknown — send `override` (the human decision or its reason) on prediction events to "
                          "measure adoption" + (f"; {ov.get('acted', 0):,} model actions were seen" if ov else ""))
        return
    acted, n = int(ov.get("acted") or 0), int(ov["overrides"])
    on_acted = int(ov.get("overrides_acted") or 0)
    rate = on_acted / acted if acted else n / max(int(ov.get("decided") or 0), 1)
    g.evidence.append(f"{n:,} overrides; {fmt_pct(rate)} of the model's {acted:,} actions were overridden "
                      f"(limit {fmt_pct(MAX_OVERRIDE_RATE, 0)})")
    reasons: Counter[str] = ov.get("reasons") or Counter()
    if reasons:
        g.evidence.append("override reasons: " + ", ".join(f"{k} ({fmt_pct(v / n, 0)})" for k, v in reasons.most_common(4)))
    g.status = "fail" if rate > MAX_OVERRIDE_RATE else "pass"
    if g.status == "fail":
        g.evidence.append("people do not act on the model's output as intended: review the workflow, UI and incentives")


def _open(incs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Incidents still open: a gate is go / no-go *now*; resolved ones stay as evidence."""
    return [r for r in incs if r["open"]]


def _settle(g: Gate, incs: Sequence[dict[str, Any]], fail: bool, known: bool, unknown_why: str) -> None:
    """A gate's incidents as evidence, then its status: fail, else pass when there was something to judge, else
    unknown (saying what is missing)."""
    _evidence_incidents(g, incs)
    if fail:
        g.status = "fail"
    elif known:
        g.status = "pass"
    else:
        g.status = "unknown"
        g.evidence.append(unknown_why)


def _evidence_incidents(g: Gate, incs: Sequence[dict[str, Any]], limit: int = 3) -> None:
    for r in incs[:limit]:
        g.evidence.append(f"{'open' if r['open'] else 'resolved'}: {_inc_line(r)} — {r['alert'].get('summary', '')}")
    if len(incs) > limit:
        g.evidence.append(f"… and {len(incs) - limit} more incident(s) (see the timeline)")


def _ece(cohorts: Sequence[Any]) -> float | None:
    """Expected calibration error of summed cohorts (all traffic), from their reliability bins."""
    if not cohorts:
        return None
    rel = sum(np.asarray(c.rel[0], dtype=np.float64) for c in cohorts)
    n = float(rel[:, 0].sum())
    return float(np.abs(rel[:, 1] - rel[:, 2]).sum() / n) if n > 0 else None


def duration_text(s: Any) -> str:
    v = finite(s)
    if v is None:
        return "–"
    if v < 5400:
        return f"{v / 60:.0f} min"
    if v < 2 * 86400:
        return f"{v / 3600:.1f} h"
    return f"{v / 86400:.1f} d"


# --------------------------------------------------------------------------- verdict
def verdict_of(incidents: Sequence[dict[str, Any]], gates: Sequence[Gate]) -> dict[str, Any]:
    """The lever to pull first: data before model before system; open incidents before resolved ones."""
    by: dict[str, list[dict[str, Any]]] = {k: [] for k in LEVERS}
    for r in incidents:
        if r["action"] in by:
            by[r["action"]].append(r)
    open_by = {k: [r for r in v if r["open"]] for k, v in by.items()}
    primary = next((k for k in LEVERS if open_by[k]), None)
    basis = "open incident(s)"
    if primary is None:
        primary = next((k for k in LEVERS if by[k]), None)
        basis = "incident(s) during the period, all resolved,"
    failed = [g for g in gates if g.status == "fail"]
    if primary is None and failed:
        primary = failed[0].lever or GATE_LEVER[failed[0].key]
        basis = f"no incident fired, but the {failed[0].key} gate fails"
    return {"lever": primary, "basis": basis, "by_lever": by, "open_by_lever": open_by,
            "failed_gates": [g.key for g in failed]}


# --------------------------------------------------------------------------- outcomes: cohorts


def model_cohorts(engine: Any, model: str) -> tuple[list[Any], list[Any], Any]:
    """(current cohorts, clean baseline cohorts, outcome model state) from the outcome monitor."""
    mon = getattr(engine, "outcomes", None)
    m = (getattr(mon, "models", None) or {}).get(model)
    done = getattr(m, "done", None) or {}
    ev = [c for _, c in sorted(done.items()) if getattr(c, "evaluated", False) and hasattr(c, "cnt")]
    if not ev:
        return [], [], m
    # current: the trailing run of cohorts that belong to an incident (not clean), at most 6;
    # when the latest cohort is clean, just that one
    cur: list[Any] = []
    for c in reversed(ev):
        if getattr(c, "in_baseline", False) or len(cur) >= 6:
            break
        cur.insert(0, c)
    if not cur:
        cur = ev[-1:]
    base = [c for c in ev if getattr(c, "in_baseline", False) and all(c is not x for x in cur)]
    return cur, base, m
