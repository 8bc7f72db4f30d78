"""Decoding wire events (DESIGN.md contract) into columnar batches, never raising on bad input.

``parse_messages`` turns raw Kafka values / JSONL lines into dicts (a JSON array is a batch
envelope of several events); every message or event that cannot be used becomes an
:class:`EventError` carrying the reason and the raw bytes, so a shell can dead-letter it.
``PredictionDecoder`` then extracts columns for one model with its schema in a handful of C-level
passes (``itemgetter`` + ``np.array``) rather than per-event Python work.

Defined outcomes, per DESIGN.md's "never silently dropped":

=====================================  ==================================================
input                                  outcome
=====================================  ==================================================
not JSON / not an object               error ``invalid_json`` / ``not_an_object``
NaN / Infinity literals                parsed (stdlib fallback); non-finite feature values
                                       count as *missing* and as ``nonfinite`` for the feature
missing ``prediction_id``/``model``    error ``missing_field``
``ts`` absent / unparseable            error ``bad_timestamp``
``ts`` before ``min_epoch``            error ``ancient_timestamp``
``ts`` > stream time + ``max_future``  error ``future_timestamp`` (checked by the engine)
``score`` not a finite number          error ``bad_score`` (absent score is allowed)
``features`` not an object             error ``bad_features``
feature of the wrong type              event kept; value counted as a *type mismatch* for
                                       that feature (schema signal), not as missing
feature absent (key missing)           counted as missing *and* as absent (schema signal)
feature not in the reference           event kept; name counted (bounded) as unexpected
=====================================  ==================================================
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from detector.core.timeparse import parse_timestamps

__all__ = [
    "EventError",
    "parse_messages",
    "Schema",
    "PredictionBatch",
    "PredictionDecoder",
    "LabelBatch",
    "decode_labels",
    "FeatureBatch",
    "decode_feature_events",
]


@dataclass(slots=True)
class EventError:
    """One message or event that could not be used, with why (for the dead-letter topic)."""

    reason: str  # short machine code, e.g. "invalid_json"
    detail: str  # human sentence: what is wrong and how to fix it
    raw: bytes = b""  # the offending payload (shells decide what to do with it; never logged)
    index: int = -1  # position of the message in the input batch

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "detail": self.detail, "index": self.index}


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Python's json writes NaN/Infinity by default; accept them rather than lose the event.
        return json.loads(raw)


def parse_messages(raws: Sequence[bytes]) -> tuple[list[dict[str, Any]], list[int], list[EventError]]:
    """JSON-decode messages. Returns (events, message index per event, errors).

    The common case (every message is one valid JSON object) is a single C-level ``map``; only
    a batch holding a bad message or an envelope takes the per-message path.
    """
    try:
        objs = list(map(orjson.loads, raws))
        if set(map(type, objs)) <= {dict}:
            return objs, list(range(len(objs))), []
    except (orjson.JSONDecodeError, TypeError):
        pass
    return _parse_slow(raws)


def _parse_slow(raws: Sequence[bytes]) -> tuple[list[dict[str, Any]], list[int], list[EventError]]:
    events: list[dict[str, Any]] = []
    origin: list[int] = []
    errors: list[EventError] = []
    for i, raw in enumerate(raws):
        if raw is None or len(raw) == 0:
            errors.append(EventError("empty_message", "empty message or tombstone; send a JSON object", b"", i))
            continue
        try:
            obj = _loads(raw)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            errors.append(EventError("invalid_json", f"not valid JSON ({str(exc)[:80]}); send one JSON object per message",
                                     bytes(raw), i))
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
                    errors.append(EventError("not_an_object", f"batch envelope item {j} is {type(item).__name__}, expected an object",
                                             orjson.dumps(item), i))
        else:
            errors.append(EventError("not_an_object",
                                     f"message is a JSON {type(obj).__name__}; expected an object or an array of objects",
                                     bytes(raw), i))
    return events, origin, errors


def column(events: list[dict[str, Any]], key: str) -> list[Any]:
    """``[e.get(key) for e in events]`` at C speed."""
    return list(map(dict.get, events, repeat(key, len(events))))


# --------------------------------------------------------------------------- schema


@dataclass
class Schema:
    """Which features a model has and how to encode them (taken from its reference)."""

    numeric: list[str]
    categorical: list[str]
    vocab: dict[str, dict[str, int]]  # categorical feature -> category -> code (0..K-1)

    def __post_init__(self) -> None:
        self.known = frozenset(self.numeric) | frozenset(self.categorical)
        self._num_get = itemgetter(*self.numeric) if len(self.numeric) > 1 else None
        self._cat_get = itemgetter(*self.categorical) if len(self.categorical) > 1 else None

    def unseen_code(self, feature: str) -> int:
        return len(self.vocab[feature])

    def missing_code(self, feature: str) -> int:
        return len(self.vocab[feature]) + 1


@dataclass
class PredictionBatch:
    """Columns of one model's prediction events (all arrays have length ``n``)."""

    model: str
    ids: list[str]
    ts: np.ndarray  # float64 epoch seconds
    num: np.ndarray  # (n, F_num) float64, NaN = missing
    num_absent: np.ndarray  # (F_num,) int64 count of events without the key
    num_nonfinite: np.ndarray  # (F_num,) int64 NaN/Inf sent as values
    num_type_err: np.ndarray  # (F_num,) int64 values of a non-numeric type
    cat_codes: np.ndarray  # (n, F_cat) int32 codes; unseen = K, missing = K+1 (per feature)
    cat_absent: np.ndarray
    cat_type_err: np.ndarray
    unseen: list[list[str]]  # per categorical feature: the unseen values (only those)
    slices: dict[str, list[Any]]  # slice dim -> raw values (None when absent)
    score: np.ndarray  # float64, NaN when absent
    acted: np.ndarray  # float64 1 = decision other than "no action", 0 = no action, NaN = none
    threshold: np.ndarray  # float64, NaN when absent
    latency_ms: np.ndarray  # float64, NaN when absent
    fallback: np.ndarray  # float64 1/0, NaN when absent
    versions: dict[str, int]  # model_version -> events
    unexpected: dict[str, int]  # feature names not in the schema -> events
    override: list[Any] | None = None
    decisions: dict[str, int] = field(default_factory=dict)  # decision value -> events (bounded)
    # what the rules / manual process the model replaces would have decided (``baseline_decision``):
    # 1 = act, 0 = no action, NaN = not sent; None when no event of the batch carries it
    baseline: np.ndarray | None = None
    # sparse per-event record of feature-level problems: (event index, feature index, kind)
    # kind 0 = key absent, 1 = wrong type, 2 = non-finite; feature index: numeric then categorical
    flags: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    unexpected_rows: list[tuple[int, str]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.ids)

    def take(self, idx: np.ndarray) -> PredictionBatch:
        """Row subset (used to drop late or far-future events)."""
        il = idx.tolist()
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[idx] = np.arange(len(il))
        flags = self.flags[pos[self.flags[:, 0]] >= 0] if len(self.flags) else self.flags
        if len(flags):
            flags = flags.copy()
            flags[:, 0] = pos[flags[:, 0]]
        unexpected_rows = [(int(pos[i]), k) for i, k in self.unexpected_rows if pos[i] >= 0]
        f = len(il) / self.n if self.n else 0.0
        nn, nc = self.num.shape[1], self.cat_codes.shape[1]
        t = _tallies(flags, nn, nc)
        return PredictionBatch(
            model=self.model, ids=[self.ids[i] for i in il], ts=self.ts[idx], num=self.num[idx],
            num_absent=t[0][:nn], num_nonfinite=t[2][:nn], num_type_err=t[1][:nn],
            cat_codes=self.cat_codes[idx], cat_absent=t[0][nn:], cat_type_err=t[1][nn:],
            unseen=[u[: int(round(len(u) * f))] for u in self.unseen],
            slices={k: [v[i] for i in il] for k, v in self.slices.items()},
            score=self.score[idx], acted=self.acted[idx], threshold=self.threshold[idx],
            latency_ms=self.latency_ms[idx], fallback=self.fallback[idx],
            versions={k: c for k, v in self.versions.items() if (c := int(round(v * f)))},
            unexpected=_count_names(unexpected_rows),
            override=[self.override[i] for i in il] if self.override is not None else None,
            decisions={k: c for k, v in self.decisions.items() if (c := int(round(v * f)))},
            flags=flags, unexpected_rows=unexpected_rows,
            baseline=self.baseline[idx] if self.baseline is not None else None,
        )


