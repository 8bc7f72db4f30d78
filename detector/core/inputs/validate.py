"""Prediction checks: every field an event must get right, each failure an :class:`EventError`.

The table of outcomes is in :mod:`detector.core.inputs.events`; the reason vocabulary in
:mod:`detector.core.inputs.wire`. Checks run per *column* (one ``set(map(type, ...))`` per field);
only a column that fails looks at its events one by one, so a clean batch costs a few C-level
passes. The first failing check of an event, in contract order, names its reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.core.inputs.timeparse import parse_timestamps
from detector.core.inputs.wire import (
    DEFAULT_MAX_ID_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    EventError,
    column,
    float_or_nan,
    id_problem,
    ids_ok,
    item_of,
    name_problem,
    preview,
    reject,
)

__all__ = ["validate_predictions", "scores_problem", "SCORES_SUM_TOL", "DEFAULT_MAX_ID_BYTES", "DEFAULT_MAX_VALUE_BYTES"]



def _float_col(values: list[Any]) -> np.ndarray:
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return np.fromiter(map(float_or_nan, values), dtype=np.float64, count=len(values))


_ANY_SCALAR = frozenset({str, int, float, bool, type(None)})
_NUMBER_OR_NULL = frozenset({int, float, type(None)})
#: optional fields: (name, accepted types, what to tell the producer)
_OPTIONAL: tuple[tuple[str, frozenset[type], str], ...] = (
    ("model_version", frozenset({str, int, float, type(None)}), "a string"),
    ("decision", _ANY_SCALAR, "a string such as \"approve\" (or a boolean)"),
    ("baseline_decision", _ANY_SCALAR, "a string (or a boolean)"),
    ("override", _ANY_SCALAR, "a string reason code (or a boolean)"),
    ("threshold", _NUMBER_OR_NULL, "a finite number"),
    ("latency_ms", _NUMBER_OR_NULL, "a finite number of milliseconds"),
    ("fallback", frozenset({bool, int, type(None)}), "true or false"),
)


def _bad_optional(v: Any, name: str, ok: frozenset[type]) -> bool:
    t = type(v)
    if t not in ok:
        return True
    if name in ("threshold", "latency_ms"):
        return t is not type(None) and not math.isfinite(float_or_nan(v))
    if name == "fallback":
        return t is int and v not in (0, 1)
    if name == "model_version":
        return t is float and not math.isfinite(v)
    return False


def _bad_slices(v: Any) -> str | None:
    """Why a ``slices`` value is unusable, or None."""
    if v is None:
        return None
    if type(v) is not dict:
        return f"slices={preview(v)} must be an object of dimension -> value"
    for k, x in v.items():
        if type(x) not in _ANY_SCALAR:
            return f"slices.{preview(k, 30)} is {preview(x)}; slice values must be strings (or numbers)"
    return None


#: class scores may sum to slightly more than 1 (float32 softmax outputs, rounding)
SCORES_SUM_TOL = 0.02


def scores_problem(v: Any) -> str | None:
    """Why a multiclass ``scores`` value is unusable, or None (absent is fine).

    >>> scores_problem({"a": 0.2, "b": 0.8}) is None, scores_problem({"a": 1.5}) is not None
    (True, True)
    """
    if v is None:
        return None
    if type(v) is not dict or not v:
        return (f"scores={preview(v)} must be an object of class name -> probability, e.g. "
                '{"billing": 0.7, "tech": 0.3}')
    total = 0.0
    for k, x in v.items():
        if type(x) not in (int, float) or not 0.0 <= x <= 1.0:  # NaN fails the range test too
            return f"scores.{preview(k, 30)}={preview(x)}: class scores must be probabilities in [0, 1]"
        total += x
    if total > 1.0 + SCORES_SUM_TOL:
        return f"scores sum to {total:.4g}: class scores are one softmax output and sum to at most 1"
    return None


def _check_multiclass(events: list[dict[str, Any]], flag: Any) -> None:
    """``predicted_class`` (a class name: a string or a whole number) and ``scores`` (see :func:`scores_problem`)."""
    pc = column(events, "predicted_class")
    if set(map(type, pc)) - {str, type(None)}:
        for i, v in enumerate(pc):
            t = type(v)
            if t is str or v is None or t is int or (t is float and math.isfinite(v) and v.is_integer()):
                continue
            flag(i, "bad_prediction", f"predicted_class={preview(v)} must be a class name (a string such as \"billing\", "
                                      "or a whole number)")
    sc = column(events, "scores")
    if set(map(type, sc)) - {type(None)}:
        for i, v in enumerate(sc):
            if (msg := scores_problem(v)) is not None:
                flag(i, "bad_scores", msg)


def validate_predictions(
    events: list[dict[str, Any]], origin: list[int], raws: Sequence[bytes | None], min_epoch: float,
    max_id_bytes: int = DEFAULT_MAX_ID_BYTES, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> tuple[dict[str, list[dict[str, Any]]], list[EventError], dict[str, list[int]], dict[str, list[int]]]:
    """Envelope checks per event; returns events grouped by model, the errors, and the
    message index (``origin``) and envelope position (``item``, -1 for a single-event message)
    of every grouped event.

    Vectorised: each field's column is checked with one ``set(map(type, ...))``; the per-event
    Python path runs only for the columns and events that fail.
    """
    n = len(events)
    if n == 0:
        return {}, [], {}, {}
    items = [item_of(origin, i) for i in range(n)] if len(set(origin)) != n else [-1] * n
    pids = column(events, "prediction_id")
    models = column(events, "model")
    feats = column(events, "features")
    ts_raw = column(events, "ts")
    ts = parse_timestamps(ts_raw)
    scores = column(events, "score")
    preds = column(events, "prediction")
    why: dict[int, tuple[str, str]] = {}  # event -> first reason found (checked in contract order)

    def flag(i: int, reason: str, detail: str) -> None:
        if i not in why:
            why[i] = (reason, detail)

    if not ids_ok(pids, max_id_bytes):
        for i, v in enumerate(pids):
            if (p := id_problem(v, "prediction_id", max_id_bytes)) is not None:
                flag(i, *p)
    if not ids_ok(models, max_value_bytes):
        for i, v in enumerate(models):
            if (p := name_problem(v, "model", max_value_bytes)) is not None:
                flag(i, *p)
    if set(map(type, feats)) != {dict}:
        for i, f in enumerate(feats):
            if type(f) is not dict:
                flag(i, "bad_features", f"features={preview(f)} must be an object of feature name -> value")
    bad_ts = np.isnan(ts) | (ts < min_epoch)
    if bad_ts.any():
        for i in np.flatnonzero(bad_ts).tolist():
            if math.isnan(ts[i]):
                flag(i, "bad_timestamp", f"ts={preview(ts_raw[i])} is not a time: send RFC 3339 (2026-11-25T14:00:00Z) "
                                         "or epoch seconds / ms / us / ns, before year 10000")
            else:
                flag(i, "ancient_timestamp", f"ts={preview(ts_raw[i])} is before {min_epoch:.0f} (detector.min_epoch); "
                                             "check the producer's clock and the timestamp unit")
    for name, col in (("score", scores), ("prediction", preds)):
        types = set(map(type, col))
        if types <= _NUMBER_OR_NULL:
            try:
                sc = np.array(col, dtype=np.float64)  # None -> NaN
            except (OverflowError, ValueError):
                sc = np.fromiter(map(float_or_nan, col), dtype=np.float64, count=n)
            badm = ~np.isfinite(sc)
            if badm.any():  # NaN sent as a value (stdlib JSON) or inf, vs absent
                badm &= np.fromiter((s is not None for s in col), bool, n)
        else:
            badm = np.fromiter((s is not None and not math.isfinite(float_or_nan(s)) for s in col), bool, n)
        for i in np.flatnonzero(badm).tolist():
            if name == "score":
                flag(i, "bad_score", f"score={preview(col[i])} must be a finite number (or absent)")
            else:
                flag(i, "bad_prediction", f"prediction={preview(col[i])} must be a finite number (a regression "
                                          "model's output; or absent)")
    _check_multiclass(events, flag)
    for name, ok, expect in _OPTIONAL:
        col = column(events, name)
        types = set(map(type, col))
        if types == {type(None)}:
            continue
        suspect = not types <= ok
        if not suspect and name in ("threshold", "latency_ms"):
            nonfin = ~np.isfinite(_float_col(col))  # None -> NaN too
            suspect = bool(nonfin.any()) and any(col[i] is not None for i in np.flatnonzero(nonfin).tolist())
        elif not suspect:
            suspect = (name == "fallback" and int in types) or (name == "model_version" and float in types)
        if not suspect:
            continue
        for i, v in enumerate(col):
            if _bad_optional(v, name, ok):
                flag(i, "bad_field", f"{name}={preview(v)} must be {expect} (or absent)")
    sl = column(events, "slices")
    if set(map(type, sl)) - {dict, type(None)} or any(type(x) is dict and set(map(type, x.values())) - _ANY_SCALAR for x in sl):
        for i, v in enumerate(sl):
            if (msg := _bad_slices(v)) is not None:
                flag(i, "bad_field", msg)
    errors: list[EventError] = []
    if why:
        for i in sorted(why):
            errors.append(reject(why[i][0], why[i][1], events[i], raws, origin, i))
        good = [i for i in range(n) if i not in why]
        events = [events[i] for i in good]
        models = [models[i] for i in good]
        origin = [origin[i] for i in good]
        items = [items[i] for i in good]
    by_model: dict[str, list[dict[str, Any]]] = {}
    by_origin: dict[str, list[int]] = {}
    by_item: dict[str, list[int]] = {}
    if not events:
        return by_model, errors, by_origin, by_item
    first = models[0]
    if models.count(first) == len(models):
        by_model[first] = events
        by_origin[first] = list(origin)
        by_item[first] = items
    else:
        for e, m, o, it in zip(events, models, origin, items, strict=True):
            by_model.setdefault(m, []).append(e)
            by_origin.setdefault(m, []).append(o)
            by_item.setdefault(m, []).append(it)
    return by_model, errors, by_origin, by_item
