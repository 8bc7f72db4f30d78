"""Prometheus families of performance estimated before labels (:mod:`detector.core.outcomes.estimate.monitor`).

Classifier metrics (accuracy, precision, recall, ROC AUC, macro-F1) are shares in [0, 1], hence the
``_ratio`` suffix; a regression model's expected errors (MAE, RMSE) are in the target's units and
use the same families with ``skewwatch_estimated_error`` for ``skewwatch_estimated_performance_ratio``
(``skewwatch_estimated_error``, ``_stderr``, ``_trailing_day``, ``_reference``). ``metric`` names the
measure. Per model:

``skewwatch_estimated_performance_ratio{model,slice,metric}``          last closed window, per slice
``skewwatch_estimated_performance_stderr_ratio{model,slice,metric}``   its stated error (inflated by matured gaps)
``skewwatch_estimated_performance_trailing_day_ratio{model,metric}``   the trailing day the alert tests
``skewwatch_estimated_performance_reference_ratio{model,metric}``      training's score mix under production's decision rule
``skewwatch_estimate_error_ratio{model,metric}``                       realised - estimated, last matured window
                                                                      (regression: ``skewwatch_estimated_error_gap``, target units)
``skewwatch_estimate_error_zscore_rms{model,metric}``                  RMS of (realised - estimated) / stated error over the
                                                                      last matured windows (about 1 when the stated error is honest)
"""

from __future__ import annotations

from typing import Any

from detector.exporters.families import is_finite, slice_label

__all__ = ["add_estimates"]


def add_estimates(fam: Any, model: str, pe: Any) -> None:
    """Add the estimate families of one model (``pe``: its ``PerformanceEstimates`` or None)."""
    last = getattr(pe, "last", None) or {}
    if not last:
        return
    metrics = tuple(pe.est.metrics)
    lab = ("model", "slice", "metric")
    ratio = bool(getattr(pe.est, "ratio", True))
    name = {k: (f"skewwatch_estimated_performance_{k}ratio" if ratio else f"skewwatch_estimated_error{'_' + k[:-1] if k else ''}")
            for k in ("", "stderr_", "trailing_day_", "reference_")}
    what = "Performance expected from the scores" if ratio else "Error (target units) expected from the inputs and predictions"
    val = fam.gauge(name[""], f"{what} before labels, last closed window.", lab)
    err = fam.gauge(name["stderr_"], f"Stated standard error of {name['']} against the realised value.", lab)
    for skey, row in (last.get("slices") or {}).items():
        for m in metrics:
            if is_finite(row.get(m)):
                val.add_metric([model, slice_label(skey), m], float(row[m]))
            if is_finite(row.get(f"{m}_se")):
                err.add_metric([model, slice_label(skey), m], float(row[f"{m}_se"]))
    day = last.get("day") or {}
    if day:
        d = fam.gauge(name["trailing_day_"], f"{what} over the trailing day (what the estimated_* performance alert "
                      "tests).", ("model", "metric"))
        r = fam.gauge(name["reference_"], "The estimated_* alert's yardstick: training's value (binary: the same "
                      "estimate on training's score mix under production's decision rule).", ("model", "metric"))
        for m in metrics:
            if is_finite(day.get(m)):
                d.add_metric([model, m], float(day[m]))
            if is_finite((day.get("reference") or {}).get(m)):
                r.add_metric([model, m], float(day["reference"][m]))
    errors = pe.errors()
    if errors:
        g = (fam.gauge("skewwatch_estimate_error_ratio", "Realised minus estimated performance of the last window "
                       "whose labels matured.", ("model", "metric")) if ratio else
             fam.gauge("skewwatch_estimated_error_gap", "Realised minus estimated error (target units) of the last "
                       "window whose labels matured.", ("model", "metric")))
        z = fam.gauge("skewwatch_estimate_error_zscore_rms", "RMS of (realised - estimated) / stated error over the "
                      "last matured windows; about 1 when the stated error is honest.", ("model", "metric"))
        for m, e in errors.items():
            if is_finite(e.get("gap")):
                g.add_metric([model, m], float(e["gap"]))
            if is_finite(e.get("rms_z")):
                z.add_metric([model, m], float(e["rms_z"]))