def _tallies(flags: np.ndarray, nn: int, nc: int) -> list[np.ndarray]:
    """Per-feature counts of each problem kind from the sparse flag records."""
    out = []
    for kind in range(3):
        cols = flags[flags[:, 2] == kind, 1] if len(flags) else np.zeros(0, dtype=np.int64)
        out.append(np.bincount(cols, minlength=nn + nc).astype(np.int64))
    return out


def _count_names(rows: list[tuple[int, str]]) -> dict[str, int]:
    d: dict[str, int] = {}
    for _, k in rows:
        d[k] = d.get(k, 0) + 1
    return d


def _float_col(values: list[Any]) -> np.ndarray:
    """Optional numeric field -> float64 (None -> NaN); non-numbers -> NaN."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        out = np.full(len(values), np.nan)
        for i, v in enumerate(values):
            if isinstance(v, int | float):
                out[i] = float(v)
        return out


def _numeric_matrix(rows: list[tuple[Any, ...]] | list[Any], n_feat: int,
                    err_at: list[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of feature values -> (float matrix, type-error count per column); positions of
    type errors are appended to ``err_at`` as (event, feature)."""
    # One C-level pass in the usual case: numpy infers a numeric dtype only when every value is
    # a JSON number or bool (an explicit float64 would silently parse numeric strings such as
    # "12.5"); nulls or other types give an object/str array and take the checked path below.
    try:
        a = np.array(rows)
    except (TypeError, ValueError):
        a = None
    if a is not None and a.ndim == 2 and a.shape[1] == n_feat and a.dtype.kind in "fiub":
        return a.astype(np.float64, copy=False), np.zeros(n_feat, dtype=np.int64)
    if a is not None and a.ndim == 1 and n_feat == 1 and a.dtype.kind in "fiub":
        return a.astype(np.float64).reshape(-1, 1), np.zeros(n_feat, dtype=np.int64)
    if set(map(type, chain.from_iterable(rows))) <= _NUMERIC_TYPES:
        m = np.array(rows, dtype=np.float64)
        if m.ndim == 1:
            m = m.reshape(-1, n_feat)
        return m, np.zeros(n_feat, dtype=np.int64)
    n = len(rows)
    m = np.full((n, n_feat), np.nan)
    err = np.zeros(n_feat, dtype=np.int64)
    cols = list(zip(*rows, strict=True)) if n_feat > 1 else [rows]
    for j, col in enumerate(cols):
        if set(map(type, col)) <= _NUMERIC_TYPES:
            m[:, j] = np.array(col, dtype=np.float64)
        else:
            for i, v in enumerate(col):
                if v is None:
                    continue
                if isinstance(v, int | float):  # bool is an int: True -> 1.0
                    m[i, j] = float(v)
                else:
                    err[j] += 1
                    if err_at is not None:
                        err_at.append((i, j))
    return m, err


