"""Adoption and workflow: human overrides, review capacity, and the rules baseline.

The domain brief's hidden failure mode: the model is fine but the *system* around it is not —
people override or ignore its flags, the review queue floods or starves, or the model is judged
without knowing what the process it replaced would have done. Two parts:

**Window checks** (:class:`Adoption`, called by the engine for every closed window, on the
window's mergeable counts, so replay, a single worker and an aggregator of partials agree). Per
model x slice row (pseudo-rows as in :mod:`detector.core.checks.window`):

* ``override_rate``: the share of the model's actions (``decision`` not a no-action value) that
  carry a human ``override`` — its complement is the share of flags acted on. Compared with the
  same time of day in production (or all hours while that slot has no history), two-sided
  two-proportion test; a finding needs ``|change| >= thresholds.override_rate_delta`` (critical
  at twice that). The evidence carries the current reason-code mix (top :data:`~detector.core.inputs.window.MAX_REASONS`).
* ``capacity_use`` (all traffic, when ``models.<name>.review_capacity`` is configured): flags in
  the window / capacity. A **flood** is a use above 1 that is significant for a Poisson count at
  the capacity (critical above 2); **starvation** a use below ``thresholds.capacity_starvation``
  that is significant *and* comes with a significant fall of the flag share against the
  baseline — a quiet night has few flags but the usual share, and is not starvation.

Both are :class:`~detector.core.checks.window.Result` rows: they join the window's Benjamini-Hochberg
family, slice localisation and de-duplication (:mod:`detector.core.decisions.select`) and the alert
hysteresis (:class:`~detector.core.decisions.alerts.AlertManager`), as kind ``decision_rate`` (cause
``decision_policy``, action ``fix_system`` unless an upstream fault explains it, see
:mod:`detector.core.decisions.triage`). Their alert ``feature`` names the workflow signal
(``override_rate`` / ``review_capacity``) so they are separate incidents from the model's own
decision-rate and threshold alerts.

**Rules baseline** (:class:`RulesBaseline`, an outcome listener). A prediction may carry
``baseline_decision``: what the rules or manual process the model replaces would have decided.
For every matured outcome cohort, the pairs that carry one get the confusion matrix of the model
*and* of the baseline on exactly the same labelled predictions, per slice row: precision, recall,
error rate and (with ``cost_fp`` / ``cost_fn``) expected cost side by side, also against the
trailing clean cohorts. Per metric (precision, recall, error rate): when the model's metric fell
significantly and the baseline's fell (significantly) at least half as much, the world got
harder; when only the model's fell, the model got worse (:func:`diagnose`); ``diagnosis``
combines them (``mixed`` when they disagree). Label corrections move a pair exactly as in the
outcome cohorts. State: one ``rows x 9`` array per open cohort plus the last :data:`KEEP_DONE`
clean ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.core.checks.window import Result, View
from detector.core.inputs.layout import Layout
from detector.core.inputs.window import RATE
from detector.core.settings import DetectorSettings
from detector.core.stats import distributions as stats
from detector.core.stats.effects import sig

__all__ = ["Adoption", "RulesBaseline", "attach_adoption", "adoption_stats", "baseline_stats", "diagnose",
           "ADOPTION_FEATURES", "KEEP_DONE"]

#: the alert ``feature`` of the workflow signals (they are not model features)
ADOPTION_FEATURES = ("override_rate", "review_capacity")
KEEP_DONE = 24  # evaluated baseline cohorts kept per model (the trailing comparison)
_BC = ("n", "m_tp", "m_fp", "m_fn", "m_tn", "b_tp", "b_fp", "b_fn", "b_tn")
BC = {k: i for i, k in enumerate(_BC)}


# =========================================================================== window checks
class Adoption:
    """Workflow checks for every closed window; ``capacity`` = review capacity per model and window."""

    def __init__(self, capacity: dict[str, int] | None = None) -> None:
        self.capacity: dict[str, int] = dict(capacity or {})
        self.last: dict[str, dict[str, Any]] = {}  # model -> stats of its last closed window

    def results(self, model: str, lay: Layout, v: View, st: DetectorSettings) -> list[Result]:
        R = v.arrays["rates"]
        if R.shape[1] < len(RATE):  # counts from an older layout: nothing to say
            return []
        th = st.thresholds
        P = v.P
        acted, decided = R[:, RATE["acted"]], R[:, RATE["decided"]]
        ovf, ov = R[:, RATE["flag_overridden"]], R[:, RATE["overridden"]]
        rate = np.divide(ovf, acted, out=np.zeros(P), where=acted > 0)
        share = np.divide(acted, decided, out=np.zeros(P), where=decided > 0)
        base, src = _baseline_rates(v)
        out: list[Result] = []
        reasons = [_top_reasons(v.w.reasons.get(_row_key(lay, int(r), bool(c)), {})) for r, c in zip(v.rows, v.comp, strict=True)]
        if base is not None:
            b_acted, b_ovf, b_dec = base[:, RATE["acted"]], base[:, RATE["flag_overridden"]], base[:, RATE["decided"]]
            b_rate = np.divide(b_ovf, b_acted, out=np.zeros(P), where=b_acted > 0)
            b_share = np.divide(b_acted, b_dec, out=np.zeros(P), where=b_dec > 0)
            # overrides were ever seen here (a producer that never sends them has nothing to test)
            seen = (b_ovf > 0) | (ovf > 0)
            delta = rate - b_rate
            pv = stats.proportion_test(ovf, acted, np.clip(b_rate, 0, 1), "two-sided", n0=np.maximum(b_acted, 1))
            tested = seen & (acted >= st.min_count_rate) & (b_acted >= st.min_count_rate)
            out.append(Result(
                "decision_rate", "override_rate", "override_rate_delta", delta, tested,
                np.abs(delta) >= th.override_rate_delta, np.abs(delta) >= 2 * th.override_rate_delta, pv,
                th.override_rate_delta,
                lambda i: {"reference": {"override_rate": sig(b_rate[i]), "source": src},
                           "current": {"override_rate": sig(rate[i]), "acted_on_share": sig(1 - rate[i]),
                                       "flags": int(acted[i]), "overridden": int(ovf[i]),
                                       "overrides_of_no_action": int(ov[i] - ovf[i]), "reasons": reasons[i]}},
                lambda i: (f"humans override {rate[i]:.1%} of the model's actions (usually {b_rate[i]:.1%}): "
                           + ("alert fatigue or distrust — " if delta[i] > 0 else "rubber-stamping or a bypassed review — ")
                           + "check the workflow, not the model" + _reason_text(reasons[i])),
                effect=np.abs(delta),
            ))
        else:
            b_share = b_dec = None
        cap = self.capacity.get(model)
        if cap:
            out.extend(_capacity(float(cap), acted, decided, share, b_share, b_dec, src, v, st))
        self.last[model] = _window_stats(lay, v, rate, share, acted, ov, ovf, reasons, cap)
        return out

    def stats(self, model: str) -> dict[str, Any]:
        """The last closed window's adoption numbers per slice key (``""`` = all traffic)."""
        return dict(self.last.get(model, {}))

    def to_state(self) -> dict[str, Any]:
        return {"last": self.last}  # the capacities come from the config

    def load_state(self, st: dict[str, Any]) -> None:
        if isinstance(st, dict) and isinstance(st.get("last"), dict):
            self.last = st["last"]


