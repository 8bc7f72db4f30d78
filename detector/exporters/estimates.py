"""Prometheus families of performance estimated before labels (:mod:`detector.core.outcomes.estimate.monitor`).

All values are ratios in [0, 1] (accuracy, precision, recall, ROC AUC), hence the ``_ratio`` suffix;
``metric`` names the measure. Per model:

``skewwatch_estimated_performance_ratio{model,slice,metric}``          last closed window, per slice
``skewwatch_estimated_performance_stderr_ratio{model,slice,metric}``   its stated error (inflated by matured gaps)
``skewwatch_estimated_performance_trailing_day_ratio{model,metric}``   the trailing day the alert tests
``skewwatch_estimated_performance_reference_ratio{model,metric}``      training's score mix under production's decision rule
``skewwatch_estimate_error_ratio{model,metric}``                       realised - estimated, last matured window
``skewwatch_estimate_error_zscore_rms{model,metric}``                  RMS of (realised - estimated) / stated error over the
                                                                      last matured windows (about 1 when the stated error is honest)
"""

from __future__ import annotations

from typing import Any

from detector.exporters.families import _finite, slice_label

__all__ = ["add_estimates"]


def add_estimates(fam: Any, model: str, pe: Any) -> None:
    """Add the estimate families of one model (``pe``: its ``PerformanceEstimates`` or None)."""
    last = getattr(pe, "last", None) or {}
    if not last:
        return
    metrics = tuple(pe.est.metrics)
    lab = ("model", "slice", "metric")
    val = fam.gauge("skewwatch_estimated_performance_ratio", "Performance expected from the scores before labels "
                    "(calibrated on training's labelled rows), last closed window.", lab)
    err = fam.gauge("skewwatch_estimated_performance_stderr_ratio", "Stated standard error of "
                    "skewwatch_estimated_performance_ratio against the realised value.", lab)
    for skey, row in (last.get("slices") or {}).items():
        for m in metrics:
            if _finite(row.get(m)):
                val.add_metric([model, slice_label(skey), m], float(row[m]))
            if _finite(row.get(f"{m}_se")):
                err.add_metric([model, slice_label(skey), m], float(row[f"{m}_se"]))
    day = last.get("day") or {}
    if day:
        d = fam.gauge("skewwatch_estimated_performance_trailing_day_ratio", "Performance expected over the trailing "
                      "day (what the estimated_* performance alert tests).", ("model", "metric"))
        r = fam.gauge("skewwatch_estimated_performance_reference_ratio", "The same estimate on training's score mix "
                      "under production's decision rule (the estimated_* alert's yardstick).", ("model", "metric"))
        for m in metrics:
            if _finite(day.get(m)):
                d.add_metric([model, m], float(day[m]))
            if _finite((day.get("reference") or {}).get(m)):
                r.add_metric([model, m], float(day["reference"][m]))
    errors = pe.errors()
    if errors:
        g = fam.gauge("skewwatch_estimate_error_ratio", "Realised minus estimated performance of the last window "
                      "whose labels matured.", ("model", "metric"))
        z = fam.gauge("skewwatch_estimate_error_zscore_rms", "RMS of (realised - estimated) / stated error over the "
                      "last matured windows; about 1 when the stated error is honest.", ("model", "metric"))
        for m, e in errors.items():
            if _finite(e.get("gap")):
                g.add_metric([model, m], float(e["gap"]))
            if _finite(e.get("rms_z")):
                z.add_metric([model, m], float(e["rms_z"]))
