"""From many test results to a few findings: FDR control, slice localisation, de-duplication.

1. **Multiple testing.** Every tested (statistic x feature x slice) in the window is one
   hypothesis; Benjamini-Hochberg at ``fdr_q`` over all of them keeps the expected share of
   false discoveries bounded however many features and slices a model has. A finding also needs
   its effect size over the threshold, so huge volumes do not turn trivia into alerts.
2. **Localisation.** A fault in one slice also moves the all-traffic row. For each statistic,
   a breaching slice whose *complement* (all traffic minus that slice) was tested and is clean
   (its effect under the threshold: a complement too small to show the effect is not "clean")
   explains the breach: the finding is reported for that slice alone, whatever the all-traffic
   row shows (a p95 latency x6 in one channel moves the overall p95 almost as much). If the rest
   of the traffic breaches too, the fault is global and slice rows are not reported separately.
3. **De-duplication.** One root cause moves several statistics of a feature (a unit change also
   moves PSI and the out-of-range share). Per (feature, slice) only the most specific kind is
   kept, in the order of :data:`PRIORITY`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.core.checks.window import Result, View
from detector.core.decisions import kinds
from detector.core.stats import distributions as stats

__all__ = ["Finding", "PseudoRows", "select_findings", "dedup", "hold_generic", "is_generic", "PRIORITY", "SPECIFIC"]

# most specific first: the statistic that names a root cause wins over generic distribution shift
PRIORITY = kinds.priority("input")
_RANK = {k: i for i, k in enumerate(PRIORITY)}
# New category values come from encoders and lookups shared by all traffic; when they show in
# all traffic, a slice that merely holds the renamed category (DE lives in region=eu) does not
# make it a slice problem.
GLOBAL_FIRST = frozenset({"unseen_categories"})


#: kinds that name a root cause in the feature pipeline (they win over generic drift of the same feature)
SPECIFIC = kinds.PIPELINE_KINDS & kinds.INPUT_KINDS  # schema, unit_shift, missing_values, default_value_spike, unseen_categories


def is_generic(kind: str, statistic: str) -> bool:
    """A distribution-shift statistic that says *that* a feature moved, not why (PSI, L-inf, range, mean)."""
    return kind in ("feature_drift", "score_drift") and statistic not in ("time_shift_hours", "value_share",
                                                                         "value_share_vs_seasonal", "value_share_24h")


def hold_generic(findings: list[Finding], specific: set[str], suppressed: list[Finding]) -> list[Finding]:
    """Generic drift of a feature that a specific check (this window, or an open incident) explains waits:
    the page names the specific cause, and only the specific one."""
    named = specific | {f.feature for f in findings if f.kind in SPECIFIC and f.feature is not None}
    named |= {f.feature for f in findings if f.statistic == "time_shift_hours"}
    held = [f for f in findings if f.feature in named and is_generic(f.kind, f.statistic)]
    suppressed.extend(held)
    return [f for f in findings if not any(f is h for h in held)]


def _rank(kind: str, stat: str) -> int:
    return _RANK.get((kind, stat), _RANK.get((kind, None), len(PRIORITY)))


@dataclass
class Finding:
    kind: str
    feature: str | None
    row: int
    statistic: str
    value: float
    threshold: float
    severity: str
    pvalue: float | None
    evidence: dict[str, Any]
    summary: str
    effect: float

    @property
    def row_is_slice(self) -> bool:
        return self.row != 0


@dataclass
class PseudoRows:
    """What selection reads of the pseudo-rows results are computed on (a window's :class:`View`, a cohort's,
    a parity window's): the slice row of each, whether it is a complement, and its events."""

    rows: np.ndarray
    comp: np.ndarray
    events: np.ndarray


def select_findings(results: list[Result], v: View | PseudoRows, q: float,
                    suppressed: list[Finding] | None = None) -> list[Finding]:
    real = ~v.comp
    # ---- 1. BH over every tested hypothesis on real rows (deterministic facts have NaN p)
    ps: list[np.ndarray] = []
    for r in results:
        m = r.tested & real & ~np.isnan(r.pvalue)
        ps.append(np.where(m, r.pvalue, np.nan))
    flat = np.concatenate(ps) if ps else np.zeros(0)
    rej_flat = stats.benjamini_hochberg(flat, q) if flat.size else np.zeros(0, bool)
    out: list[Finding] = []
    pos = 0
    comp_index = {int(r): k for k, r in enumerate(v.rows.tolist()) if v.comp[k]}
    for r, p in zip(results, ps, strict=True):
        rej = rej_flat[pos : pos + len(p)]
        pos += len(p)
        significant = rej | (r.tested & np.isnan(r.pvalue))
        hit = r.tested & r.warn & significant & real
        if not hit.any():
            continue
        idx = np.flatnonzero(hit)
        rows = v.rows[idx]
        effect = r.effect if r.effect is not None else np.abs(np.nan_to_num(r.value))
        # ---- 2. localisation
        keep: list[int] = []
        global_hit = bool(hit[0]) and v.rows[0] == 0
        localized: list[int] = []
        for k, row in zip(idx.tolist(), rows.tolist(), strict=True):
            if row == 0:
                continue
            ci = comp_index.get(row)
            if ci is None:
                continue
            # the rest of the traffic was tested and is clean (its effect is under the threshold, so
            # low power cannot pass for "clean"): the slice explains the breach
            if bool(r.tested[ci]) and not bool(r.warn[ci]):
                localized.append(k)
        if not localized and global_hit and r.kind not in GLOBAL_FIRST:
            # all traffic breaches and the rest of the traffic outside one slice was tested and is clean:
            # that slice explains it, even when it is too small to be tested on its own in this window
            for k in np.flatnonzero(real & (v.rows != 0)).tolist():
                ci = comp_index.get(int(v.rows[k]))
                if ci is not None and bool(r.tested[ci]) and not bool(r.warn[ci]) and v.events[k] > 0:
                    localized.append(k)
        if localized:
            best_k = max(localized, key=lambda k: (effect[k], -v.events[k]))
            # new category values come from encoders shared by all traffic: they stay global
            keep = [0] if global_hit and r.kind in GLOBAL_FIRST else [best_k]
        elif global_hit:
            keep = [0]
        else:
            keep = [k for k in idx.tolist() if v.rows[k] != 0]
        for k in keep:
            thr = float(r.threshold[k]) if isinstance(r.threshold, np.ndarray) else float(r.threshold)
            pv = float(r.pvalue[k])
            out.append(Finding(
                kind=r.kind, feature=r.feature, row=int(v.rows[k]), statistic=r.statistic, value=float(r.value[k]),
                threshold=thr, severity="critical" if r.crit[k] else "warning",
                pvalue=None if np.isnan(pv) else pv, evidence=r.evidence(k), summary=r.summary(k), effect=float(effect[k]),
            ))
    return dedup(out, suppressed)


def dedup(out: list[Finding], suppressed: list[Finding] | None = None) -> list[Finding]:
    """One finding per (feature, row): the most specific kind (the others go to ``suppressed``)."""
    best: dict[tuple[str | None, int, str], Finding] = {}
    for f in out:
        group = "feature" if f.feature is not None else f.kind
        key = (f.feature, f.row, group)
        cur = best.get(key)
        if cur is None or _rank(f.kind, f.statistic) < _rank(cur.kind, cur.statistic):
            best[key] = f
    # a slice whose clock is shifted explains its feature's drift in all traffic
    shifted = {f.feature for f in best.values() if f.statistic == "time_shift_hours" and f.row != 0}
    kept = sorted((f for f in best.values() if not (f.row == 0 and f.feature in shifted and f.kind == "feature_drift"
                                                    and f.statistic != "time_shift_hours")),
                  key=lambda f: (_rank(f.kind, f.statistic), f.feature or "", f.row))
    if suppressed is not None:
        ids = {id(f) for f in kept}
        suppressed.extend(f for f in out if id(f) not in ids)
    return kept
