"""How a training column is read before it is profiled (pure): numbers as float64, text as str/None
(:func:`to_text` spells non-strings; :data:`MISSING_TOKENS` are missing), a label as 0/1
(:func:`label_values`); a column that cannot be read as asked raises :class:`ProfileError` naming the
column and the fix. Used by :func:`detector.core.reference.build.build_reference` and the readers."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import orjson

__all__ = ["MISSING_TOKENS", "ProfileError", "typed_values", "label_values", "to_text"]


_TRUE = frozenset({"1", "1.0", "true"})  # label spellings accepted (after strip + lower)
_FALSE = frozenset({"0", "0.0", "false"})
#: Text values (after stripping blanks, compared case-insensitively) that mean "missing".
MISSING_TOKENS = frozenset({"", "na", "n/a", "null", "none", "nan"})
_TEXT_MISSING = MISSING_TOKENS


class ProfileError(ValueError):
    """The columns cannot be profiled as asked; the message names the column and the fix."""


def typed_values(name: str, values: np.ndarray, kind: str | None = None) -> np.ndarray:
    """A column as :func:`build_reference` profiles it: float64 when numeric (``kind="numeric"``
    parses text, raising :class:`ProfileError` on a non-number), else object str/None."""
    return _typed(name, np.asarray(values), kind)


def label_values(name: str, values: np.ndarray) -> np.ndarray:
    """A label column as float 0.0/1.0 with NaN for missing; other values raise ProfileError."""
    return _label01(name, values)


def to_text(v: Any) -> str | None:
    """The string form of a value in a text column (None/NaN/missing tokens -> None).

    >>> [to_text(v) for v in (1234.0, 12.5, True, "DE", " NA ", None, float("nan"), [1, 2])]
    ['1234', '12.5', 'true', 'DE', None, None, None, '[1,2]']
    """
    if v is None:
        return None
    if isinstance(v, str):
        if (len(v) <= 4 or v[0].isspace() or v[-1].isspace()) and v.strip().lower() in MISSING_TOKENS:
            return None
        return v if type(v) is str else str(v)  # np.str_ -> str (JSON keys must be plain str)
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        if f != f:  # NaN
            return None
        if f.is_integer() and abs(f) < 1e16:
            return str(int(f))
        return repr(f)
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    try:
        return orjson.dumps(v, default=str).decode()
    except TypeError:
        return str(v)


def _typed(name: str, a: np.ndarray, override: str | None) -> np.ndarray:
    """float64 array (numeric) or object array of str/None (categorical)."""
    kind = a.dtype.kind
    if override == "categorical":
        return _as_text(a)
    if override == "numeric" or kind in "fiub":
        return _as_float(name, a)
    return _as_text(a)


def _as_float(name: str, a: np.ndarray) -> np.ndarray:
    kind = a.dtype.kind
    if kind in "fiub":
        return a.astype(np.float64, copy=False)
    vals = a.tolist()
    try:
        return np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
    except (ValueError, TypeError):
        pass
    out = np.empty(len(vals), dtype=np.float64)
    bad: dict[str, int] = {}
    for i, v in enumerate(vals):
        out[i] = np.nan
        if v is None:
            continue
        if isinstance(v, str) and v.strip().lower() in _TEXT_MISSING:
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            key = repr(v)
            bad[key] = bad.get(key, 0) + 1
    if bad:
        shown = ", ".join(list(bad)[:5]) + (", ..." if len(bad) > 5 else "")
        raise ProfileError(
            f"column {name!r} is declared numeric but has {sum(bad.values())} value(s) that are not numbers"
            f" ({shown}); fix the data or declare it categorical"
        )
    return out


def _as_text(a: np.ndarray) -> np.ndarray:
    """object array of str/None, non-strings in their string form (see :func:`to_text`)."""
    if a.dtype.kind == "O" and set(map(type, a.tolist())) <= {str, type(None)}:
        return a
    out = np.empty(len(a), dtype=object)
    out[:] = [to_text(v) for v in a.tolist()]
    return out


def _label01(name: str, a: np.ndarray) -> np.ndarray:
    """Label column -> float 0/1 with NaN for missing; anything else is an error."""
    if a.dtype.kind in "fiub":
        x = a.astype(np.float64, copy=False)
        ok = np.isnan(x) | (x == 0) | (x == 1)
        if ok.all():
            return x
        bad = np.unique(x[~ok])
        shown = ", ".join(repr(float(v)) for v in bad[:5]) + (", ..." if len(bad) > 5 else "")
        n_bad = int((~ok).sum())
    else:
        out = np.full(len(a), np.nan)
        bad_counts: Counter[str] = Counter()
        for i, v in enumerate(a.tolist()):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            if isinstance(v, bool | int | float) and v in (0, 1):
                out[i] = float(v)
                continue
            s = str(v).strip().lower()
            if s in _TEXT_MISSING:
                continue
            if s in _TRUE:
                out[i] = 1.0
            elif s in _FALSE:
                out[i] = 0.0
            else:
                bad_counts[repr(v)] += 1
        if not bad_counts:
            return out
        shown = ", ".join(sorted(bad_counts)[:5]) + (", ..." if len(bad_counts) > 5 else "")
        n_bad = sum(bad_counts.values())
    raise ProfileError(
        f"label column {name!r} must hold 0/1 (or true/false) values; {n_bad} row(s) hold other values ({shown})."
        " A binary label is needed for the base rate: map the target to 0/1, leave --label-column out, or profile"
        " a multiclass / regression model with --task multiclass / --task regression"
    )


def _base_rate(label: np.ndarray) -> tuple[float | None, int]:
    known = ~np.isnan(label)
    n = int(known.sum())
    return (float(label[known].mean()) if n else None), n
