"""All traffic against its usual mix: a change of the slice mix is not drift.

At a given time of day the traffic usually comes from a given mix of regions and channels. When
the mix itself changes - one region's traffic stops, a holiday closes the branches, a campaign
floods one channel - the all-traffic distributions move although no slice's does. For every slice
dimension whose mix moved (total variation >= :data:`MIX_TV`), :func:`add_variants` appends a
pseudo-row to the window's view: all traffic again, but compared with the usual (same time of day)
counts of that dimension's slices re-weighted to their shares in this window, and with training
likewise (the training profiles of that dimension's slices mixed in this window's shares: a Sunday
without branch traffic is compared with training's non-branch channels). After the checks,
:func:`collapse` keeps, for every test of the all-traffic row, the most charitable of the plain
and the re-mixed comparisons (a clean one if any, else the smallest effect): a shift that the slice
mix along one dimension explains is not reported; one it does not explain still is, and the slice
rows themselves are judged as always. A value of a dimension that carries traffic it never had at
this time cannot be explained by the usual mix, so that dimension gets no variant.

Slice rows have no cross-counts to re-mix (how much of this hour's east traffic is online is not
counted), so for them :func:`detector.core.checks.mixbound.mix_bound_shares` gives the most a value's training share could be under
*any* mix of another dimension whose mix moved: the largest share among that dimension's slices present
in the window. The share of one exact value (a default) in a slice is judged against that bound when it
exceeds the slice's own profile - on a holiday a region's traffic is all online, and online applicants
ask for small limits; a default value served in that region still rises far above every channel's share.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from detector.core.decisions.select import Finding, is_generic
from detector.core.inputs.layout import Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.inputs.window import RATE

__all__ = ["add_variants", "collapse", "hold_mixed", "MIX_TV", "BASE_ARRAYS"]

MIX_TV = 0.05
BASE_ARRAYS = ("num", "cat", "rates", "lat", "sx", "nx", "cand", "cand_n")


def remixed(sb: SeasonalBaseline, s: int, lay: Layout, events: np.ndarray, d: int) -> dict[str, np.ndarray] | None:
    """Slot ``s``'s all-traffic arrays with dimension ``d``'s slices re-weighted to ``events``' mix."""
    base_ev = sb.rates[s][:, RATE["events"]]
    if events[0] <= 0 or base_ev[0] <= 0:
        return None
    rows = np.arange(lay.row_offset(d), lay.row_offset(d) + lay.top_k + 1)
    w, b = events[rows] / events[0], base_ev[rows] / base_ev[0]
    if 0.5 * float(np.abs(w - b).sum()) < MIX_TV or np.any((b <= 0) & (w > 0)):
        return None
    f = np.zeros(len(base_ev))
    f[rows] = np.divide(w, b, out=np.zeros_like(w), where=b > 0)
    return {name: np.tensordot(f, getattr(sb, name)[s], axes=(0, 0)) for name in BASE_ARRAYS}


def add_variants(v: Any, lay: Layout, sb: SeasonalBaseline) -> None:
    """Append re-mixed all-traffic pseudo-rows to view ``v`` (in place; see the module docstring)."""
    if v.base is None or not lay.dims:
        return
    s = sb.slot(v.w.start)
    events = v.w.rates[:, RATE["events"]]
    found = [(d, m) for d in range(len(lay.dims)) if (m := remixed(sb, s, lay, events, d)) is not None]
    if not found:
        return
    mixes = [m for _, m in found]
    k = len(mixes)
    v.extra["variants"] = list(range(v.P, v.P + k))
    # the window's own slice shares per variant: training is re-mixed to them too (checks._ref_rows)
    v.extra["variant_mix"] = [(rows, events[rows] / events[0])
                              for d, _ in found for rows in [np.arange(lay.row_offset(d), lay.row_offset(d) + lay.top_k + 1)]]
    v.rows = np.concatenate([v.rows, np.zeros(k, dtype=v.rows.dtype)])
    v.comp = np.concatenate([v.comp, np.zeros(k, bool)])
    v.arrays = {n: np.concatenate([a, np.repeat(a[:1], k, axis=0)]) for n, a in v.arrays.items()}
    v.coarse = np.concatenate([v.coarse, np.repeat(v.coarse[:1], k, axis=0)])
    v.events = np.concatenate([v.events, np.repeat(v.events[:1], k)])
    v.base = {n: np.concatenate([a, np.stack([m[n] for m in mixes])]) if n in mixes[0] else a for n, a in v.base.items()}
    if "all_hours" in v.extra:
        v.extra["all_hours"] = {n: np.concatenate([a, np.repeat(a[:1], k, axis=0)]) for n, a in v.extra["all_hours"].items()}