_MISSING = object()
_NUMERIC_TYPES = {float, int, bool, type(None)}


class PredictionDecoder:
    """Extract one model's columns from decoded prediction events."""

    def __init__(self, schema: Schema, no_action: Iterable[str], max_unexpected: int = 64) -> None:
        self.schema = schema
        self.no_action = {s.lower() for s in no_action}
        self.max_unexpected = max_unexpected

    def decode(self, model: str, events: list[dict[str, Any]], slice_dims: Sequence[str]) -> PredictionBatch:
        sch = self.schema
        n = len(events)
        fs = column(events, "features")
        n_num, n_cat = len(sch.numeric), len(sch.categorical)
        num_absent = np.zeros(n_num, dtype=np.int64)
        cat_absent = np.zeros(n_cat, dtype=np.int64)
        flag_list: list[tuple[int, int, int]] = []
        lens = np.fromiter(map(len, fs), dtype=np.int64, count=n)
        n_known = n_num + n_cat
        # --- numeric block: one itemgetter pass when every key is present (the usual case)
        if n_num:
            rows: Any = None
            try:
                rows = list(map(sch._num_get, fs)) if sch._num_get else [(f[sch.numeric[0]],) for f in fs]
            except KeyError:
                cols = []
                for j, name in enumerate(sch.numeric):
                    col = list(map(dict.get, fs, repeat(name, n), repeat(_MISSING, n)))
                    num_absent[j] = col.count(_MISSING)
                    if num_absent[j]:
                        flag_list.extend((i, j, 0) for i, v in enumerate(col) if v is _MISSING)
                        col = [None if v is _MISSING else v for v in col]
                    cols.append(col)
                rows = list(zip(*cols, strict=True))
            err_at: list[tuple[int, int]] = []
            num, num_type_err = _numeric_matrix(rows, n_num, err_at)
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
        # --- categorical block
        codes = np.empty((n, n_cat), dtype=np.int32)
        cat_type_err = np.zeros(n_cat, dtype=np.int64)
        unseen: list[list[str]] = []
        cat_cols: list[Any]
        if n_cat:
            try:
                crow = list(map(sch._cat_get, fs)) if sch._cat_get else [(f[sch.categorical[0]],) for f in fs]
                cat_cols = list(zip(*crow, strict=True))
            except KeyError:
                cat_cols = [list(map(dict.get, fs, repeat(name, n), repeat(_MISSING, n))) for name in sch.categorical]
        else:
            cat_cols = []
        for j, name in enumerate(sch.categorical):
            vocab = sch.vocab[name]
            unseen_code = len(vocab)
            missing_code = unseen_code + 1
            col = cat_cols[j]
            c = np.fromiter(map(vocab.get, col, repeat(unseen_code, n)), dtype=np.int32, count=n)
            bad = np.flatnonzero(c == unseen_code)
            uns: list[str] = []
            for i in bad.tolist():
                v = col[i]
                if v is None:
                    c[i] = missing_code
                elif v is _MISSING:
                    c[i] = missing_code
                    cat_absent[j] += 1
                    flag_list.append((i, n_num + j, 0))
                elif isinstance(v, str):
                    uns.append(v)
                elif isinstance(v, bool) or not isinstance(v, int | float):
                    c[i] = missing_code
                    cat_type_err[j] += 1
                    flag_list.append((i, n_num + j, 1))
                else:  # numbers for a categorical: compare by their text form
                    sv = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
                    code = vocab.get(sv)
                    if code is None:
                        uns.append(sv)
                    else:
                        c[i] = code
            codes[:, j] = c
            unseen.append(uns)
        # --- unexpected feature names: only events whose key count differs from the schema's
        unexpected: dict[str, int] = {}
        unexpected_rows: list[tuple[int, str]] = []
        odd = np.flatnonzero(lens != n_known) if (num_absent.any() or cat_absent.any()) else np.flatnonzero(lens > n_known)
        for i in odd.tolist():
            for k in fs[i]:
                if k not in sch.known and (k in unexpected or len(unexpected) < self.max_unexpected):
                    unexpected[k] = unexpected.get(k, 0) + 1
                    unexpected_rows.append((i, k))
        # --- top-level fields
        ids = list(map(str, column(events, "prediction_id")))
        ts = parse_timestamps(column(events, "ts"))
        sc = column(events, "score")
        if sc.count(None) == n:
            sc = column(events, "prediction")
        score = _float_col(sc)
        acted = np.full(n, np.nan)
        decisions: dict[str, int] = {}
        draw = column(events, "decision")
        if draw.count(None) < n:
            counts = Counter(draw)
            lut: dict[Any, float] = {}
            for d, c_ in counts.items():
                if d is None:
                    continue
                sd = ("true" if d else "false") if isinstance(d, bool) else str(d).lower()
                lut[d] = 0.0 if sd in self.no_action else 1.0
                if len(decisions) < 32:
                    decisions[sd] = decisions.get(sd, 0) + c_
            nan = float("nan")
            acted = np.fromiter(map(lut.get, draw, repeat(nan, n)), dtype=np.float64, count=n)
        braw = column(events, "baseline_decision")
        baseline = _acted(braw, self.no_action) if braw.count(None) < n else None
        threshold = _float_col(column(events, "threshold"))
        latency = _float_col(column(events, "latency_ms"))
        fallback = _float_col(column(events, "fallback"))
        versions = {str(k): v for k, v in Counter(column(events, "model_version")).items() if k is not None}
        if len(versions) > 16:
            versions = dict(sorted(versions.items(), key=lambda kv: -kv[1])[:16])
        slices: dict[str, list[Any]] = {}
        sl: list[Any] | None = None
        for dim in slice_dims:
            if dim in sch.known:
                slices[dim] = list(map(dict.get, fs, repeat(dim, n)))
            else:
                if sl is None:
                    sl = [x if type(x) is dict else _EMPTY for x in column(events, "slices")]
                slices[dim] = list(map(dict.get, sl, repeat(dim, n)))
        overrides = column(events, "override")
        return PredictionBatch(
            model=model, ids=ids, ts=ts, num=num, num_absent=num_absent, num_nonfinite=num_nonfinite,
            num_type_err=num_type_err, cat_codes=codes, cat_absent=cat_absent, cat_type_err=cat_type_err,
            unseen=unseen, slices=slices, score=score, acted=acted, threshold=threshold, latency_ms=latency,
            fallback=fallback, versions=versions, unexpected=unexpected,
            override=overrides if overrides.count(None) < n else None, decisions=decisions,
            flags=np.asarray(flag_list, dtype=np.int64).reshape(-1, 3), unexpected_rows=unexpected_rows,
            baseline=baseline,
        )


