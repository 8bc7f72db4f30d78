"""Slice contribution: which slices lost the performance, ranked (the brief's "top five slices").

For each matured cohort (:mod:`detector.core.outcomes.monitor`) every slice row (``dim=value``, all
dimensions together) is scored, for recall, precision and the expected cost per labelled
prediction (or the error rate when no costs are configured), by

    contribution = slice share x (baseline metric - slice metric)     (recall, precision)
    contribution = slice share x (slice metric - baseline metric)     (cost, error rate)

so that a positive contribution is *loss*. The share is the slice's part of the metric's own
denominator in the cohort: positives for recall, flagged predictions for precision, labelled
predictions for cost. The baseline metric is the slice's own value in the trailing clean cohorts
(the outcome monitor's baseline) when that slice had at least :data:`MIN_SUPPORT` units there,
else the all-traffic baseline value; with no trailing baseline yet, the current all-traffic value
(the contribution then says which slices drag the average down, not what changed).

With every slice of one dimension on its own baseline, the contributions of that dimension add up
to the all-traffic loss minus the mix effect ``sum(share x baseline) - baseline``: the part of the
loss that comes from the slices getting worse, not from traffic moving between them.

>>> import numpy as np
>>> cur = np.array([[60., 10, 40, 890], [20, 5, 30, 445], [40, 5, 10, 445]])   # tp, fp, fn, tn
>>> base = np.array([[80., 10, 20, 890], [40, 5, 10, 445], [40, 5, 10, 445]])
>>> r = rank_slices(["", "region=eu", "region=us"], cur, base)
>>> top = r["recall"]["top"][0]
>>> top["slice"], top["share"], top["metric"], top["baseline_metric"], top["contribution"]
('region=eu', 0.5, 0.4, 0.8, 0.2)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.core.stats.effects import sig

__all__ = ["SliceContribution", "rank_slices", "contributions_for", "MIN_SUPPORT", "TOP"]

MIN_SUPPORT = 20  # units (positives / flags / labelled) a slice needs in the baseline to be its own baseline
TOP = 5
_TP, _FP, _FN, _TN = range(4)


def _metric(cnt: np.ndarray, name: str, costs: tuple[float | None, float | None]) -> tuple[np.ndarray, np.ndarray]:
    """(metric, denominator) per row of a (rows, 4) tp/fp/fn/tn array."""
    tp, fp, fn, tn = (cnt[:, k] for k in range(4))
    if name == "recall":
        den = tp + fn
        num = tp
    elif name == "precision":
        den = tp + fp
        num = tp
    elif name == "expected_cost":
        den = tp + fp + fn + tn
        num = costs[0] * fp + costs[1] * fn  # type: ignore[operator]
    else:  # error_rate
        den = tp + fp + fn + tn
        num = fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan), den


def rank_slices(labels: list[str], cur: np.ndarray, base: np.ndarray | None,
                costs: tuple[float | None, float | None] = (None, None), top: int = TOP,
                min_support: int = MIN_SUPPORT) -> dict[str, Any]:
    """Rank slice rows by their contribution to the loss of each metric (see the module docstring).

    ``labels[i]`` is the slice key of row ``i`` (``""`` = all traffic, which must be row 0);
    ``cur`` / ``base`` are (rows, 4) arrays of tp, fp, fn, tn (``base`` may be None).
    """
    cur = np.asarray(cur, dtype=np.float64)
    names = ["recall", "precision"]
    names.append("expected_cost" if costs[0] is not None and costs[1] is not None else "error_rate")
    out: dict[str, Any] = {}
    for name in names:
        lower_better = name in ("expected_cost", "error_rate")
        m, den = _metric(cur, name, costs)
        if base is not None:
            bm, bden = _metric(np.asarray(base, dtype=np.float64), name, costs)
            g_base = bm[0]
            own = (bden >= min_support) & ~np.isnan(bm)
            b_row = np.where(own, bm, g_base)
            src = np.where(own, "slice_trailing", "all_traffic_trailing")
        else:
            g_base = m[0]
            b_row = np.full(len(m), g_base)
            src = np.full(len(m), "all_traffic_now")
        share = den / den[0] if den[0] > 0 else np.zeros_like(den)
        gap = (m - b_row) if lower_better else (b_row - m)
        contrib = np.where(np.isnan(gap), np.nan, share * gap)
        rows = []
        for i in range(1, len(labels)):
            if den[i] <= 0 or not math.isfinite(contrib[i]):
                continue
            rows.append({"slice": labels[i], "share": sig(share[i]), "units": int(den[i]), "metric": sig(m[i]),
                         "baseline_metric": sig(b_row[i]), "baseline_source": str(src[i]),
                         "contribution": sig(contrib[i])})
        rows.sort(key=lambda d: (-d["contribution"], d["slice"]))
        loss = (m[0] - g_base) if lower_better else (g_base - m[0])
        out[name] = {"current": sig(m[0]), "baseline": sig(g_base), "loss": sig(loss),
                     "baseline_source": "trailing" if base is not None else "all_traffic_now",
                     "top": [d for d in rows if d["contribution"] > 0][:top]}
    return out


class SliceContribution:
    """Outcome listener: the slice ranking of every matured cohort (``stats(model)``)."""

    def __init__(self, mon: Any) -> None:
        self.mon = mon
        self.last: dict[str, dict[str, Any]] = {}

    def on_predictions(self, m: Any, b: Any, stored: np.ndarray, codes: np.ndarray) -> None:
        pass

    def on_matches(self, mt: Any) -> None:
        pass

    def on_cohort(self, m: Any, c: Any, base: Any, real: np.ndarray, mat: float, window: dict[str, Any]) -> None:
        from detector.core.outcomes.cohort import C

        cols = [C["tp"], C["fp"], C["fn"], C["tn"]]
        rows = [int(r) for r in real.tolist()]
        labels = [",".join(f"{k}={v}" for k, v in sorted(m.layout.row_label(r).items())) for r in rows]
        cur = c.cnt[rows][:, cols]
        bas = base.cnt[rows][:, cols] if base is not None else None
        costs = tuple(m.costs[:2]) if getattr(m, "costs", None) else (None, None)
        self.last[m.name] = {"window": {k: v for k, v in window.items() if not k.startswith("_")},
                             "metrics": rank_slices(labels, cur, bas, costs)}  # type: ignore[arg-type]

    def stats(self, model: str) -> dict[str, Any]:
        return dict(self.last.get(model, {}))

    def to_state(self) -> dict[str, Any]:
        return {"last": self.last}

    def load_state(self, st: dict[str, Any]) -> None:
        if isinstance(st, dict) and isinstance(st.get("last"), dict):
            self.last = st["last"]


def contributions_for(engine: Any, model: str) -> dict[str, Any]:
    """The last matured cohort's slice ranking of ``model`` (for metrics and the report)."""
    for lis in getattr(getattr(engine, "outcomes", None), "listeners", ()):
        if isinstance(lis, SliceContribution):
            return lis.stats(model)
    return {}
