"""Raw messages -> JSON values, and the small checks every event kind shares. Never raises on input.

Everything a producer controls is hostile until checked: :func:`parse_messages` turns any bytes
into decoded objects or :class:`EventError` records (invalid JSON, JSON nested too deep, numbers
beyond float range, NaN literals, envelopes holding non-objects...), and the helpers below turn
field values into columns without ever raising - a value of the wrong type, an integer with 400
digits or a 100 KB string becomes an error record (identifiers) or a counted, clipped value
(values), never an exception that would cost the rest of the batch.

Reasons (the ``reason`` of an :class:`EventError`, a fixed vocabulary - metrics label them):

======================  =============================================================
``empty_message``       empty message or tombstone
``invalid_json``        not JSON (incl. nested deeper than :data:`MAX_DEPTH` levels)
``not_an_object``       JSON, but neither an object nor an array of objects
``missing_field``       a required field is absent, null or empty
``bad_field``           a field holds a value of the wrong type (a list for a decision...)
``oversized_field``     an identifier longer than ``detector.max_id_bytes``
``bad_timestamp``       ``ts`` is not RFC 3339 / epoch (s, ms, us, ns), or beyond year 9999
``ancient_timestamp``   ``ts`` before ``detector.min_epoch``
``future_timestamp``    ``ts`` too far ahead of the stream (engine)
``bad_score``           ``score`` is not a finite number
``bad_prediction``      ``prediction`` is not a finite number, or ``predicted_class`` not a class name
``bad_scores``          ``scores`` is not an object of probabilities summing to at most 1
``bad_features``        ``features`` is not an object
``bad_label``           ``label`` is not a label the model's task accepts
``unknown_model``       no reference for the event's model (engine)
``internal_error``      a bug of ours met this event; it is isolated, its batch-mates go on
======================  =============================================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import orjson

__all__ = [
    "decision_lut",
    "EventError", "REASONS", "DEFAULT_MAX_ID_BYTES", "DEFAULT_MAX_VALUE_BYTES", "MAX_DEPTH", "parse_messages",
    "column", "raw_of", "item_of", "row_error", "reject", "clip", "text_of", "preview", "id_problem", "name_problem",
    "ids_ok", "float_or_nan",
]

DEFAULT_MAX_ID_BYTES = 256  # prediction ids (detector.max_id_bytes)
DEFAULT_MAX_VALUE_BYTES = 256  # every other retained string (detector.max_value_bytes)
MAX_DEPTH = 1024  # orjson's nesting limit; deeper JSON is rejected, never recursed into
REASONS = ("empty_message", "invalid_json", "not_an_object", "missing_field", "bad_field", "oversized_field",
           "bad_timestamp", "ancient_timestamp", "future_timestamp", "bad_score", "bad_prediction", "bad_scores", "bad_features", "bad_label",
           "unknown_model", "internal_error", "oversized")


@dataclass(slots=True)
class EventError:
    """One message or event that could not be used, with why (for the dead-letter topic).

    ``index`` is the position of the *message* in the input batch (-1 when not known);
    ``item`` the position of the event inside a batch envelope (-1 for a single-event message),
    so a shell can dead-letter just the bad item (``raw``) instead of the whole envelope.
    """

    reason: str  # short machine code from REASONS, e.g. "invalid_json"
    detail: str  # human sentence: what is wrong and how to fix it
    raw: bytes = b""  # the offending payload (shells decide what to do with it; never logged)
    index: int = -1
    item: int = -1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"reason": self.reason, "detail": self.detail, "index": self.index}
        if self.item >= 0:
            d["item"] = self.item
        return d


# --------------------------------------------------------------------------- JSON


def _big_int(s: str) -> int | float:
    """stdlib ``parse_int``: integers beyond 18 digits become floats (inf beyond float range).

    Python ints of any size would later raise ``OverflowError`` in every float conversion.
    """
    return int(s) if len(s) <= 18 else float(s)


def _loads(raw: bytes) -> Any:
    """orjson, or - for what orjson refuses but Python's ``json`` writes (NaN, Infinity, 1e999) -
    the stdlib with big integers read as floats. Raises ``ValueError`` for anything else."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc).lower():
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
        first = exc
    try:
        obj = json.loads(raw, parse_int=_big_int)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    except Exception:  # noqa: BLE001 - any failure of the fallback means: not JSON
        raise ValueError(str(first)) from None
    try:
        orjson.dumps(obj)  # what we keep must be writable again (alerts, dead letters, checkpoints)
    except Exception:  # noqa: BLE001 - e.g. "\\ud800": an escaped lone surrogate is not text
        raise ValueError("holds a string that is not valid Unicode (a lone surrogate escape)") from None
    return obj