def _capacity(cap: float, acted: np.ndarray, decided: np.ndarray, share: np.ndarray, b_share: np.ndarray | None,
              b_dec: np.ndarray | None, src: str, v: View, st: DetectorSettings) -> list[Result]:
    """Flood (over capacity) and starvation (under ``capacity_starvation`` x capacity), all traffic only."""
    P = v.P
    only0 = np.zeros(P, bool)
    only0[0] = True
    use = acted / cap
    low = st.thresholds.capacity_starvation
    # Poisson count at the capacity (normal approximation with continuity correction)
    p_flood = np.asarray(stats.norm_sf((acted - cap - 0.5) / math.sqrt(cap)))
    p_low = np.asarray(stats.norm_sf((low * cap - acted - 0.5) / math.sqrt(max(low * cap, 1.0))))
    tested = only0 & (decided >= st.min_count_rate)
    expected = b_share * decided if b_share is not None else np.full(P, np.nan)
    if b_share is not None and b_dec is not None:
        p_fall = np.asarray(stats.proportion_test(acted, decided, np.clip(b_share, 0, 1), "less", n0=np.maximum(b_dec, 1)))
        p_starve = np.maximum(p_low, p_fall)  # intersection-union: both must hold
    else:
        p_starve = np.ones(P)

    def ev(i: int) -> dict[str, Any]:
        return {"reference": {"review_capacity": cap, "flag_share": sig(b_share[i]) if b_share is not None else None,
                              "expected_flags": sig(expected[i]), "source": src},
                "current": {"flags": int(acted[i]), "decided": int(decided[i]), "flag_share": sig(share[i]),
                            "capacity_use": sig(use[i])}}

    return [
        Result("decision_rate", "review_capacity", "capacity_use", use, tested, use > 1.0, use > 2.0, p_flood, 1.0, ev,
               lambda i: (f"the model flags {int(acted[i]):,} cases for a review capacity of {cap:,.0f} per window "
                          f"({use[i]:.0%} of capacity): the queue floods and the riskiest cases wait — "
                          "fit the threshold to the capacity"),
               effect=use - 1.0),
        Result("decision_rate", "review_capacity", "capacity_use", use, tested & (b_share is not None), use < low,
               np.zeros(P, bool), p_starve, low, ev,
               lambda i: (f"the model flags only {int(acted[i]):,} cases for a review capacity of {cap:,.0f} "
                          f"({use[i]:.0%}; usually {_pct(b_share[i] if b_share is not None else None)} of traffic is "
                          "flagged): the queue starves and value is left on the table — check the threshold"),
               effect=low - use),
    ]


