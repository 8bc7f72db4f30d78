"""Decoding label and offline-feature events into columns, never raising on bad input.

=========================================  ==================================================
label / offline feature event              outcome
=========================================  ==================================================
``prediction_id`` missing / not a string   error ``missing_field`` / ``bad_field`` (integers
or integer / > ``max_id_bytes``            are accepted) / ``oversized_field``
``ts`` absent, unparseable, > year 9999    error ``bad_timestamp``
``ts`` before ``min_epoch``                error ``ancient_timestamp``
``label`` not 0/1/true/false (binary)      error ``bad_label``
``label`` not a finite number (regression) error ``bad_label``
``label`` not a class name (multiclass)    error ``bad_label`` (a class the reference does not
                                           know is ``__other__``, not an error)
a string label, models of several tasks    error ``bad_label``: name the ``model`` (the event
and no ``model`` named                     cannot say which model's classes it uses)
``revision`` not a whole number in         error ``bad_field`` (NaN, 1e999, 2.5, -1, "2",
[0, 2**53]                                 a list...)
``model`` not a string (or too long)       error ``bad_field`` / ``oversized_field``
offline ``features`` not an object         error ``bad_features``
=========================================  ==================================================

Offline feature values are compared with the served ones in :mod:`detector.core.outcomes.parity`,
which counts values of the wrong type there (as the prediction path does); the event's size in
bytes travels with it (``FeatureBatch.nbytes``) so held events can be bounded in bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.inputs.timeparse import parse_timestamps
from detector.core.inputs.wire import (
    DEFAULT_MAX_ID_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    EventError,
    column,
    id_problem,
    ids_ok,
    preview,
    reject,
)

__all__ = ["LabelBatch", "LabelTasks", "decode_labels", "FeatureBatch", "decode_feature_events", "MAX_REVISION"]

MAX_REVISION = 2**53  # revisions are compared as exact integers; larger ones are not revisions


#: which task decodes the label of a model (``None``: the label names no model); ``None`` back = the
#: models' tasks disagree, so only numbers are understood (:func:`decode_labels`)
LabelTasks = Callable[[str | None], Any]


@dataclass
class LabelBatch:
    ids: list[str]
    ts: np.ndarray
    label: np.ndarray  # float64: 0/1 (binary), the target (regression), the class code (multiclass)
    revision: np.ndarray  # int64, 0 when absent
    model: list[str | None]

    @property
    def n(self) -> int:
        return len(self.ids)


@dataclass
class FeatureBatch:
    ids: list[str]
    ts: np.ndarray
    features: list[dict[str, Any]]
    model: list[str | None]
    nbytes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # approx. bytes per event

    @property
    def n(self) -> int:
        return len(self.ids)


def _common(kind: str, events: list[dict[str, Any]], min_epoch: float, max_id_bytes: int,
            max_value_bytes: int) -> tuple[np.ndarray, dict[int, tuple[str, str]]]:
    """Checks shared by labels and offline features: id, ts, model. Returns (ts, problems)."""
    why: dict[int, tuple[str, str]] = {}
    pids = column(events, "prediction_id")
    if not ids_ok(pids, max_id_bytes):
        for i, v in enumerate(pids):
            if (p := id_problem(v, "prediction_id", max_id_bytes)) is not None:
                why.setdefault(i, (p[0], f"{kind} event: {p[1]}"))
    ts_raw = column(events, "ts")
    ts = parse_timestamps(ts_raw)
    bad = np.isnan(ts) | (ts < min_epoch)
    for i in np.flatnonzero(bad).tolist():
        if np.isnan(ts[i]):
            why.setdefault(i, ("bad_timestamp", f"{kind} ts={preview(ts_raw[i])} is not a time: send RFC 3339 or "
                                                "epoch seconds / ms / us / ns, before year 10000"))
        else:
            why.setdefault(i, ("ancient_timestamp", f"{kind} ts={preview(ts_raw[i])} is before {min_epoch:.0f} "
                                                    "(detector.min_epoch); check the producer's clock and unit"))
    models = column(events, "model")
    if set(map(type, models)) - {str, type(None)} or any(m is not None and len(m) * 4 > max_value_bytes for m in models):
        for i, m in enumerate(models):
            if m is None:
                continue
            if type(m) is not str:
                why.setdefault(i, ("bad_field", f"{kind} model={preview(m)} must be a string (or absent)"))
            elif len(m.encode("utf-8", "surrogatepass")) > max_value_bytes:
                why.setdefault(i, ("oversized_field", f"{kind} model is longer than detector.max_value_bytes="
                                                      f"{max_value_bytes}; use a short model name"))
    return ts, why


def _revision(v: Any) -> int | None:
    """A revision as an int, or None when it is not one (absent -> 0)."""
    if v is None:
        return 0
    t = type(v)
    if t is int:
        return v if 0 <= v <= MAX_REVISION else None
    if t is float and v.is_integer() and 0 <= v <= MAX_REVISION:  # is_integer() is False for NaN / inf
        return int(v)
    return None


def _task_labels(tasks: LabelTasks, events: list[dict[str, Any]], ys: list[Any], labels: np.ndarray,
                 why: dict[int, tuple[str, str]]) -> None:
    """Labels of models whose task is not binary, decoded by the task (:mod:`detector.core.outcomes.tasks`)."""
    groups: dict[int, tuple[Any, list[int]]] = {}
    models = column(events, "model")
    for i, m in enumerate(models):
        if i in why:
            continue
        t = tasks(m if type(m) is str else None)
        groups.setdefault(id(t), (t, []))[1].append(i)
    for t, idx in groups.values():
        if t is not None and t.name == "binary":
            _binary_labels(idx, ys, labels, why)
            continue
        if t is None:  # unnamed, and the models' tasks disagree: numbers are numbers, names need the model
            for i in idx:
                y = ys[i]
                if type(y) in (int, float, bool) and math.isfinite(y):
                    labels[i] = float(y)
                else:
                    why[i] = ("bad_label", f"label={preview(y)}: this sidecar watches models of several tasks; "
                                           "a label that is not a number must name its \"model\"")
            continue
        dec = t.decode_labels([ys[i] for i in idx])
        labels[idx] = dec.y
        for k, code, msg in dec.errors:
            why[idx[k]] = ("bad_label" if code != "missing_field" else code, msg)


def _binary_labels(idx: Sequence[int], ys: list[Any], labels: np.ndarray, why: dict[int, tuple[str, str]]) -> None:
    for i in idx:
        y = ys[i]
        if (y == 0 or y == 1) and type(y) in (int, float, bool):  # 0/1, 0.0/1.0, bools
            labels[i] = float(y)
        else:
            why[i] = ("bad_label", f"label={preview(y)}: binary labels must be 0/1 or true/false (class names "
                                   "need a reference built with --task multiclass, numbers --task regression)")


def decode_labels(
    events: list[dict[str, Any]], origin: list[int], raws: Sequence[bytes | None], min_epoch: float,
    max_id_bytes: int = DEFAULT_MAX_ID_BYTES, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    tasks: LabelTasks | None = None,
) -> tuple[LabelBatch, list[EventError]]:
    """Label events -> columns; ``tasks`` says which task decodes a model's labels (None: every model is
    binary, the labels 0/1)."""
    ts, why = _common("label", events, min_epoch, max_id_bytes, max_value_bytes)
    ys = column(events, "label")
    revs = column(events, "revision")
    labels = np.zeros(len(events))
    rev = np.zeros(len(events), dtype=np.int64)
    if tasks is None:
        _binary_labels([i for i in range(len(events)) if i not in why], ys, labels, why)
    else:
        _task_labels(tasks, events, ys, labels, why)
    for i in range(len(events)):
        if i in why:
            continue
        r = _revision(revs[i])
        if r is None:
            why[i] = ("bad_field", f"revision={preview(revs[i])} must be a whole number from 0 to 2**53 (or absent); "
                                   "a higher revision replaces a lower one")
        else:
            rev[i] = r
    errors = [reject(*why[i], events[i], raws, origin, i) for i in sorted(why)]
    ok = [i for i in range(len(events)) if i not in why]
    idx = np.asarray(ok, dtype=np.int64)
    return LabelBatch(
        ids=[str(events[i]["prediction_id"]) for i in ok], ts=ts[idx], label=labels[idx], revision=rev[idx],
        model=[events[i].get("model") for i in ok],
    ), errors


def decode_feature_events(
    events: list[dict[str, Any]], origin: list[int], raws: Sequence[bytes | None], min_epoch: float,
    max_id_bytes: int = DEFAULT_MAX_ID_BYTES, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> tuple[FeatureBatch, list[EventError]]:
    ts, why = _common("offline feature", events, min_epoch, max_id_bytes, max_value_bytes)
    feats = column(events, "features")
    if set(map(type, feats)) != {dict}:
        for i, f in enumerate(feats):
            if type(f) is not dict:
                why.setdefault(i, ("bad_features", f"features={preview(f)} must be an object of feature name -> value"))
    errors = [reject(*why[i], events[i], raws, origin, i) for i in sorted(why)]
    ok = [i for i in range(len(events)) if i not in why]
    idx = np.asarray(ok, dtype=np.int64)
    # bytes per event: its message's size, shared by the items of an envelope
    per_msg: dict[int, int] = {}
    for o in origin:
        per_msg[o] = per_msg.get(o, 0) + 1
    nbytes = np.array([len(raws[origin[i]] or b"") // per_msg[origin[i]] for i in ok], dtype=np.int64)
    return FeatureBatch(
        ids=[str(events[i]["prediction_id"]) for i in ok], ts=ts[idx], features=[feats[i] for i in ok],
        model=[events[i].get("model") for i in ok], nbytes=nbytes,
    ), errors
