"""Vectorised timestamp parsing: RFC 3339 strings or epoch numbers -> float64 epoch seconds.

Accepted, per value:
- numbers: epoch seconds; values above 1e11 are read as epoch *milliseconds* and above 1e14 as
  *microseconds* (the units Java and JavaScript producers send), so 1795615200123 is
  2026-11-25T14:00:00.123Z;
- strings: RFC 3339 / ISO 8601 with ``Z`` or a numeric offset (``2026-11-25T14:00:00.123Z``,
  ``2026-11-25T15:00:00+01:00``, ``2026-11-25 14:00:00Z``); a string without an offset is UTC.

Anything else (bools, nulls, garbage strings) becomes NaN, and the caller turns NaN into an
error record naming the field. The common case (all strings end in ``Z``) is parsed by numpy in
one call; other strings fall back to :func:`datetime.fromisoformat` one by one.

>>> parse_timestamps(["2026-11-25T14:00:00.123Z", 1795615200, "bad", None]).tolist()
[1795615200.123, 1795615200.0, nan, nan]
>>> parse_timestamps(["2026-11-25T15:00:00+01:00"]).tolist()
[1795615200.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

__all__ = ["parse_timestamps", "format_ts"]

_MS_ABOVE = 1e11
_US_ABOVE = 1e14


def _numeric(values: Sequence[object]) -> np.ndarray | None:
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim != 1:
        return None
    return _scale_epoch(arr)


def _scale_epoch(arr: np.ndarray) -> np.ndarray:
    big = arr > _MS_ABOVE
    if big.any():
        arr = arr.copy()
        us = arr > _US_ABOVE
        arr[big & ~us] /= 1e3
        arr[us] /= 1e6
    return arr


def _one(v: object) -> float:
    if isinstance(v, bool) or v is None:
        return np.nan
    if isinstance(v, int | float):
        return float(_scale_epoch(np.array([v], dtype=np.float64))[0])
    if not isinstance(v, str):
        return np.nan
    s = v.strip()
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return np.nan
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_timestamps(values: Sequence[object]) -> np.ndarray:
    """Parse a column of timestamps; NaN marks an unparseable value."""
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=np.float64)
    first = values[0]
    if isinstance(first, int | float) and not isinstance(first, bool):
        arr = _numeric(values)
        if arr is not None and not any(isinstance(v, bool) for v in values[:1]):
            return arr
    elif isinstance(first, str):
        # Fast path: every value is "...Z" (the contract's form); numpy parses naive ISO strings.
        try:
            if all(isinstance(s, str) and s.endswith("Z") for s in values):
                naive = np.array([s[:-1] for s in values], dtype="datetime64[us]")
                return naive.astype(np.int64) / 1e6
        except ValueError:
            pass  # e.g. a space separator or garbage: fall through to the exact path
    return np.fromiter((_one(v) for v in values), dtype=np.float64, count=n)


def format_ts(epoch: float) -> str:
    """RFC 3339 UTC with millisecond precision.

    >>> format_ts(1795615200.123)
    '2026-11-25T14:00:00.123Z'
    """
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