def collapse(results: list[Any], v: Any) -> tuple[list[Any], Any]:
    """Fold the variant pseudo-rows back into the all-traffic row; returns (results, view without them).

    ``view.extra["mix_explained"]``: features whose all-traffic shift the slice mix explained in this
    window (the plain comparison breaches, a re-mixed one is clean), see :func:`hold_mixed`."""
    var = v.extra.get("variants")
    if not var:
        return results, v
    P = var[0]
    cand = np.array([0, *var])
    out = []
    explained: set[str] = set()
    for r in results:
        tested = r.tested[cand]
        warn = r.warn[cand] & tested
        eff = np.abs(np.nan_to_num(r.value if r.effect is None else r.effect))[cand]
        order = np.lexsort((eff, warn, ~tested))  # tested first, then clean first, then the smallest effect
        pick = int(cand[order[0]])
        if r.feature is not None and is_generic(r.kind, r.statistic) and _mix_moved_it(r, warn, tested, eff, pick):
            explained.add(r.feature)
        fields = {}
        for name in ("value", "tested", "warn", "crit", "pvalue", "effect", "threshold"):
            a = getattr(r, name)
            if isinstance(a, np.ndarray) and a.shape[:1] == (P + len(var),):
                a = a[:P].copy()
                a[0] = getattr(r, name)[pick]
            fields[name] = a
        if pick:
            ev, sm = r.evidence, r.summary
            fields["evidence"] = lambda i, ev=ev, pick=pick: {**ev(pick if i == 0 else i), "mix": "re-weighted to this window's slice mix"} if i == 0 else ev(i)
            fields["summary"] = lambda i, sm=sm, pick=pick: sm(pick if i == 0 else i)
        out.append(replace(r, **fields))
    keep = {n: a[:P] for n, a in v.arrays.items()}
    extra = {k: x for k, x in v.extra.items() if k not in ("variants", "variant_mix")}
    extra["mix_explained"] = explained
    if "all_hours" in extra:
        extra["all_hours"] = {n: a[:P] for n, a in extra["all_hours"].items()}
    view = replace(v, rows=v.rows[:P], comp=v.comp[:P], arrays=keep, base={n: a[:P] for n, a in v.base.items()},
                   coarse=v.coarse[:P], events=v.events[:P], extra=extra)
    return out, view


def _mix_moved_it(r: Any, warn: np.ndarray, tested: np.ndarray, eff: np.ndarray, pick: int) -> bool:
    """The slice mix explains the all-traffic movement of this statistic (indices: all traffic, then the
    variants): it breaches and a re-mixed comparison is clean, or - below the threshold, where a shift
    in one region's slices is diluted by the others' - it moved by at least half the threshold and a
    re-mixed comparison takes at least half of that movement away."""
    if not tested[0]:
        return False
    if warn[0]:
        return bool(pick) and not bool(r.warn[pick])
    thr = float(r.threshold[0]) if isinstance(r.threshold, np.ndarray) else float(r.threshold)
    var = tested[1:]
    if not var.any() or not np.isfinite(thr) or thr <= 0 or eff[0] < 0.5 * thr:
        return False
    return bool(eff[1:][var].min() <= 0.5 * eff[0])


def hold_mixed(findings: list[Finding], v: Any, suppressed: list[Finding]) -> list[Finding]:
    """Generic drift of a feature in slice rows waits when the slice mix explained that feature's
    all-traffic shift this window: the mix of one dimension moved (a Saturday afternoon without
    branch traffic) and moved the feature with it, in every slicing of another dimension too (each
    region's share of branch traffic fell) - there is no per-region cross-count to re-mix them with,
    and a drift confined to one slice does not move the all-traffic row enough to be explained away
    (:func:`_mix_moved_it`: below the threshold the all-traffic row must still have moved, by half the
    threshold, and the re-mix must take half of that away)."""
    explained = v.extra.get("mix_explained") or set()
    if not explained:
        return findings
    held = [f for f in findings if f.row != 0 and f.feature in explained and is_generic(f.kind, f.statistic)]
    suppressed.extend(held)
    return [f for f in findings if not any(f is h for h in held)]