def _baseline_rates(v: View) -> tuple[np.ndarray | None, str]:
    if v.base is not None:
        return v.base["rates"], "production, same time of day"
    agg = v.extra.get("all_hours")
    if agg is not None:
        return agg["rates"], "production, all hours (no same-hour history yet)"
    return None, "none"


def _row_key(lay: Layout, row: int, comp: bool) -> str:
    if comp:
        return "\x00"  # complements have no reason mix of their own
    return ",".join(f"{k}={val}" for k, val in sorted(lay.row_label(row).items()))


def _top_reasons(d: dict[str, int], k: int = 5) -> dict[str, int]:
    return dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:k])


def _reason_text(reasons: dict[str, int]) -> str:
    if not reasons:
        return ""
    n = sum(reasons.values())
    return "; reasons: " + ", ".join(f"{k} ({c / n:.0%})" for k, c in list(reasons.items())[:3])


def _window_stats(lay: Layout, v: View, rate: np.ndarray, share: np.ndarray, acted: np.ndarray, ov: np.ndarray,
                  ovf: np.ndarray, reasons: list[dict[str, int]], cap: int | None) -> dict[str, Any]:
    slices: dict[str, Any] = {}
    for i, (r, c) in enumerate(zip(v.rows.tolist(), v.comp.tolist(), strict=True)):
        if c:
            continue
        slices[_row_key(lay, r, False)] = {
            "flags": int(acted[i]), "flag_share": sig(share[i]), "overridden": int(ov[i]),
            "override_rate": sig(rate[i]) if acted[i] > 0 else None,
            "acted_on_share": sig(1 - rate[i]) if acted[i] > 0 else None, "reasons": reasons[i],
        }
    return {"window": {"start": v.w.start, "end": v.w.end}, "review_capacity": cap,
            "capacity_use": sig(acted[0] / cap) if cap else None, "slices": slices}


