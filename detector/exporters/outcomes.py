"""Outcome metrics from ``engine.outcomes.stats(model)`` (labels, cohorts, parity; every key optional):
per model and slice (:func:`_outcome_model`) and the label and parity joins shared by all models
(:func:`_outcome_global`). Read at scrape time by :class:`detector.exporters.prometheus.SkewwatchCollector`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detector.exporters.families import (
    _CLASS_OUTCOME,
    _JOIN,
    _LABEL_GAUGES,
    _OUTCOME,
    _PARITY,
    _as_map,
    _delay_buckets,
    _Families,
    _finite,
    _get,
    _ts,
    bounded,
    slice_label,
)

__all__ = ["add_outcomes"]


def add_outcomes(fam: _Families, models: list[str], stats: Callable[[str], Any]) -> None:
    glob: Any = None
    for model in models:
        st = stats(model)
        if st is None:
            continue
        glob = glob if glob is not None else st
        _outcome_model(fam, model, st)
    if glob is not None:
        _outcome_global(fam, glob)


def _outcome_model(fam: _Families, model: str, st: Any) -> None:
    mat = _get(st, "maturity_s")
    if _finite(mat):
        fam.gauge("skewwatch_label_maturity_seconds", "Label age at which prediction cohorts are evaluated "
                  "(observed 90th percentile of the label delay).", ("model",)).add_metric([model], float(mat))
    end = _ts(_get(_get(st, "window"), "end"))
    if end is not None:
        fam.gauge("skewwatch_outcome_window_end_timestamp_seconds", "End (event time) of the last evaluated "
                  "prediction cohort.", ("model",)).add_metric([model], end)
    slices = _as_map(_get(st, "slices")) or {}
    for key, fname, doc in _OUTCOME:
        for skey, row in slices.items():
            v = _get(row, key)
            if _finite(v):
                fam.gauge(fname, doc, ("model", "slice")).add_metric([model, slice_label(skey)], float(v))
    for key, fname, doc in _CLASS_OUTCOME:
        for skey, row in slices.items():
            for cls, v in (_as_map(_get(row, key)) or {}).items():
                if _finite(v):
                    fam.gauge(fname, doc, ("model", "slice", "class")).add_metric(
                        [model, slice_label(skey), bounded(str(cls))], float(v))
    par = _as_map(_get(_get(st, "parity"), "features")) or {}
    for feat, per in par.items():
        for skey, row in (_as_map(per) or {}).items():
            for key, fname, doc in _PARITY:
                v = _get(row, key)
                if _finite(v):
                    fam.gauge(fname, doc, ("model", "feature", "slice")).add_metric(
                        [model, str(feat), slice_label(skey)], float(v))
    delay = _delay_buckets(_get(_get(st, "labels"), "delay") or _get(st, "delay"))
    if delay is not None:
        fam.histogram("skewwatch_label_delay_seconds", "Delay from a prediction to its first label.",
                      ("model",)).add_metric([model], *delay)


def _outcome_global(fam: _Families, st: Any) -> None:
    lab = _as_map(_get(st, "labels")) or {}
    jc = fam.counter("skewwatch_label_join_events", "Label join outcomes: matched (first label of a held "
                     "prediction), duplicate, correction, expired (no label within the TTL), evicted (store full), "
                     "orphan (label whose prediction never came), rejected (a value the prediction's model does not take, e.g. "
                     "not 0/1 for a binary model).", ("result",))
    for k, res in _JOIN.items():
        if _finite(lab.get(k)):
            jc.add_metric([res], float(lab[k]))
    for key, fname, doc in _LABEL_GAUGES:
        if _finite(lab.get(key)):
            fam.gauge(fname, doc, ()).add_metric([], float(lab[key]))
    par = _as_map(_get(st, "parity")) or {}
    pc = fam.counter("skewwatch_parity_join_events", "Offline feature events by join result: joined to a served "
                     "prediction, unjoined (no prediction within the hold), duplicate.", ("result",))
    for k in ("joined", "unjoined", "duplicates"):
        if _finite(par.get(k)):
            pc.add_metric([_JOIN.get(k, k)], float(par[k]))
    if _finite(par.get("held")):
        fam.gauge("skewwatch_parity_held", "Offline feature events waiting for their prediction.", ()).add_metric(
            [], float(par["held"]))
    if _finite(par.get("held_bytes")):
        fam.gauge("skewwatch_parity_held_bytes", "Estimated memory of the offline feature events waiting for their "
                  "prediction (bounded by a quarter of detector.max_parity_bytes).", ()).add_metric(
            [], float(par["held_bytes"]))