_EMPTY: dict[str, Any] = {}


def _acted(raw: list[Any], no_action: set[str]) -> np.ndarray:
    """Decision values -> 1.0 (an action), 0.0 (a no-action decision), NaN (absent)."""
    nan = float("nan")
    if not set(map(type, raw)) <= {str, bool, int, float, type(None)}:  # objects / lists are not decisions
        raw = [d if isinstance(d, str | bool | int | float) else None for d in raw]
    lut: dict[Any, float] = {}
    for d in set(raw):
        if d is None:
            continue
        sd = ("true" if d else "false") if isinstance(d, bool) else str(d).lower()
        lut[d] = 0.0 if sd in no_action else 1.0
    return np.fromiter(map(lut.get, raw, repeat(nan, len(raw))), dtype=np.float64, count=len(raw))


def validate_predictions(
    events: list[dict[str, Any]], origin: list[int], raws: Sequence[bytes], min_epoch: float
) -> tuple[dict[str, list[dict[str, Any]]], list[EventError]]:
    """Envelope checks per event; returns events grouped by model and the errors.

    Vectorised: the per-event Python path runs only for events that fail a check.
    """
    n = len(events)
    if n == 0:
        return {}, []
    pids = column(events, "prediction_id")
    models = column(events, "model")
    feats = column(events, "features")
    ts = parse_timestamps(column(events, "ts"))
    scores = column(events, "score")
    bad = np.zeros(n, dtype=bool)
    if None in pids or "" in pids or None in models or "" in models:
        bad |= np.fromiter((p is None or p == "" or m is None or m == "" for p, m in zip(pids, models, strict=True)), bool, n)
    ftypes = set(map(type, feats))
    if ftypes != {dict}:
        bad |= np.fromiter((type(f) is not dict for f in feats), bool, n)
    bad |= np.isnan(ts) | (ts < min_epoch)
    stypes = set(map(type, scores))
    if stypes <= {float, int, type(None)}:
        sc = np.array(scores, dtype=np.float64)  # None -> NaN
        nan = np.isnan(sc)
        if nan.any():  # NaN sent as a value (stdlib JSON) vs absent score
            nan &= np.fromiter((s is not None for s in scores), bool, n)
        bad |= nan | np.isinf(sc)
    else:
        bad |= np.fromiter((s is not None and (type(s) is bool or not isinstance(s, int | float) or not math.isfinite(s))
                            for s in scores), bool, n)
    errors: list[EventError] = []
    if bad.any():
        for i in np.flatnonzero(bad).tolist():
            e = events[i]
            pid, model = pids[i], models[i]
            s = scores[i]
            if pid is None or pid == "" or model is None or model == "":
                missing = [k for k in ("prediction_id", "model") if e.get(k) in (None, "")]
                reason = ("missing_field", f"event has no {' or '.join(missing)}; every prediction needs both")
            elif type(feats[i]) is not dict:
                reason = ("bad_features", "'features' must be an object of feature name -> value")
            elif math.isnan(ts[i]):
                reason = ("bad_timestamp", f"ts={str(e.get('ts'))[:40]!r} is not RFC 3339 or epoch seconds")
            elif ts[i] < min_epoch:
                reason = ("ancient_timestamp", f"ts={str(e.get('ts'))[:40]!r} is before {min_epoch:.0f} (epoch); check the clock/unit")
            else:
                reason = ("bad_score", f"score={str(s)[:40]!r} must be a finite number")
            errors.append(EventError(reason[0], reason[1], _raw_of(e, raws, origin, i), origin[i]))
        good = np.flatnonzero(~bad).tolist()
        events = [events[i] for i in good]
        models = [models[i] for i in good]
    by_model: dict[str, list[dict[str, Any]]] = {}
    if not events:
        return by_model, errors
    first = models[0]
    if models.count(first) == len(models):
        by_model[str(first)] = events
    else:
        for e, m in zip(events, models, strict=True):
            by_model.setdefault(str(m), []).append(e)
    return by_model, errors