def attach_adoption(engine: Any, cfg: Any = None) -> Adoption:
    """Give ``engine`` the review capacities of ``cfg.models`` (the checks themselves always run)."""
    ad = engine.adoption
    if cfg is not None:
        ad.capacity = {name: mc.review_capacity for name, mc in cfg.models.items() if mc.review_capacity}
    return ad


def adoption_stats(engine: Any, model: str) -> dict[str, Any]:
    """Last window's override rate, reason mix, acted-on share and capacity use per slice (for metrics/report)."""
    ad = getattr(engine, "adoption", None)
    return ad.stats(model) if ad is not None else {}


# =========================================================================== rules baseline
class RulesBaseline:
    """Model vs rules-baseline confusion matrices on the same labelled predictions, per cohort and slice."""

    def __init__(self, mon: Any) -> None:
        self.mon = mon
        self.open: dict[tuple[str, float], np.ndarray] = {}
        self.done: dict[str, list[tuple[float, np.ndarray]]] = {}
        self.last: dict[str, dict[str, Any]] = {}

    # ---------------------------------------------------------------- listener protocol
    def on_predictions(self, m: Any, b: Any, stored: np.ndarray, codes: np.ndarray) -> None:
        pass

    def on_matches(self, mt: Any) -> None:
        rows = mt.rows
        aux = getattr(rows, "aux", None)
        if aux is None or mt.slots.size == 0:
            return
        has = aux >= 0
        if not has.any():
            return
        mon = self.mon
        L = mon.L
        first = mt.first
        for mi in np.unique(rows.model[has]).tolist():
            m = mon.by_idx[mi]
            sel = np.flatnonzero(has & (rows.model == mi))
            ridx = m.ridx(rows.codes[sel, : len(m.layout.dims)])
            starts = np.floor(rows.ts[sel] / L) * L
            pred, bpred = rows.pred[sel], aux[sel]
            new, old = mt.label[sel].astype(np.int64), np.nan_to_num(mt.old[sel], nan=-1).astype(np.int64)
            fst, counted = first[sel], rows.counted[sel] >= 1  # in its cohort, or held / late (outcomes.HELD)
            for s in np.unique(starts).tolist():
                here = starts == s
                if s in m.open:  # the outcome cohort is still collecting: fold as it does
                    arr = self.open.setdefault((m.name, s), np.zeros((m.layout.n_rows, len(_BC))))
                    k = np.flatnonzero(here & fst)
                    _fold(arr, ridx[k], pred[k], bpred[k], new[k], 1.0)
                    k = np.flatnonzero(here & ~fst & counted)
                    _fold(arr, ridx[k], pred[k], bpred[k], old[k], -1.0)
                    _fold(arr, ridx[k], pred[k], bpred[k], new[k], 1.0)

    def on_cohort(self, m: Any, c: Any, base: Any, real: np.ndarray, mat: float, window: dict[str, Any]) -> None:
        arr = self.open.pop((m.name, c.start), None)
        for key in [k for k in self.open if k[0] == m.name and k[1] < c.start]:  # never-matured leftovers
            del self.open[key]
        if arr is None:
            return
        done = self.done.setdefault(m.name, [])
        trailing = sum((a for _, a in done), np.zeros_like(arr)) if done else None
        costs = m.costs[:2] if getattr(m, "costs", None) else (None, None)
        self.last[m.name] = _comparison(m.layout, arr, trailing, real, costs, window, len(done))
        if getattr(c, "in_baseline", True):  # only clean cohorts make the trailing comparison
            done.append((c.start, arr))
            del done[:-KEEP_DONE]

    def stats(self, model: str) -> dict[str, Any]:
        return dict(self.last.get(model, {}))

    def to_state(self) -> dict[str, Any]:
        return {"open": [[m, s, a] for (m, s), a in self.open.items()],
                "done": {m: [[s, a] for s, a in lst] for m, lst in self.done.items()}, "last": self.last}

    def load_state(self, st: dict[str, Any]) -> None:
        from detector.core.state.codec import check

        check(isinstance(st, dict) and isinstance(st.get("open"), list) and isinstance(st.get("done"), dict)
              and isinstance(st.get("last"), dict), "rules baseline state")
        n = len(_BC)

        def arr(a: Any) -> np.ndarray:
            check(isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[1] == n, "rules baseline counts")
            return a.astype(np.float64)

        self.open = {(str(m), float(s)): arr(a) for m, s, a in st["open"]}
        self.done = {str(m): [(float(s), arr(a)) for s, a in lst][-KEEP_DONE:] for m, lst in st["done"].items()}
        self.last = st["last"]


