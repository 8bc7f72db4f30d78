"""Explaining an evaluation's outcome findings: the most specific cause per slice row.

:func:`explain` attributes findings (see :mod:`detector.core.outcomes.monitor`, step 3): with stable
inputs, all traffic's observed/expected against training is the label-drift hypothesis; incomplete
labels explain base-rate and calibration moves (:func:`incomplete`); performance or calibration
falling while inputs and labels are stable is ``concept_drift``; a global finding covers the slice
findings of its kind; one finding per slice row survives, by :data:`PRIORITY` (the kind registry's
outcome order), the others listed in its evidence as ``also``. Every task's findings go through it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from detector.core.decisions import kinds
from detector.core.decisions.select import Finding
from detector.core.outcomes.cohort import C
from detector.core.outcomes.delay_checks import DELAY_STATS
from detector.core.stats.effects import div as _div

__all__ = ["explain", "incomplete", "rank", "PRIORITY"]

#: per slice row, the most specific explanation wins
PRIORITY = kinds.priority("outcome")


def rank(f: Finding) -> int:
    for i, (k, s) in enumerate(PRIORITY):
        if f.kind == k and (s is None or s == f.statistic):
            return i
    return len(PRIORITY)


def explain(findings: list[Finding], rows: np.ndarray, comp: np.ndarray, stable: np.ndarray,
             incomplete: np.ndarray, concept_firing: bool, inputs_stable: bool = False) -> tuple[list[Finding], bool]:
    """Attribute findings to the most specific explanation (see the module docstring)."""
    pos = {int(r): i for i, (r, cp) in enumerate(zip(rows.tolist(), comp.tolist(), strict=True)) if not cp}
    # 0. outcomes against what training's outcomes predict for these scores (O/E vs training) is the
    #    outcome base rate for this score mix - the label-drift hypothesis. With the inputs unchanged, a
    #    move of it is the outcome prior moving, not the scores' meaning, when it has the prior's shape
    #    (:mod:`detector.core.outcomes.prior_shift`): the calibration slope held, and the move is shared by
    #    all traffic - a slice that moved as the rest of traffic did is the same shift, seen first where
    #    the evidence is strongest. A slope change or a local move stays calibration (concept drift).
    if inputs_stable:
        findings = [replace(f, kind="label_drift", summary=f.summary.replace(": scores are miscalibrated", "") +
                            (" with the inputs unchanged: the outcome prior moved" if f.row == 0 else
                             f" and the rest of traffic's moved the same way "
                             f"({f.evidence['prior_shift']['rest_of_traffic_ratio']}x) with the inputs unchanged "
                             "and the calibration slope as in training: the outcome prior moved everywhere"))
                    if f.kind == "calibration" and f.statistic == "observed_expected_ratio" and _prior_shaped(f) else f
                    for f in findings]
    # 1. incomplete labels explain base-rate and calibration moves
    delay_rows = {f.row for f in findings if f.kind == "label_delay" and f.statistic in DELAY_STATS}
    delay_rows |= {f.row for f in findings if f.kind in ("label_drift", "calibration") and incomplete[pos.get(f.row, 0)]}
    if delay_rows:
        findings = [f for f in findings if not (f.kind in ("label_drift", "calibration") and (f.row in delay_rows or 0 in delay_rows))]
    # 2. performance or calibration moved while inputs and the base rate are stable: the input-outcome
    #    relationship changed (concept drift)
    out: list[Finding] = []
    for f in findings:
        if f.kind in ("performance", "calibration") and (stable[pos.get(f.row, 0)] or concept_firing):  # sticky while it lasts
            f = replace(f, kind="concept_drift", summary=f.summary + " while inputs and the label base rate are stable")
        out.append(f)
    # 3. while the relationship itself changes, outcome rates that move against the scores are part of it
    if concept_firing or any(f.kind == "concept_drift" and f.row == 0 for f in out):
        # (a slice whose outcome rate disagrees with its training rate is the same change seen in a slice)
        out = [replace(f, kind="concept_drift", summary=f.summary + " (alongside a change of the input-outcome relationship)")
               if f.kind == "label_drift" or f.statistic == "base_rate_inconsistency" else f for f in out]
    # 4. a global finding covers the slice findings of its kind (as in select)
    global_kinds = {f.kind for f in out if f.row == 0}
    out = [f for f in out if f.row == 0 or f.kind not in global_kinds]
    # 5. one finding per row: the most specific
    best: dict[int, Finding] = {}
    also: dict[int, list[str]] = {}
    for f in sorted(out, key=lambda f: (rank(f), -f.effect)):
        if f.row in best:
            also[f.row].append(f"{f.kind}/{f.statistic}")
        else:
            best[f.row] = f
            also[f.row] = []
    final = []
    for r, f in best.items():
        if also[r]:
            f = replace(f, evidence={**f.evidence, "also": also[r]})
        final.append(f)
    return sorted(final, key=lambda f: (rank(f), f.row)), bool(delay_rows)


def _prior_shaped(f: Finding) -> bool:
    """Has this observed/expected move the shape of a shift of the outcome prior? The binary checks say so in
    the evidence (``prior_shift``); a task without that test (multiclass) keeps the all-traffic rule."""
    ps = f.evidence.get("prior_shift")
    return bool(ps.get("shared")) if isinstance(ps, dict) else f.row == 0


def incomplete(cur: np.ndarray, base: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per pseudo-row: is the base-rate move explained by labels still missing at this age?

    With ``E`` positives expected among the ``n`` labelled (rate ``pe = E / n``), a drop to ``y``
    needs ``(E - y) / (1 - pe)`` missing positives (a rise needs ``(y - E) / pe`` missing
    negatives). If the labelled share fell below the baseline's by at least half that many
    labels, significantly (p < 0.01), the move is attributed to label delay, not label drift.
    """
    from detector.core.stats import distributions as stats

    n, y, npred = cur[:, C["lab"]], cur[:, C["pos"]], cur[:, C["pred"]]
    pe = _div(expected, n)
    mrb = _div(base[:, C["lab"]], base[:, C["pred"]])
    ok = ~np.isnan(pe) & ~np.isnan(mrb) & (npred > 0) & (pe > 0) & (pe < 1)
    pb_, mrb_ = np.where(ok, pe, 0.5), np.where(ok, mrb, 0.5)
    need = np.where(y < pb_ * n, (pb_ * n - y) / (1 - pb_), (y - pb_ * n) / pb_)
    deficit = mrb_ * npred - n
    pv = np.asarray(stats.proportion_test(n, npred, np.clip(mrb_, 0, 1), "less", n0=np.maximum(base[:, C["pred"]], 1)))
    return ok & (deficit >= 0.5 * need) & (deficit > 0) & (pv < 0.01)