def _raw_of(e: dict[str, Any], raws: Sequence[bytes], origin: list[int], i: int) -> bytes:
    o = origin[i]
    # one event per message: keep the producer's exact bytes; envelope item: re-encode just it
    single = (i == 0 or origin[i - 1] != o) and (i + 1 == len(origin) or origin[i + 1] != o)
    if single:
        return bytes(raws[o])
    try:
        return orjson.dumps(e)
    except TypeError:
        return b""


# --------------------------------------------------------------------------- labels / offline features


@dataclass
class LabelBatch:
    ids: list[str]
    ts: np.ndarray
    label: np.ndarray  # float64 0/1
    revision: np.ndarray  # int64, 0 when absent
    model: list[str | None]

    @property
    def n(self) -> int:
        return len(self.ids)


def decode_labels(
    events: list[dict[str, Any]], origin: list[int], raws: Sequence[bytes], min_epoch: float
) -> tuple[LabelBatch, list[EventError]]:
    ok: list[int] = []
    errors: list[EventError] = []
    ts = parse_timestamps([e.get("ts") for e in events])
    labels = np.empty(len(events))
    for i, e in enumerate(events):
        y = e.get("label")
        if e.get("prediction_id") in (None, ""):
            errors.append(EventError("missing_field", "label event has no prediction_id", _raw_of(e, raws, origin, i), origin[i]))
        elif math.isnan(ts[i]) or ts[i] < min_epoch:
            errors.append(EventError("bad_timestamp", f"label ts={str(e.get('ts'))[:40]!r} is not a valid time", _raw_of(e, raws, origin, i), origin[i]))
        elif y in (0, 1) or y is True or y is False:  # 0/1, 0.0/1.0, bools
            labels[i] = float(y)
            ok.append(i)
        else:
            errors.append(EventError("bad_label", f"label={str(y)[:40]!r}: binary labels must be 0/1 or true/false",
                                     _raw_of(e, raws, origin, i), origin[i]))
    idx = np.asarray(ok, dtype=np.int64)
    rev = np.array([int(events[i].get("revision") or 0) if isinstance(events[i].get("revision"), int | float) else 0 for i in ok],
                   dtype=np.int64)
    return LabelBatch(
        ids=[str(events[i]["prediction_id"]) for i in ok], ts=ts[idx], label=labels[idx], revision=rev,
        model=[events[i].get("model") for i in ok],
    ), errors


