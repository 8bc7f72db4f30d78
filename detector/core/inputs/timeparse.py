"""Vectorised timestamp parsing: RFC 3339 strings or epoch numbers -> float64 epoch seconds.

Accepted, per value:
- numbers: epoch seconds; values above 1e11 are read as epoch *milliseconds*, above 1e14 as
  *microseconds* and above 1e17 as *nanoseconds* (the units Java, JavaScript, Go and Kafka
  producers send), so 1795615200123 is 2026-11-25T14:00:00.123Z;
- strings: RFC 3339 / ISO 8601 with ``Z`` or a numeric offset (``2026-11-25T14:00:00.123Z``,
  ``2026-11-25T15:00:00+01:00``, ``2026-11-25 14:00:00Z``); a string without an offset is UTC.

Anything else (bools, nulls, lists, garbage strings, integers beyond float range, NaN,
infinities, and any time after 9999-12-31 once the unit is applied) becomes NaN, and the caller
turns NaN into an error record naming the field. Never raises. The common case (all numbers,
or all strings ending in ``Z``) is parsed by numpy in one call; other values fall back to
:func:`datetime.fromisoformat` one by one.

>>> parse_timestamps(["2026-11-25T14:00:00.123Z", 1795615200, "bad", None]).tolist()
[1795615200.123, 1795615200.0, nan, nan]
>>> parse_timestamps(["2026-11-25T15:00:00+01:00", 1795615200 * 10**9, True, 10**400]).tolist()
[1795615200.0, 1795615200.0, nan, nan]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

__all__ = ["parse_timestamps", "format_ts"]

_MS_ABOVE = 1e11
_US_ABOVE = 1e14
_NS_ABOVE = 1e17
MAX_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z: later times cannot be formatted (and are not times)
_NUMS = frozenset({int, float, np.float64, np.float32, np.int64, np.int32})  # numpy scalars from a listed array


def _scale_epoch(arr: np.ndarray) -> np.ndarray:
    big = arr > _MS_ABOVE
    if big.any():
        arr = arr.copy()
        ms = big & (arr <= _US_ABOVE)
        us = (arr > _US_ABOVE) & (arr <= _NS_ABOVE)
        ns = arr > _NS_ABOVE
        arr[ms] /= 1e3
        arr[us] /= 1e6
        arr[ns] /= 1e9
    return arr


def _bounded(arr: np.ndarray) -> np.ndarray:
    bad = ~(np.abs(arr) <= MAX_EPOCH)  # NaN, infinities, and beyond year 9999 (or before -9999)
    if bad.any():
        arr = arr.copy() if not arr.flags.writeable else arr
        arr[bad] = np.nan
    return arr


def _one(v: object) -> float:
    t = type(v)
    if t in _NUMS:
        try:
            return float(_scale_epoch(np.array([float(v)], dtype=np.float64))[0])  # type: ignore[arg-type]
        except OverflowError:  # an integer beyond float range
            return np.nan
    if t is not str:
        return np.nan  # bools, nulls, lists, objects
    s = v.strip()  # type: ignore[union-attr]
    if len(s) > 64:
        return np.nan
    try:
        dt = datetime.fromisoformat(s)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    except (ValueError, OverflowError, OSError):
        return np.nan


def parse_timestamps(values: Sequence[object]) -> np.ndarray:
    """Parse a column of timestamps; NaN marks an unparseable value. Never raises."""
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":  # a numeric column (baseline's epochs)
        return _bounded(_scale_epoch(values.astype(np.float64)))
    types = set(map(type, values))
    if types <= _NUMS:
        try:
            return _bounded(_scale_epoch(np.array(values, dtype=np.float64)))
        except (OverflowError, ValueError, TypeError):
            pass  # an integer beyond float range: per value below
    elif types == {str}:
        # Fast path: every value is "...Z" (the contract's form); numpy parses naive ISO strings.
        try:
            if all(s.endswith("Z") for s in values):  # type: ignore[union-attr]
                naive = np.array([s[:-1] for s in values], dtype="datetime64[us]")  # type: ignore[index]
                out = naive.astype(np.int64) / 1e6
                nat = np.isnat(naive)
                if nat.any():
                    out[nat] = np.nan
                return _bounded(out)
        except (ValueError, OverflowError, TypeError):
            pass  # e.g. a space separator or garbage: fall through to the exact path
    return _bounded(np.fromiter(map(_one, values), dtype=np.float64, count=n))


def format_ts(epoch: float) -> str:
    """RFC 3339 UTC with millisecond precision.

    >>> format_ts(1795615200.123)
    '2026-11-25T14:00:00.123Z'
    """
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
