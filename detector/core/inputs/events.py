"""Decoding prediction events (README "Event contract") into columnar batches, never raising on bad input.

:func:`~detector.core.inputs.wire.parse_messages` turns raw Kafka values / JSONL lines into dicts (a
JSON array is a batch envelope of several events); :func:`validate_predictions` checks every
field an event must get right and turns each failure into an :class:`EventError` (reason +
a sentence naming the problem and the fix) for the dead-letter topic; ``PredictionDecoder``
then extracts one model's columns with its schema in a handful of C-level passes
(``itemgetter`` + ``np.array``) rather than per-event Python work. Labels and offline features
are decoded in :mod:`detector.core.inputs.feeds`.

Defined outcomes, per the event contract's "never silently dropped":

=========================================  ==================================================
input                                      outcome
=========================================  ==================================================
not JSON / not an object / nested > 1024   error ``invalid_json`` / ``not_an_object``
NaN / Infinity literals, 1e999             parsed (stdlib fallback); non-finite feature values
                                           count as *missing* and as ``nonfinite``
integers beyond float range                read as +-infinity (non-finite, as above)
missing ``prediction_id``/``model``        error ``missing_field``
``prediction_id`` / ``model`` not a        error ``bad_field``
string (ids may be integers)
``prediction_id`` > ``max_id_bytes``,      error ``oversized_field``
``model`` > ``max_value_bytes``
``ts`` absent / unparseable / > year 9999  error ``bad_timestamp``
``ts`` before ``min_epoch``                error ``ancient_timestamp``
``ts`` > stream time + ``max_future``      error ``future_timestamp`` (checked by the engine)
``score`` not a finite number              error ``bad_score`` (absent score is allowed)
``prediction`` not a finite number         error ``bad_prediction`` (regression output; absent is
                                           allowed)
``predicted_class`` a list / object /      error ``bad_prediction`` (multiclass: a class name)
boolean / non-finite number
``scores`` not an object of numbers in     error ``bad_scores`` (multiclass class scores, a
[0, 1] summing to at most 1                softmax output)
``features`` not an object                 error ``bad_features``
an optional field of the wrong type        error ``bad_field`` naming the field: a list or
(``decision``, ``model_version``,          object where a scalar belongs, a non-number (or a
``override``, ``baseline_decision``,       non-finite one) for ``threshold`` / ``latency_ms``,
``threshold``, ``latency_ms``,             anything but true/false/0/1 for ``fallback``
``fallback``, ``slices`` and its values)
feature of the wrong type (incl. a list    event kept; value counted as a *type mismatch* for
or object for a category)                  that feature (schema signal), not as missing
feature absent (key missing)               counted as missing *and* as absent (schema signal)
feature not in the reference               event kept; name counted (bounded) as unexpected
a retained string longer than              kept, cut to ``max_value_bytes`` and counted in
``max_value_bytes`` (unseen category,      ``PredictionBatch.clipped`` (the engine's
slice value, version, decision, override   ``counters.clipped``)
reason, unexpected feature name)
=========================================  ==================================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from itertools import chain, repeat
from operator import attrgetter
from typing import Any

import numpy as np

from detector.core.inputs.batch import OUTPUT_FIELDS, PredictionBatch, Schema, concat
from detector.core.inputs.fastdecode import Typed, TypedDecoder
from detector.core.inputs.timeparse import parse_timestamps
from detector.core.inputs.wire import (
    DEFAULT_MAX_ID_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    EventError,
    clip,
    column,
    float_or_nan,
    parse_messages,
    text_of,
)

__all__ = [
    "EventError",
    "parse_messages",
    "Schema",
    "PredictionBatch",
    "concat",
    "PredictionDecoder",
    "validate_predictions",
    "LabelBatch",
    "decode_labels",
    "FeatureBatch",
    "decode_feature_events",
    "DEFAULT_MAX_ID_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
]



def _float_col(values: list[Any]) -> np.ndarray:
    """Optional numeric field -> float64 (None -> NaN); non-numbers -> NaN; beyond float range -> +-inf."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return np.fromiter(map(float_or_nan, values), dtype=np.float64, count=len(values))


