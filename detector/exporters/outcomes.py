"""Outcome metrics from ``engine.outcomes.stats(model)`` (labels, cohorts, parity; every key optional):
per model and slice (:func:`_outcome_model`) and the label and parity joins shared by all models
(:func:`_outcome_global`). Read at scrape time by :class:`detector.exporters.prometheus.SkewwatchCollector`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detector.exporters.families import (
    CLASS_OUTCOME_FAMILIES,
    JOIN_STATES,
    LABEL_GAUGES,
    OUTCOME_FAMILIES,
    PARITY_FAMILIES,
    Families,
    as_map,
    bounded,
    delay_buckets,
    epoch_seconds,
    get_field,
    is_finite,
    slice_label,
)

__all__ = ["add_outcomes"]


def add_outcomes(fam: Families, models: list[str], stats: Callable[[str], Any]) -> None:
    glob: Any = None
    for model in models:
        st = stats(model)
        if st is None:
            continue
        glob = glob if glob is not None else st
        _outcome_model(fam, model, st)
    if glob is not None:
        _outcome_global(fam, glob)


def _outcome_model(fam: Families, model: str, st: Any) -> None:
    mat = get_field(st, "maturity_s")
    if is_finite(mat):
        fam.gauge("skewwatch_label_maturity_seconds", "Label age at which prediction cohorts are evaluated "
                  "(observed 90th percentile of the label delay).", ("model",)).add_metric([model], float(mat))
    end = epoch_seconds(get_field(get_field(st, "window"), "end"))
    if end is not None:
        fam.gauge("skewwatch_outcome_window_end_timestamp_seconds", "End (event time) of the last evaluated "
                  "prediction cohort.", ("model",)).add_metric([model], end)
    slices = as_map(get_field(st, "slices")) or {}
    for key, fname, doc in OUTCOME_FAMILIES:
        for skey, row in slices.items():
            v = get_field(row, key)
            if is_finite(v):
                fam.gauge(fname, doc, ("model", "slice")).add_metric([model, slice_label(skey)], float(v))
    for key, fname, doc in CLASS_OUTCOME_FAMILIES:
        for skey, row in slices.items():
            for cls, v in (as_map(get_field(row, key)) or {}).items():
                if is_finite(v):
                    fam.gauge(fname, doc, ("model", "slice", "class")).add_metric(
                        [model, slice_label(skey), bounded(str(cls))], float(v))
    par = as_map(get_field(get_field(st, "parity"), "features")) or {}
    for feat, per in par.items():
        for skey, row in (as_map(per) or {}).items():
            for key, fname, doc in PARITY_FAMILIES:
                v = get_field(row, key)
                if is_finite(v):
                    fam.gauge(fname, doc, ("model", "feature", "slice")).add_metric(
                        [model, str(feat), slice_label(skey)], float(v))
    delay = delay_buckets(get_field(get_field(st, "labels"), "delay") or get_field(st, "delay"))
    if delay is not None:
        fam.histogram("skewwatch_label_delay_seconds", "Delay from a prediction to its first label.",
                      ("model",)).add_metric([model], *delay)


def _outcome_global(fam: Families, st: Any) -> None:
    lab = as_map(get_field(st, "labels")) or {}
    jc = fam.counter("skewwatch_label_join_events", "Label join outcomes: matched (first label of a held "
                     "prediction), duplicate, correction, expired (no label within the TTL), evicted (store full), "
                     "orphan (label whose prediction never came), rejected (a value the prediction's model does not take, e.g. "
                     "not 0/1 for a binary model).", ("result",))
    for k, res in JOIN_STATES.items():
        if is_finite(lab.get(k)):
            jc.add_metric([res], float(lab[k]))
    for key, fname, doc in LABEL_GAUGES:
        if is_finite(lab.get(key)):
            fam.gauge(fname, doc, ()).add_metric([], float(lab[key]))
    par = as_map(get_field(st, "parity")) or {}
    pc = fam.counter("skewwatch_parity_join_events", "Offline feature events by join result: joined to a served "
                     "prediction, unjoined (no prediction within the hold), duplicate.", ("result",))
    for k in ("joined", "unjoined", "duplicates"):
        if is_finite(par.get(k)):
            pc.add_metric([JOIN_STATES.get(k, k)], float(par[k]))
    if is_finite(par.get("held")):
        fam.gauge("skewwatch_parity_held", "Offline feature events waiting for their prediction.", ()).add_metric(
            [], float(par["held"]))
    if is_finite(par.get("held_bytes")):
        fam.gauge("skewwatch_parity_held_bytes", "Estimated memory of the offline feature events waiting for their "
                  "prediction (bounded by a quarter of detector.max_parity_bytes).", ()).add_metric(
            [], float(par["held_bytes"]))
