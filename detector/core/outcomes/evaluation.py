"""One matured cohort turned into outcome checks, findings and alerts.

:func:`evaluate` runs when a cohort has matured (its end + the label age, see
:meth:`~detector.core.outcomes.monitor.OutcomeMonitor.advance`):

1. the cohort is pooled with the cohorts matured just before it (:func:`pool_for`) until the pool holds
   ``min_events`` labelled positives and negatives (a day at most), and compared with the trailing
   baseline (:func:`clean_baseline`: the last ``baseline_cohorts`` clean matured cohorts evaluated at the
   same label age) and the training reference;
2. the task's checks run (:func:`~detector.core.outcomes.binary_eval.binary_results` for a binary model,
   :func:`~detector.core.outcomes.tasked.task_results` for the others) with Benjamini-Hochberg across the
   evaluation's tests and slice localisation (:func:`~detector.core.decisions.select.select_findings`);
3. the findings are explained (:func:`~detector.core.outcomes.explain.explain`): a base-rate or calibration
   move is attributed to label delay - not reported as label drift - when a delay shift was found, a
   label-delay incident is open, a delay shift was seen and the maturity is still catching up with it (rose
   by more than 20% over the last day), or a significant drop of the labelled share can account for it;
   performance falling while inputs (no all-traffic input alert fired while the cohort matured:
   :func:`input_change`) and the base rate are stable becomes ``concept_drift``, and all traffic's outcomes
   against training's for these scores (O/E) moving with stable inputs is ``label_drift``; a global finding
   covers the slice findings of its kind; one finding per slice row survives (priority
   :data:`~detector.core.outcomes.explain.PRIORITY`, the others are listed in its evidence as ``also``);
4. alerts go through ``engine.alerts.update(..., scope=OUTCOME_KINDS)`` with the time the cohorts matured;
5. bookkeeping: only clean cohorts join the baseline; arrivals and delay histograms roll on; the listeners
   (rules baseline, counterexamples, slice contribution, estimates) see the cohort.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.core.decisions import kinds
from detector.core.decisions.alerts import OUTCOME_KINDS, Alert
from detector.core.decisions.select import PseudoRows, select_findings
from detector.core.inputs.timeparse import format_ts
from detector.core.outcomes.binary_eval import binary_results
from detector.core.outcomes.cohort import C, Cohort
from detector.core.outcomes.cohort_stats import binary_stats, feed_river, slice_key
from detector.core.outcomes.delay_checks import DELAY_STATS
from detector.core.outcomes.explain import explain
from detector.core.outcomes.explain import incomplete as explain_incomplete
from detector.core.outcomes.model_state import OutcomeModel as _Model
from detector.core.outcomes.tasked import task_results, task_stats
from detector.core.outcomes.thresholds import Arrays

__all__ = ["INPUT_CHANGE", "evaluate", "input_change", "pool_for", "clean_baseline"]

#: input alert kinds that mean "the inputs changed" (for concept vs covariate drift)
INPUT_CHANGE = kinds.INPUT_CHANGE
_DAY = 86400.0


def input_change(mon: Any, model: str) -> set[str]:
    """Kinds of the open input incidents that say all traffic's inputs changed (:data:`INPUT_CHANGE`, no
    slice). An incident confined to one slice (a default value in one channel) cannot explain a move of
    the outcomes of all traffic, and must not turn every outcome finding of the model into its consequence."""
    return {str(a.get("kind")) for a in mon.engine.alerts.firing(model)
            if a.get("kind") in INPUT_CHANGE and not a.get("slice")}


def pool_for(mon: Any, m: _Model, c: Cohort, mat: float) -> list[Cohort]:
    """``c`` and the cohorts evaluated just before it at a comparable label age, newest first, until the
    pool holds ``min_events`` labelled positives and negatives (or spans a day): a quiet model or a
    rare outcome is judged over enough pairs, a busy one cohort by cohort."""
    pool = [c]
    pos, lab = c.cnt[0, C["pos"]], c.cnt[0, C["lab"]]
    for d in reversed(m.done.values()):
        # binary: enough positives and negatives; other tasks: enough labelled pairs (twice as many)
        enough = min(pos, lab - pos) if m.binary else lab / 2
        if enough >= mon.settings.min_events or d.start <= c.start - _DAY:
            break
        if not math.isclose(d.horizon, mat) or d.label_suspect:
            break
        pool.append(d)
        pos, lab = pos + d.cnt[0, C["pos"]], lab + d.cnt[0, C["lab"]]
    return pool


def clean_baseline(mon: Any, m: _Model, mat: float, before: float = math.inf, need: int = 0) -> tuple[Cohort | None, float]:
    st = mon.settings
    used = [c for c in reversed(m.done.values()) if c.in_baseline and math.isclose(c.horizon, mat) and c.start < before]
    used = used[: st.baseline_cohorts]
    if len(used) < max(st.min_baseline_cohorts, need):
        return None, math.nan
    b = m.cohort(0.0, 0.0)
    for c in used:
        b.add(c)
    return b, min(c.horizon for c in used)


def evaluate(mon: Any, m: _Model, c: Cohort, mat: float) -> list[Alert]:
    st, th = mon.settings, mon.settings.thresholds
    eng = mon.engine
    lay = m.layout
    del m.open[c.start]
    # labels folded before the label age was known (or at a smaller one): not measured at this age,
    # so it is compared with nothing and nothing is compared with it (its metrics are still reported)
    comparable = c.gate >= mat or math.isclose(c.gate, mat)
    c.horizon = mat
    pool = pool_for(mon, m, c, mat) if comparable else [c]
    base, base_h = clean_baseline(mon, m, mat, before=pool[-1].start, need=2 * len(pool)) if comparable else (None, math.nan)
    if m.binary:
        feed_river(m, c, base, st.river_pairs, th.river_brier_ratio)
    pooled = m.cohort(pool[-1].start, c.end)
    for d in pool:
        pooled.add(d)
    active = lay.active_rows()
    real = active[pooled.cnt[active, C["pred"]] > 0]
    if real.size == 0 or real[0] != 0:
        real = np.concatenate([[0], real[real != 0]])
    srows = real[real != 0]
    rows = np.concatenate([real, srows])
    comp = np.concatenate([np.zeros(real.size, bool), np.ones(srows.size, bool)])

    def ext(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[real], a[0][None] - a[srows]], axis=0)

    arr_b = np.sum(list(m.arr_hist), axis=0) if m.arr_hist else np.zeros_like(m.arrivals)
    b = base or m.cohort(0.0, 0.0)
    cur = Arrays(ext(pooled.cnt), ext(pooled.rel), ext(pooled.hist), ext(pooled.delay), ext(m.arrivals))
    bas = Arrays(ext(b.cnt), ext(b.rel), ext(b.hist), ext(b.delay), ext(arr_b))
    firing = (eng.alerts.firing_kinds(m.name) - INPUT_CHANGE) | input_change(mon, m.name)
    inputs_stable = not ((c.input_kinds | firing) & INPUT_CHANGE)
    if m.binary:
        results, stable, expected, lab_unstable = binary_results(mon, m, c, cur, bas, rows, comp, ext, mat, base_h,
                                                                 inputs_stable, firing)
        incomplete = explain_incomplete(cur.cnt, bas.cnt, expected)
    else:
        results, stable = task_results(mon, m, c, pooled, b, base_h, real, srows, comp, inputs_stable, firing)
        lab_unstable = ~stable & inputs_stable & ("label_drift" not in firing)  # the labels moved
        incomplete = np.zeros(rows.size, bool)
    view = PseudoRows(rows, comp, cur.cnt[:, C["lab"]])
    findings = select_findings(results, view, eng.settings.fdr_q)
    day_ago = [d.horizon for d in m.done.values() if d.start > c.start - _DAY]
    rising = bool(day_ago) and mat > 1.2 * min(day_ago)  # the maturity is still catching up
    m.delay_unsettled = m.delay_unsettled and rising
    if m.delay_unsettled or any(a.get("kind") == "label_delay" and a.get("statistic") in DELAY_STATS
                                for a in eng.alerts.firing(m.name)):
        incomplete[:] = True  # after a delay shift: labels at this age are not comparable yet
    findings, delay_shift = explain(findings, rows, comp, stable, incomplete, "concept_drift" in firing, inputs_stable)
    if not comparable:
        findings = []
    label_stable = not lab_unstable[0] and "label_drift" not in firing and not any(f.kind == "label_drift" for f in findings)
    kinds = {f.kind for f in findings} | firing | c.input_kinds
    version = max(c.versions.items(), key=lambda kv: kv[1])[0] if c.versions else None
    ctx = {"kinds": kinds, "inputs_stable": inputs_stable, "label_rate_stable": label_stable,
           "label_delay_shift": delay_shift, "model_version": version}
    window = {"start": format_ts(pooled.start), "end": format_ts(c.end), "count": int(pooled.cnt[0, C["lab"]]),
              "_start": pooled.start, "_end": c.end}
    evaluated = {slice_key(lay.row_label(int(r))) for r in real.tolist() if pooled.cnt[r, C["lab"]] >= th.min_labels}
    for f in findings:
        f.evidence = {**f.evidence, "label_age_s": round(mat), "cohorts": len(pool)}
    pairs = [(f, lay.row_label(f.row)) for f in findings]
    # an outcome alert is raised when the cohorts matured: that is its time, not the cohort's end
    alerts = eng.alerts.update(m.name, window, pairs, evaluated, ctx, scope=OUTCOME_KINDS, ts=c.end + mat)
    for a in alerts:
        if a.state == "firing":
            eng.counters.alerts_fired += 1
        else:
            eng.counters.alerts_resolved += 1
    # bookkeeping: the baseline learns only from clean cohorts; arrivals and delays roll on
    c.in_baseline = comparable and not findings and not (eng.alerts.firing_kinds(m.name) & OUTCOME_KINDS)
    if not comparable:
        c.horizon = -1.0
    elif not c.in_baseline:
        for d in pool[1:]:  # pooled with a breach: none of them is a clean reference any more
            d.in_baseline = False
    c.label_suspect = delay_shift or bool(incomplete[0])
    m.delay_unsettled |= delay_shift
    m.done[c.start] = c
    while len(m.done) > 2 * st.baseline_cohorts:
        del m.done[next(iter(m.done))]
    if c.in_baseline:
        m.arr_hist.append(m.arrivals.copy())
        while len(m.arr_hist) > st.baseline_cohorts:
            m.arr_hist.popleft()
    m.arrivals[...] = 0.0
    decay = 0.5 ** (mon.L / st.delay_half_life)
    m.delay_all *= decay
    m.delay_cls *= decay
    m.stats = binary_stats(m, c, real, mat, window) if m.binary else task_stats(m, c, real, mat, window)
    # listeners rank this cohort against the clean cohorts before it (the checks' baseline, which
    # starts before the whole pool, may not exist yet while the pool is being filled)
    lis_base = base if base is not None or not comparable else clean_baseline(mon, m, mat, before=c.start)[0]
    for lis in mon.listeners:
        lis.on_cohort(m, c, lis_base, real, mat, window)
    return alerts