def _numeric_matrix(rows: list[tuple[Any, ...]] | list[Any], n_feat: int,
                    err_at: list[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of feature values -> (float matrix, type-error count per column); positions of
    type errors are appended to ``err_at`` as (event, feature)."""
    # One C-level pass in the usual case: numpy infers a numeric dtype only when every value is
    # a JSON number or bool (an explicit float64 would silently parse numeric strings such as
    # "12.5"); nulls or other types give an object/str array and take the checked path below.
    try:
        a = np.array(rows)
    except (TypeError, ValueError, OverflowError):
        a = None
    if a is not None and a.ndim == 2 and a.shape[1] == n_feat and a.dtype.kind in "fiub":
        return a.astype(np.float64, copy=False), np.zeros(n_feat, dtype=np.int64)
    if a is not None and a.ndim == 1 and n_feat == 1 and a.dtype.kind in "fiub":
        return a.astype(np.float64).reshape(-1, 1), np.zeros(n_feat, dtype=np.int64)
    if set(map(type, chain.from_iterable(rows))) <= _NUMERIC_TYPES:
        try:
            m = np.array(rows, dtype=np.float64)
            if m.ndim == 1:
                m = m.reshape(-1, n_feat)
            return m, np.zeros(n_feat, dtype=np.int64)
        except (OverflowError, ValueError):
            pass  # an integer beyond float range: per column below
    n = len(rows)
    m = np.full((n, n_feat), np.nan)
    err = np.zeros(n_feat, dtype=np.int64)
    cols = list(zip(*rows, strict=True)) if n_feat > 1 else [rows]
    for j, col in enumerate(cols):
        if set(map(type, col)) <= _NUMERIC_TYPES:
            try:
                m[:, j] = np.array(col, dtype=np.float64)
                continue
            except (OverflowError, ValueError):
                pass
        for i, v in enumerate(col):
            if v is None:
                continue
            if type(v) is bool:
                m[i, j] = float(v)  # True -> 1.0
            elif type(v) is int or type(v) is float:
                m[i, j] = float_or_nan(v)  # beyond float range -> +-inf (counted non-finite)
            else:
                err[j] += 1
                if err_at is not None:
                    err_at.append((i, j))
    return m, err


_MISSING = object()
#: the raw prediction fields a multiclass model's batch carries (PredictionBatch.outputs)
#: model tasks the decoder knows (detector.core.outcomes.tasks)
TASKS = ("binary", "multiclass", "regression")
_NUMERIC_TYPES = {float, int, bool, type(None)}
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _short_strings(col: list[Any], max_bytes: int) -> bool:
    """Every value is None or a string that is surely within ``max_bytes`` (C-level checks)."""
    types = set(map(type, col))
    if not types <= {str, type(None)}:
        return False
    strs = col if type(None) not in types else list(filter(None, col))
    return not strs or max(map(len, strs)) * 4 <= max_bytes


class _Clipper:
    """Cuts retained strings to ``max_bytes`` and counts, per field, how many were cut."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.counts: dict[str, int] = {}

    def __call__(self, s: str, what: str) -> str:
        if len(s) * 4 <= self.max_bytes:
            return s
        out, cut = clip(s, self.max_bytes)
        if cut:
            self.counts[what] = self.counts.get(what, 0) + 1
        return out

    def column(self, col: list[Any], what: str) -> list[str | None]:
        """Scalars -> their text (clipped), anything else -> None."""
        if _short_strings(col, self.max_bytes):
            return col
        out = list(map(text_of, col))
        if self.max_bytes < 1 << 20 and any(s is not None and len(s) * 4 > self.max_bytes for s in out):
            out = [s if s is None else self(s, what) for s in out]
        return out


class PredictionDecoder:
    """Extract one model's columns from validated prediction events (see :func:`validate_predictions`)."""

    def __init__(self, schema: Schema, no_action: Iterable[str], max_unexpected: int = 64,
                 max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES, task: str = "binary") -> None:
        if task not in TASKS:
            raise ValueError(f"unknown model task {task!r}; use one of {', '.join(TASKS)}")
        self.task = task
        self.schema = schema
        self.no_action = {s.lower() for s in no_action}
        self.max_unexpected = max_unexpected
        self.max_value_bytes = max_value_bytes

    def decode(self, model: str, events: list[dict[str, Any]], slice_dims: Sequence[str],
               origin: Sequence[int] | None = None, items: Sequence[int] | None = None) -> PredictionBatch:
        """Columns of validated event dicts (the general path: any shape the contract allows)."""
        sch = self.schema
        n = len(events)
        fs = column(events, "features")
        n_num, n_cat = len(sch.numeric), len(sch.categorical)
        cols = _Cols(n, n_num, n_cat)
        lens = np.fromiter(map(len, fs), dtype=np.int64, count=n)
        # --- numeric block: one itemgetter pass when every key is present (the usual case)
        if n_num:
            try:
                cols.num_rows = list(map(sch._num_get, fs)) if sch._num_get else [(f[sch.numeric[0]],) for f in fs]
            except KeyError:
                per = []
                for j, name in enumerate(sch.numeric):
                    col = list(map(dict.get, fs, repeat(name, n), repeat(_MISSING, n)))
                    cols.num_absent[j] = col.count(_MISSING)
                    if cols.num_absent[j]:
                        cols.flags.extend((i, j, 0) for i, v in enumerate(col) if v is _MISSING)
                        col = [None if v is _MISSING else v for v in col]
                    per.append(col)
                cols.num_rows = list(zip(*per, strict=True))
        if n_cat:
            try:
                crow = list(map(sch._cat_get, fs)) if sch._cat_get else [(f[sch.categorical[0]],) for f in fs]
                cols.cat_cols = list(zip(*crow, strict=True)) if n else [[] for _ in sch.categorical]
            except KeyError:
                cols.cat_cols = [list(map(dict.get, fs, repeat(name, n), repeat(_MISSING, n))) for name in sch.categorical]
        # --- unexpected feature names: only events whose key count differs from the schema's
        n_known = n_num + n_cat
        odd = np.flatnonzero(lens != n_known) if cols.num_absent.any() or any(_MISSING in c for c in cols.cat_cols) \
            else np.flatnonzero(lens > n_known)
        clipper = _Clipper(self.max_value_bytes)
        for i in odd.tolist():
            for k in fs[i]:
                if k not in sch.known:
                    k = clipper(k, "feature_name")
                    if k in cols.unexpected or len(cols.unexpected) < self.max_unexpected:
                        cols.unexpected[k] = cols.unexpected.get(k, 0) + 1
                        cols.unexpected_rows.append((i, k))

        def feature(dim: str) -> list[Any]:
            return list(map(dict.get, fs, repeat(dim, n)))

        return self._finish(model, n, partial(column, events), cols, feature, None, slice_dims, origin, items, clipper)

    def decode_typed(self, model: str, typed: Typed, td: TypedDecoder, slice_dims: Sequence[str]) -> PredictionBatch:
        """Columns of events the typed decoder accepted (all features present, types exact)."""
        evs = typed.events
        n = len(evs)
        cols = _Cols(n, len(td.numeric), len(td.categorical))
        cols.typed = True
        cols.num_rows = td.num_rows(evs)
        cols.cat_cols = td.cat_columns(evs)
        feats = list(map(_FEATURES, evs))

        def get(key: str) -> list[Any]:
            return list(map(attrgetter(key), evs))

        def feature(dim: str) -> list[Any]:
            return list(map(attrgetter(td.attr[dim]), feats))

        return self._finish(model, n, get, cols, feature, typed.ts, slice_dims, typed.origin, typed.item,
                            _Clipper(self.max_value_bytes))

    def _finish(self, model: str, n: int, get: Callable[[str], list[Any]], cols: _Cols,
                feature: Callable[[str], list[Any]], ts: np.ndarray | None, slice_dims: Sequence[str],
                origin: Sequence[int] | None, items: Sequence[int] | None, clipper: _Clipper) -> PredictionBatch:
        """Everything after feature extraction, shared by both decoding paths."""
        sch = self.schema
        n_num = len(sch.numeric)
        flag_list = cols.flags
        if n_num:
            err_at: list[tuple[int, int]] = []
            num = None
            if cols.typed:  # floats or None only (the typed decoder checked): one C pass when no None
                try:
                    num = np.fromiter(chain.from_iterable(cols.num_rows), np.float64, n * n_num).reshape(n, n_num)
                    num_type_err = np.zeros(n_num, dtype=np.int64)
                except TypeError:
                    num = None
            if num is None:
                num, num_type_err = _numeric_matrix(cols.num_rows, n_num, err_at)
            flag_list.extend((i, j, 1) for i, j in err_at)
            nonfinite_mask = np.isinf(num)
            num_nonfinite = nonfinite_mask.sum(axis=0)
            if num_nonfinite.any():
                ii, jj = np.nonzero(nonfinite_mask)
                flag_list.extend((int(i), int(j), 2) for i, j in zip(ii, jj, strict=True))
                num[nonfinite_mask] = np.nan
        else:
            num = np.empty((n, 0))
            num_type_err = np.zeros(0, dtype=np.int64)
            num_nonfinite = np.zeros(0, dtype=np.int64)
        codes, cat_type_err, unseen = self._categories(n, cols, clipper)
        # --- top-level fields (their types were checked by validate_predictions or the typed decoder)
        ids = get("prediction_id")
        if set(map(type, ids)) != {str}:
            ids = list(map(str, ids))
        if ts is None:
            ts = parse_timestamps(get("ts"))
        # the model's output in the ``score`` column: binary the score (else "prediction", as before
        # tasks existed), regression the prediction (else "score"); multiclass the confidence of the
        # predicted class, which its task reads from ``outputs`` (NaN here)
        outputs = None
        if self.task == "multiclass":
            outputs = {k: get(k) for k in OUTPUT_FIELDS}
            score = np.full(n, np.nan)
        else:
            first, second = ("prediction", "score") if self.task == "regression" else ("score", "prediction")
            sc = get(first)
            if sc.count(None):  # per event: the other field stands in
                pc = get(second)
                if pc.count(None) < n:
                    sc = [p if s is None else s for s, p in zip(sc, pc, strict=True)]
            score = _float_col(sc)
        acted, decisions = self._decisions(get("decision"), n, clipper)
        braw = get("baseline_decision")
        baseline = _acted(braw, self.no_action) if braw.count(None) < n else None
        vcol = get("model_version")
        versions: dict[str, int] = {}
        if vcol.count(None) < n:
            for k, v in Counter(clipper.column(vcol, "model_version")).items():
                if k is not None:
                    versions[k] = versions.get(k, 0) + v
        if len(versions) > 16:
            versions = dict(sorted(versions.items(), key=lambda kv: -kv[1])[:16])
        slices: dict[str, list[Any]] = {}
        sl: list[Any] | None = None
        for dim in slice_dims:
            if dim in sch.known:
                raw_sl = feature(dim)
            else:
                if sl is None:
                    sl = [x if type(x) is dict else _EMPTY for x in get("slices")]
                raw_sl = list(map(dict.get, sl, repeat(dim, n)))
            slices[dim] = raw_sl if _short_strings(raw_sl, self.max_value_bytes) else clipper.column(raw_sl, "slice")
        overrides = get("override")
        has_override = overrides.count(None) < n
        if has_override:
            overrides = clipper.column(overrides, "override")
        return PredictionBatch(
            model=model, ids=ids, ts=ts, num=num, num_absent=cols.num_absent, num_nonfinite=num_nonfinite,
            num_type_err=num_type_err, cat_codes=codes, cat_absent=cols.cat_absent, cat_type_err=cat_type_err,
            unseen=unseen, slices=slices, score=score, acted=acted, threshold=_float_col(get("threshold")),
            latency_ms=_float_col(get("latency_ms")), fallback=_float_col(get("fallback")), versions=versions,
            unexpected=cols.unexpected, override=overrides if has_override else None, decisions=decisions,
            flags=np.asarray(flag_list, dtype=np.int64).reshape(-1, 3), unexpected_rows=cols.unexpected_rows,
            baseline=baseline, origin=np.asarray(origin, dtype=np.int64) if origin is not None else None,
            item=np.asarray(items, dtype=np.int64) if items is not None else None, clipped=clipper.counts,
            outputs=outputs,
        )

    def _categories(self, n: int, cols: _Cols, clipper: _Clipper) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """Category codes per feature (unseen = K, missing = K+1), type errors, unseen values."""
        sch = self.schema
        n_num, n_cat = len(sch.numeric), len(sch.categorical)
        codes = np.empty((n, n_cat), dtype=np.int32)
        cat_type_err = np.zeros(n_cat, dtype=np.int64)
        unseen: list[list[str]] = []
        for j, name in enumerate(sch.categorical):
            vocab = sch.vocab[name]
            unseen_code = len(vocab)
            missing_code = unseen_code + 1
            col = cols.cat_cols[j]
            try:
                c = np.fromiter(map(vocab.get, col, repeat(unseen_code, n)), dtype=np.int32, count=n)
            except TypeError:  # a list / object as a category (unhashable): per value
                c = np.fromiter((vocab.get(v, unseen_code) if type(v) in _SCALARS else unseen_code for v in col),
                                dtype=np.int32, count=n)
            bad = np.flatnonzero(c == unseen_code)
            uns: list[str] = []
            for i in bad.tolist():
                v = col[i]
                if v is None:
                    c[i] = missing_code
                elif v is _MISSING:
                    c[i] = missing_code
                    cols.cat_absent[j] += 1
                    cols.flags.append((i, n_num + j, 0))
                elif type(v) is str:
                    uns.append(clipper(v, "category"))
                elif type(v) is bool or (sv := text_of(v)) is None:  # bools, lists, objects, non-finite
                    c[i] = missing_code
                    cat_type_err[j] += 1
                    cols.flags.append((i, n_num + j, 1))
                else:  # numbers for a categorical: compare by their text form
                    code = vocab.get(sv)
                    if code is None:
                        uns.append(clipper(sv, "category"))
                    else:
                        c[i] = code
            codes[:, j] = c
            unseen.append(uns)
        return codes, cat_type_err, unseen

    def _decisions(self, draw: list[Any], n: int, clipper: _Clipper) -> tuple[np.ndarray, dict[str, int]]:
        """``acted`` per event (1 action, 0 no action, NaN none) and the counts per decision value."""
        decisions: dict[str, int] = {}
        if draw.count(None) == n:
            return np.full(n, np.nan), decisions
        draw = [d if type(d) in _SCALARS else None for d in draw]
        lut: dict[Any, float] = {}
        for d, c_ in Counter(draw).items():
            td = text_of(d)
            if td is None:
                continue
            sd = clipper(td.lower(), "decision")
            lut[d] = 0.0 if sd in self.no_action else 1.0
            if len(decisions) < 32 or sd in decisions:
                decisions[sd] = decisions.get(sd, 0) + c_
        return np.fromiter(map(lut.get, draw, repeat(np.nan, n)), dtype=np.float64, count=n), decisions


class _Cols:
    """Feature columns as extracted by one of the decoding paths."""

    def __init__(self, n: int, n_num: int, n_cat: int) -> None:
        self.num_rows: list[Any] = []
        self.num_absent = np.zeros(n_num, dtype=np.int64)
        self.cat_cols: list[Any] = []
        self.cat_absent = np.zeros(n_cat, dtype=np.int64)
        self.flags: list[tuple[int, int, int]] = []
        self.unexpected: dict[str, int] = {}
        self.unexpected_rows: list[tuple[int, str]] = []
        self.typed = False  # values come from the typed decoder: numbers are floats (or None)


_FEATURES = attrgetter("features")



_EMPTY: dict[str, Any] = {}


def _acted(raw: list[Any], no_action: set[str]) -> np.ndarray:
    """Decision values -> 1.0 (an action), 0.0 (a no-action decision), NaN (absent)."""
    nan = float("nan")
    if not set(map(type, raw)) <= _SCALARS:  # objects / lists are not decisions
        raw = [d if type(d) in _SCALARS else None for d in raw]
    lut: dict[Any, float] = {}
    for d in set(raw):
        td = text_of(d)
        if td is not None:
            lut[d] = 0.0 if td.lower() in no_action else 1.0
    return np.fromiter(map(lut.get, raw, repeat(nan, len(raw))), dtype=np.float64, count=len(raw))


# the other event kinds and the checks live next door; importable from here as before
from detector.core.inputs.feeds import FeatureBatch, LabelBatch, decode_feature_events, decode_labels  # noqa: E402
from detector.core.inputs.validate import validate_predictions  # noqa: E402
