"""Build contract-valid skewwatch events in a model service (standard library only).

A model service publishes one prediction event per decision (and its offline pipeline one
feature event, its label source one label event) to Kafka with any client it already uses;
this module only builds and encodes the messages so that they match
``detector/schemas/*.schema.json`` (the README's event contract):

>>> ev = prediction_event("fraud", {"amount": 12.5, "country": "DE", "age": float("nan")},
...                       score=0.83, prediction_id="p-1", ts=1795615200.123, decision="review",
...                       threshold=0.7, slices={"region": "eu"}, latency_ms=12.4, fallback=False)
>>> encode(ev)
b'{"prediction_id":"p-1","model":"fraud","ts":"2026-11-25T14:00:00.123Z","features":{"amount":12.5,"country":"DE","age":null},"score":0.83,"decision":"review","threshold":0.7,"slices":{"region":"eu"},"latency_ms":12.4,"fallback":false}'
>>> key(ev)
b'p-1'
>>> encode(label_event("p-1", 1, ts="2026-11-26T09:00:00Z"))
b'{"prediction_id":"p-1","ts":"2026-11-26T09:00:00Z","label":1}'

Sending is left to the caller, e.g. with aiokafka::

    await producer.send_and_wait("predictions", encode(ev), key=key(ev))

Non-finite feature values (NaN, ±Infinity) are sent as ``null`` (JSON has no NaN; skewwatch
counts both as missing); a non-finite score, an empty model name or a feature value that is
not a number, string, boolean or null raises :class:`ContractError` naming the field. numpy
scalars are accepted (anything with ``.item()``).
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["ContractError", "prediction_event", "label_event", "feature_event", "encode", "key", "timestamp"]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")
MIN_EPOCH = 946684800.0  # 2000-01-01: skewwatch rejects older timestamps


class ContractError(ValueError):
    """The event would not satisfy the skewwatch event contract; the message names the field."""


def timestamp(t: float | datetime | str | None = None, clock: Callable[[], float] = time.time) -> str:
    """RFC 3339 UTC with milliseconds from epoch seconds, a datetime, a string or now.

    >>> timestamp(1795615200.123)
    '2026-11-25T14:00:00.123Z'
    >>> timestamp(datetime(2026, 11, 25, 15, 0, tzinfo=__import__("datetime").timezone.utc))
    '2026-11-25T15:00:00.000Z'
    """
    if t is None:
        t = clock()
    if isinstance(t, str):
        if not _RFC3339.match(t):
            raise ContractError(f"ts={t!r} is not RFC 3339 (e.g. 2026-11-25T14:00:00.123Z)")
        return t
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ContractError("ts: naive datetime; pass an aware one (tzinfo=timezone.utc)")
        t = t.timestamp()
    t = _plain(t)
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise ContractError(f"ts={t!r} must be epoch seconds, a datetime or an RFC 3339 string")
    if t < MIN_EPOCH:
        raise ContractError(f"ts={t!r} is before 2000-01-01; epoch seconds expected")
    dt = datetime.fromtimestamp(float(t), tz=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(v: Any) -> Any:
    """numpy scalars -> Python scalars (duck-typed: no numpy import)."""
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        try:
            return v.item()
        except (TypeError, ValueError):
            return v
    return v


def _value(field: str, v: Any) -> Any:
    v = _plain(v)
    if v is None or isinstance(v, bool | str):
        return v
    if isinstance(v, int | float):
        return v if math.isfinite(v) else None
    raise ContractError(f"{field}: {type(v).__name__} is not a number, string, boolean or null")


def _features(field: str, features: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(features, Mapping):
        raise ContractError(f"{field} must be a mapping of feature name -> value, not {type(features).__name__}")
    out = {}
    for k, v in features.items():
        if not isinstance(k, str) or not k:
            raise ContractError(f"{field}: feature names must be non-empty strings (got {k!r})")
        out[k] = _value(f"{field}.{k}", v)
    return out


def _number(field: str, v: Any, minimum: float | None = None) -> float | int | None:
    v = _plain(v)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ContractError(f"{field}={v!r} must be a finite number")
    if minimum is not None and v < minimum:
        raise ContractError(f"{field}={v!r} must be >= {minimum}")
    return v


def _id(v: Any) -> str | int:
    v = _plain(v)
    if v is None:
        return uuid.uuid4().hex
    if isinstance(v, bool) or not isinstance(v, str | int) or v == "":
        raise ContractError(f"prediction_id={v!r} must be a non-empty string (or an integer)")
    return v


def prediction_event(model: str, features: Mapping[str, Any], *, score: float | None = None,
                     prediction: float | None = None, prediction_id: str | int | None = None,
                     ts: float | datetime | str | None = None, model_version: str | None = None,
                     decision: str | bool | None = None, threshold: float | None = None,
                     slices: Mapping[str, Any] | None = None, latency_ms: float | None = None,
                     fallback: bool | None = None, override: str | None = None,
                     baseline_decision: str | bool | None = None) -> dict[str, Any]:
    """A prediction event (topic ``predictions``); optional fields are left out when None.

    ``override``: a human override / workflow outcome (its reason code); ``baseline_decision``:
    what the rules or manual process the model replaces would have decided.

    ``prediction_id`` defaults to a random UUID (return it to the caller so labels can join);
    ``ts`` defaults to now.
    """
    if not isinstance(model, str) or not model:
        raise ContractError(f"model={model!r} must be a non-empty string")
    ev: dict[str, Any] = {"prediction_id": _id(prediction_id), "model": model, "ts": timestamp(ts),
                          "features": _features("features", features)}
    if model_version is not None:
        ev["model_version"] = str(model_version)
    for name, v in (("score", score), ("prediction", prediction)):
        n = _number(name, v)
        if n is not None:
            ev[name] = n
    if decision is not None:
        d = _plain(decision)
        if not isinstance(d, str | bool):
            raise ContractError(f"decision={decision!r} must be a string (or a boolean)")
        ev["decision"] = d
    thr = _number("threshold", threshold)
    if thr is not None:
        ev["threshold"] = thr
    if slices:
        ev["slices"] = {str(k): _value(f"slices.{k}", v) for k, v in slices.items()}
    lat = _number("latency_ms", latency_ms, minimum=0.0)
    if lat is not None:
        ev["latency_ms"] = lat
    if fallback is not None:
        ev["fallback"] = bool(_plain(fallback))
    if override is not None:
        ev["override"] = str(override)
    if baseline_decision is not None:
        b = _plain(baseline_decision)
        if not isinstance(b, str | bool):
            raise ContractError(f"baseline_decision={baseline_decision!r} must be a string (or a boolean)")
        ev["baseline_decision"] = b
    return ev


def label_event(prediction_id: str | int, label: int | bool, *, ts: float | datetime | str | None = None,
                revision: int | None = None, model: str | None = None) -> dict[str, Any]:
    """A label event (topic ``labels``): the outcome of a prediction, 0/1; ``revision`` corrects."""
    if prediction_id is None:
        raise ContractError("prediction_id is required: the label joins its prediction on it")
    y = _plain(label)
    if y not in (0, 1) or (isinstance(y, float) and not y.is_integer()):
        raise ContractError(f"label={label!r}: binary labels must be 0/1 or false/true")
    ev: dict[str, Any] = {"prediction_id": _id(prediction_id), "ts": timestamp(ts),
                          "label": y if isinstance(y, bool) else int(y)}
    if revision is not None:
        r = _plain(revision)
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise ContractError(f"revision={revision!r} must be an integer >= 0")
        ev["revision"] = r
    if model is not None:
        ev["model"] = model
    return ev


def feature_event(prediction_id: str | int, features: Mapping[str, Any], *, ts: float | datetime | str | None = None,
                  source: str = "offline", model: str | None = None) -> dict[str, Any]:
    """An offline feature event (topic ``features``) for feature parity against the served values."""
    if prediction_id is None:
        raise ContractError("prediction_id is required: offline features join their prediction on it")
    ev: dict[str, Any] = {"prediction_id": _id(prediction_id), "ts": timestamp(ts),
                          "features": _features("features", features), "source": source}
    if model is not None:
        ev["model"] = model
    return ev


def encode(event: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> bytes:
    """Compact UTF-8 JSON; a list of events becomes one batch-envelope message (a JSON array)."""
    obj: Any = event if isinstance(event, Mapping) else list(event)
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except ValueError as exc:  # NaN/Infinity left in a hand-built event
        raise ContractError(f"event holds a non-finite number ({exc}); build it with prediction_event()") from exc


def key(event: Mapping[str, Any]) -> bytes:
    """The Kafka message key: the prediction id (keeps a prediction, its label and features together)."""
    return str(event["prediction_id"]).encode()