def parse_messages(raws: Sequence[bytes | None]) -> tuple[list[dict[str, Any]], list[int], list[EventError]]:
    """JSON-decode messages. Returns (events, message index per event, errors). Never raises.

    The common case (every message is one valid JSON object) is a single C-level ``map``; only
    a batch holding a bad message or an envelope takes the per-message path.
    """
    try:
        objs = list(map(orjson.loads, raws))  # type: ignore[arg-type]
        if set(map(type, objs)) <= {dict}:
            return objs, list(range(len(objs))), []
    except Exception:  # noqa: BLE001 - some message is bad: find it below
        pass
    return _parse_slow(raws)


def _parse_slow(raws: Sequence[bytes | None]) -> tuple[list[dict[str, Any]], list[int], list[EventError]]:
    events: list[dict[str, Any]] = []
    origin: list[int] = []
    errors: list[EventError] = []
    for i, raw in enumerate(raws):
        if raw is None or len(raw) == 0:
            errors.append(EventError("empty_message", "empty message or tombstone; send one JSON object per message", b"", i))
            continue
        try:
            obj = _loads(raw)
        except Exception as exc:  # noqa: BLE001 - bytes we cannot read are the producer's problem
            errors.append(EventError("invalid_json", f"not valid JSON ({str(exc)[:80]}); send one JSON object "
                                     "(or an array of objects) per message, UTF-8 encoded", _bytes(raw), i))
            continue
        if type(obj) is dict:
            events.append(obj)
            origin.append(i)
        elif type(obj) is list:
            for j, item in enumerate(obj):
                if type(item) is dict:
                    events.append(item)
                    origin.append(i)
                else:
                    errors.append(EventError("not_an_object", f"batch envelope item {j} is a JSON {_json_type(item)}; "
                                             "every item of an array must be an event object", _dumps(item), i, j))
        else:
            errors.append(EventError("not_an_object", f"message is a JSON {_json_type(obj)}; send an event object "
                                     "or an array of event objects", _bytes(raw), i))
    return events, origin, errors


def _json_type(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(v), type(v).__name__)


def _bytes(raw: Any) -> bytes:
    try:
        return bytes(raw)
    except Exception:  # noqa: BLE001 - a str or an odd buffer: keep what we can
        return str(raw).encode("utf-8", "replace")


def _dumps(v: Any) -> bytes:
    try:
        return orjson.dumps(v)
    except Exception:  # noqa: BLE001 - orjson refuses integers beyond 64 bits (read by the stdlib)
        try:
            return json.dumps(v, default=str).encode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - nothing left to keep
            return b""


def column(events: list[dict[str, Any]], key: str) -> list[Any]:
    """``[e.get(key) for e in events]`` at C speed."""
    return list(map(dict.get, events, repeat(key, len(events))))


def item_of(origin: list[int], i: int) -> int:
    """Position of event ``i`` inside its envelope, or -1 when its message held only it."""
    o = origin[i]
    single = (i == 0 or origin[i - 1] != o) and (i + 1 == len(origin) or origin[i + 1] != o)
    if single:
        return -1
    j = i
    while j > 0 and origin[j - 1] == o:
        j -= 1
    return i - j


def raw_of(e: dict[str, Any], raws: Sequence[bytes | None], origin: list[int], i: int) -> bytes:
    """The bytes to dead-letter for event ``i``: the producer's exact message, or - for an
    envelope item - just that item re-encoded."""
    if item_of(origin, i) < 0:
        return _bytes(raws[origin[i]])
    return _dumps(e)


def row_error(reason: str, detail: str, raws: Sequence[bytes | None] | None, msg: int, item: int) -> EventError:
    """An error for the event at (message, envelope item) of ``raws``: its exact bytes, or - for
    an envelope item - that item re-encoded. For errors found after decoding (engine rules)."""
    raw = b""
    if raws is not None and 0 <= msg < len(raws):
        raw = _bytes(raws[msg])
        if item >= 0:
            try:
                raw = _dumps(_loads(raw)[item])
            except Exception:  # noqa: BLE001 - keep the whole envelope rather than nothing
                pass
    return EventError(reason, detail, raw, msg, item)