def _fold(arr: np.ndarray, ridx: np.ndarray, pred: np.ndarray, bpred: np.ndarray, y: np.ndarray, w: float) -> None:
    if ridx.shape[0] == 0:
        return
    cols = np.zeros((ridx.shape[0], len(_BC)))
    cols[:, BC["n"]] = w
    for prefix, p in (("m_", pred), ("b_", bpred)):
        for k, (pp, yy) in (("tp", (1, 1)), ("fp", (1, 0)), ("fn", (0, 1)), ("tn", (0, 0))):
            cols[:, BC[prefix + k]] = w * ((p == pp) & (y == yy))
    flat = ridx.ravel()
    np.add.at(arr, flat, np.repeat(cols, ridx.shape[1], axis=0))


def metrics_of(cnt: np.ndarray, prefix: str, costs: tuple[Any, Any]) -> dict[str, float | None]:
    """precision, recall, error rate and expected cost per labelled prediction of one confusion row."""
    tp, fp, fn, tn = (float(cnt[BC[prefix + k]]) for k in ("tp", "fp", "fn", "tn"))
    n = tp + fp + fn + tn
    cfp, cfn = costs
    return {"precision": sig(tp / (tp + fp)) if tp + fp > 0 else None,
            "recall": sig(tp / (tp + fn)) if tp + fn > 0 else None,
            "error_rate": sig((fp + fn) / n) if n > 0 else None,
            "expected_cost": sig((cfp * fp + cfn * fn) / n) if n > 0 and cfp is not None and cfn is not None else None,
            "flag_share": sig((tp + fp) / n) if n > 0 else None}


Counts = tuple[float, float]  # (successes, trials) of a proportion metric


def diagnose(model_now: Counts, model_before: Counts, rules_now: Counts, rules_before: Counts,
             lower_is_better: bool = False, tol: float = 0.1, alpha: float = 0.01) -> str:
    """``model_worse``, ``world_harder``, ``stable`` or ``unknown`` for one proportion metric.

    Each argument is ``(successes, trials)`` (precision: TP of the flags, recall: TP of the
    positives, error rate: errors of the labelled). The model *degraded* when its metric moved
    the wrong way by more than ``tol`` (relative) and significantly (one-sided two-proportion test,
    ``p < alpha``). A degraded model with a baseline that also degraded significantly, by at least
    half as much (relative), means the world got harder; otherwise the model got worse.

    >>> diagnose((10, 100), (60, 100), (28, 100), (30, 100))   # precision: only the model fell
    'model_worse'
    >>> diagnose((10, 100), (60, 100), (8, 100), (30, 100)), diagnose((58, 100), (60, 100), (8, 100), (30, 100))
    ('world_harder', 'stable')
    """
    (xm, nm), (xm0, nm0), (xr, nr), (xr0, nr0) = model_now, model_before, rules_now, rules_before
    if min(nm, nm0) <= 0:
        return "unknown"
    alt = "greater" if lower_is_better else "less"

    def degradation(x: float, n: float, x0: float, n0: float) -> tuple[float, float]:
        now, before = x / n, x0 / n0
        d = (now - before) if lower_is_better else (before - now)
        p = float(stats.proportion_test(x, n, before, alt, n0=n0))
        return d / max(before, 1e-9), p

    dm, pm = degradation(xm, nm, xm0, nm0)
    if dm <= tol or pm >= alpha:
        return "stable"
    if min(nr, nr0) > 0:
        dr, pr = degradation(xr, nr, xr0, nr0)
        if pr < alpha and dr >= dm / 2:
            return "world_harder"
    return "model_worse"


