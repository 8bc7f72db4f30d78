"""The outcome monitor's part for models that are not binary classifiers (multiclass, regression).

The monitor keeps the generic cohort bookkeeping for every model (predictions, labelled pairs, label
delays, maturity, pooling, the trailing baseline, alerts); a multiclass or regression model's
cohorts also hold its task's counters (``Cohort.tc``, :meth:`~detector.core.outcomes.tasks.base.Task.counters`)
and this module supplies the three task-specific steps:

* :func:`task_columns` - the model's outputs of a decoded batch as the task reads them
  (regression: the prediction; multiclass: the class code and, with ``scores``, its confidence)
  and, for a regression model with an expected-error model in its reference, the features it uses;
* :func:`task_results` - one evaluation's results: the label-delay checks
  (:mod:`detector.core.outcomes.delay_checks`) and the task's checks against the trailing baseline and
  (over the trailing day) training, with which rows' labels moved
  (:func:`~detector.core.outcomes.tasks.base.labels_moved`: a performance fall there is not concept drift);
* :func:`task_stats` - what the evaluation reports per slice (the task's metrics).

Findings then go through the same multiple-testing control, explanation and alert rules as a binary
model's (:mod:`detector.core.outcomes.explain`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.cohort import C, Cohort
from detector.core.outcomes.cohort_stats import plain_float, slice_key
from detector.core.outcomes.delay_checks import delay_checks
from detector.core.outcomes.labels import hist_quantile
from detector.core.outcomes.tasks.base import CheckContext, Counters, PredictionColumns, labels_moved

__all__ = ["task_columns", "task_results", "task_stats"]

_DAY = 86400.0


def task_columns(task: Any, layout: Any, b: Any) -> tuple[PredictionColumns, dict[str, np.ndarray] | None]:
    """(the task's prediction columns, the features its expected-error model reads or None) of batch ``b``."""
    n = b.n
    if task.name == "multiclass":
        out = b.outputs or {}
        pcs, scs = out.get("predicted_class") or [None] * n, out.get("scores") or [None] * n
        pc = task.prediction_columns([{"predicted_class": p, "scores": s} for p, s in zip(pcs, scs, strict=True)])
        return pc, None
    pc = PredictionColumns(b.score.copy(), np.full(n, -1, dtype=np.int64), np.isfinite(b.score))
    dle = getattr(task, "dle", None)
    if dle is None:
        return pc, None
    sch = layout.schema
    feats: dict[str, np.ndarray] = {}
    for inp in dle.inputs:
        name = inp["name"]
        if name in sch.numeric:
            feats[name] = b.num[:, sch.numeric.index(name)]
        elif name in sch.categorical:  # codes back to their text (unseen and missing: None)
            j = sch.categorical.index(name)
            names = np.array([*sch.vocab[name], None, None], dtype=object)
            feats[name] = names[b.cat_codes[:, j]]
    return pc, feats


def task_results(mon: Any, m: Any, c: Cohort, pooled: Cohort, base: Cohort, base_h: float, real: np.ndarray,
                 srows: np.ndarray, comp: np.ndarray, inputs_stable: bool,
                 firing: set[str]) -> tuple[list[Result], np.ndarray]:
    """(results, per pseudo-row: are inputs and labels stable) of one evaluation of cohort ``c``.

    ``pooled`` is ``c`` with the cohorts pooled with it, ``base`` the trailing baseline (an empty cohort
    when there is none yet) and ``base_h`` the label age it was measured at, ``real`` / ``srows`` the rows
    and the slices whose complements are tested.
    """
    th = mon.settings.thresholds
    arr_b = np.sum(list(m.arr_hist), axis=0) if m.arr_hist else np.zeros_like(m.arrivals)

    def ext(a: np.ndarray) -> np.ndarray:
        return np.concatenate([a[real], a[0][None] - a[srows]], axis=0)

    cur = _Generic(ext(pooled.cnt), ext(pooled.delay), ext(m.arrivals))
    bas = _Generic(ext(base.cnt), ext(base.delay), ext(arr_b))
    results = delay_checks(cur, bas, th, c.horizon, base_h)
    recent = [d for d in m.done.values() if d.start > c.start - _DAY and not d.label_suspect and d.tc is not None]
    day = None
    if (len(recent) + 1) * mon.L >= _DAY:  # a full daily cycle of matured cohorts (comparisons with training)
        day = Counters.total([c.tc, *(d.tc for d in recent)]).pseudo(real, srows)
    ctx = CheckContext(comp=comp, inputs_stable=inputs_stable, day=day, reference=m.ref.task)
    results += m.task.checks(pooled.tc.pseudo(real, srows), base.tc.pseudo(real, srows), ctx)
    moved = labels_moved(results)
    if moved.size == 0:
        moved = np.zeros(comp.size, bool)
    stable = ~moved & inputs_stable & ("label_drift" not in firing)
    return results, stable


class _Generic:
    """The generic arrays of a cohort's pseudo-rows, as the label-delay checks read them."""

    def __init__(self, cnt: np.ndarray, delay: np.ndarray, arrivals: np.ndarray) -> None:
        self.cnt, self.delay, self.arrivals = cnt, delay, arrivals


def task_stats(m: Any, c: Cohort, real: np.ndarray, mat: float, window: dict[str, Any]) -> dict[str, Any]:
    """Per slice: predictions, labels, match rate, delay quantiles and the task's metrics (scalars; a multiclass
    model's per-class metrics as ``class_<metric>``: {class: value})."""
    met = m.task.metrics(c.tc)
    classes = getattr(m.task, "classes", None)
    slices: dict[str, dict[str, Any]] = {}
    for r in real.tolist():
        dh = m.delay_all[r]
        row: dict[str, Any] = {
            "predictions": int(c.cnt[r, C["pred"]]), "labels": int(c.cnt[r, C["lab"]]),
            "match_rate": plain_float(c.cnt[r, C["lab"]] / c.cnt[r, C["pred"]]) if c.cnt[r, C["pred"]] > 0 else None,
            "delay_p50_s": plain_float(hist_quantile(dh, 0.5)), "delay_p90_s": plain_float(hist_quantile(dh, 0.9)),
        }
        for k, v in met.items():
            if k in ("predictions", "labelled"):
                continue
            a = np.asarray(v)[r]
            if a.ndim == 0:
                row[k] = plain_float(a)
            elif classes is not None and a.shape[0] == len(classes):  # per class, under its own key
                row[f"class_{k}"] = {cl: plain_float(x) for cl, x in zip(classes, a.tolist(), strict=True)}
        slices[slice_key(m.layout.row_label(r))] = row
    return {"window": {k: v for k, v in window.items() if not k.startswith("_")}, "maturity_s": mat, "slices": slices,
            "late_labels": c.late, "task": m.task.name}