def reject(reason: str, detail: str, e: dict[str, Any], raws: Sequence[bytes | None], origin: list[int],
           i: int) -> EventError:
    return EventError(reason, detail, raw_of(e, raws, origin, i), origin[i], item_of(origin, i))


# --------------------------------------------------------------------------- values


def float_or_nan(v: Any) -> float:
    """A number as a float (``inf`` beyond float range); NaN for anything else."""
    if type(v) is float:
        return v
    if type(v) is int:
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    return math.nan


def preview(v: Any, n: int = 40) -> str:
    """A short, safe rendering of a value for an error message (never the whole payload)."""
    if isinstance(v, dict | list):
        return f"<{_json_type(v)} of {len(v)} items>"
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"<integer of ~{int(v.bit_length() * 0.30103)} digits>"
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def clip(s: str, max_bytes: int) -> tuple[str, bool]:
    """``s`` cut to at most ``max_bytes`` of UTF-8 (on a character boundary); (text, was it cut)."""
    if len(s) * 4 <= max_bytes:
        return s, False
    b = s.encode("utf-8", "surrogatepass")
    if len(b) <= max_bytes:
        return s, False
    return b[:max_bytes].decode("utf-8", "ignore"), True


def text_of(v: Any) -> str | None:
    """A scalar as the text it is compared by (categories, slice values, decisions); None for
    null and for lists/objects (not scalars). ``True`` -> ``"true"``, ``12.0`` -> ``"12"``."""
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v) if v.bit_length() <= 64 else None
    if t is float:
        if v != v or v in (math.inf, -math.inf):
            return None
        return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    return None


def byte_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def id_problem(v: Any, field: str, max_bytes: int) -> tuple[str, str] | None:
    """Why ``v`` is not a usable identifier (``prediction_id``), or None. Strings and integers
    are accepted (integers are compared by their decimal text)."""
    if type(v) is int:
        return None if v.bit_length() <= 64 else ("bad_field", f"{field}={preview(v)} is not a usable id; send it as a string")
    return _text_problem(v, field, max_bytes, "every event needs one (a string, e.g. a UUID)", " (or an integer)",
                         f"detector.max_id_bytes={max_bytes}; send a short id (a UUID or a hash of the long one) or "
                         "raise the limit")


def name_problem(v: Any, field: str, max_bytes: int) -> tuple[str, str] | None:
    """Why ``v`` is not a usable name (``model``), or None."""
    return _text_problem(v, field, max_bytes, "every prediction names its model", "",
                         f"detector.max_value_bytes={max_bytes}; use a short model name")


def _text_problem(v: Any, field: str, max_bytes: int, needed: str, also: str, limit: str) -> tuple[str, str] | None:
    if v is None or v == "":
        return "missing_field", f"{field} is missing or empty; {needed}"
    if type(v) is not str:
        return "bad_field", f"{field}={preview(v)} must be a string{also}"
    n = byte_len(v)
    if n > max_bytes:
        return "oversized_field", f"{field} is {n:,} bytes, above {limit}"
    return None


def ids_ok(col: list[Any], max_bytes: int) -> bool:
    """Fast check: every value is a non-empty string short enough (the usual case)."""
    if not col or set(map(type, col)) != {str}:
        return not col
    if "" in col:
        return False
    return max(map(len, col)) * 4 <= max_bytes or max(map(byte_len, col)) <= max_bytes


def decision_lut(values: Sequence[Any], counts: np.ndarray, no_action: set[str]) -> tuple[np.ndarray, dict[str, int]]:
    """A batch's decision values read once: ``acted`` per value (1 action, 0 no action, NaN for a value
    that has no text form; one more NaN at the end for null) and the events per decision value, lower-cased,
    at most 32 distinct (``counts[i]``: the events that carry ``values[i]``). Both columnar decoders use it.

    >>> lut, d = decision_lut(["Approve", "review", None], np.array([3, 2, 1]), {"review"})
    >>> lut.tolist()[:3], d
    ([1.0, 0.0, nan], {'approve': 3, 'review': 2})
    """
    decisions: dict[str, int] = {}
    lut = np.full(len(values) + 1, np.nan)
    for i, v in enumerate(values):
        s = text_of(v)
        if s is None:
            continue
        s = s.lower()
        lut[i] = 0.0 if s in no_action else 1.0
        if len(decisions) < 32 or s in decisions:
            decisions[s] = decisions.get(s, 0) + int(counts[i])
    return lut, decisions