@dataclass
class FeatureBatch:
    ids: list[str]
    ts: np.ndarray
    features: list[dict[str, Any]]
    model: list[str | None]

    @property
    def n(self) -> int:
        return len(self.ids)


def decode_feature_events(
    events: list[dict[str, Any]], origin: list[int], raws: Sequence[bytes], min_epoch: float
) -> tuple[FeatureBatch, list[EventError]]:
    ok: list[int] = []
    errors: list[EventError] = []
    ts = parse_timestamps([e.get("ts") for e in events])
    for i, e in enumerate(events):
        if e.get("prediction_id") in (None, ""):
            errors.append(EventError("missing_field", "feature event has no prediction_id", _raw_of(e, raws, origin, i), origin[i]))
        elif not isinstance(e.get("features"), dict):
            errors.append(EventError("bad_features", "'features' must be an object", _raw_of(e, raws, origin, i), origin[i]))
        elif math.isnan(ts[i]) or ts[i] < min_epoch:
            errors.append(EventError("bad_timestamp", f"feature ts={str(e.get('ts'))[:40]!r} is not a valid time", _raw_of(e, raws, origin, i), origin[i]))
        else:
            ok.append(i)
    idx = np.asarray(ok, dtype=np.int64)
    return FeatureBatch(
        ids=[str(events[i]["prediction_id"]) for i in ok], ts=ts[idx], features=[events[i]["features"] for i in ok],
        model=[events[i].get("model") for i in ok],
    ), errors