def _counts(cnt: np.ndarray, prefix: str, metric: str) -> Counts:
    tp, fp, fn, tn = (float(cnt[BC[prefix + k]]) for k in ("tp", "fp", "fn", "tn"))
    if metric == "precision":
        return tp, tp + fp
    if metric == "recall":
        return tp, tp + fn
    return fp + fn, tp + fp + fn + tn


def _overall(per: dict[str, str]) -> str:
    """One verdict from the per-metric ones: ``model_worse`` / ``world_harder`` when the metrics that moved
    agree, ``mixed`` when they disagree, else ``stable`` (or ``unknown`` without any comparison)."""
    moved = {v for v in per.values() if v in ("model_worse", "world_harder")}
    if len(moved) == 2:
        return "mixed"
    if moved:
        return moved.pop()
    return "unknown" if all(v == "unknown" for v in per.values()) else "stable"


def _comparison(lay: Layout, arr: np.ndarray, trailing: np.ndarray | None, real: np.ndarray, costs: tuple[Any, Any],
                window: dict[str, Any], n_trailing: int) -> dict[str, Any]:
    slices: dict[str, Any] = {}
    key_metric = "expected_cost" if costs[0] is not None and costs[1] is not None else "error_rate"
    for r in real.tolist():
        if arr[r, BC["n"]] <= 0:
            continue
        model, rules = metrics_of(arr[r], "m_", costs), metrics_of(arr[r], "b_", costs)
        row: dict[str, Any] = {"pairs": int(arr[r, BC["n"]]), "model": model, "rules": rules}
        if trailing is not None and trailing[r, BC["n"]] > 0:
            tm, tr = metrics_of(trailing[r], "m_", costs), metrics_of(trailing[r], "b_", costs)
            row["trailing"] = {"pairs": int(trailing[r, BC["n"]]), "model": tm, "rules": tr}
            per = {k: diagnose(_counts(arr[r], "m_", k), _counts(trailing[r], "m_", k), _counts(arr[r], "b_", k),
                               _counts(trailing[r], "b_", k), lower_is_better=k == "error_rate")
                   for k in ("precision", "recall", "error_rate")}
            row["diagnosis_by_metric"] = per
            row["diagnosis"] = _overall(per)
        better = [k for k in ("precision", "recall") if _gt(rules[k], model[k])]
        better += [k for k in ("error_rate", "expected_cost") if _gt(model[k], rules[k])]
        row["rules_better_on"] = better
        slices[",".join(f"{k}={v}" for k, v in sorted(lay.row_label(int(r)).items()))] = row
    return {"window": {k: v for k, v in window.items() if not k.startswith("_")}, "metric": key_metric,
            "trailing_cohorts": n_trailing, "slices": slices}


def baseline_stats(engine: Any, model: str) -> dict[str, Any]:
    """Model vs rules baseline of the last matured cohort, per slice key (for metrics/report)."""
    mon = getattr(engine, "outcomes", None)
    for lis in getattr(mon, "listeners", ()):
        if isinstance(lis, RulesBaseline):
            return lis.stats(model)
    return {}


def _gt(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a > b + 1e-12


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.1%}"
