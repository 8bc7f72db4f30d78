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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
    """JSON-decode messages. Returns (events, message index per event, errors)."""
    events: list[dict[str, Any]] = []
    origin: list[int] = []
    errors: list[EventError] = []
    loads = orjson.loads
    for i, raw in enumerate(raws):
        try:
            obj = loads(raw)
        except orjson.JSONDecodeError:
            try:
                obj = _loads(raw)
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                if raw is None or len(raw) == 0:
                    errors.append(EventError("empty_message", "empty message or tombstone; send a JSON object", b"", i))
                else:
                    errors.append(
                        EventError("invalid_json", f"not valid JSON ({str(exc)[:80]}); send one JSON object per message", bytes(raw), i)
                    )
                continue
        except TypeError:
            errors.append(EventError("empty_message", "empty message or tombstone; send a JSON object", b"", i))
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
                    errors.append(
                        EventError("not_an_object", f"batch envelope item {j} is {type(item).__name__}, expected an object",
                                   orjson.dumps(item), i)
                    )
        else:
            errors.append(EventError("not_an_object", f"message is a JSON {type(obj).__name__}; expected an object or an array of objects",
                                     bytes(raw), i))
    return events, origin, errors


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

    @property
    def n(self) -> int:
        return len(self.ids)

    def take(self, idx: np.ndarray) -> PredictionBatch:
        """Row subset (used to drop late or far-future events)."""
        il = idx.tolist()
        return PredictionBatch(
            model=self.model, ids=[self.ids[i] for i in il], ts=self.ts[idx], num=self.num[idx],
            num_absent=self.num_absent, num_nonfinite=self.num_nonfinite, num_type_err=self.num_type_err,
            cat_codes=self.cat_codes[idx], cat_absent=self.cat_absent, cat_type_err=self.cat_type_err,
            unseen=self.unseen, slices={k: [v[i] for i in il] for k, v in self.slices.items()},
            score=self.score[idx], acted=self.acted[idx], threshold=self.threshold[idx],
            latency_ms=self.latency_ms[idx], fallback=self.fallback[idx], versions=self.versions,
            unexpected=self.unexpected,
            override=[self.override[i] for i in il] if self.override is not None else None,
            decisions=self.decisions,
        )


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


def _numeric_matrix(rows: list[tuple[Any, ...]] | list[Any], n_feat: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of feature values -> (float matrix, type-error count per column)."""
    try:
        m = np.array(rows, dtype=np.float64)
        if m.ndim == 1:
            m = m.reshape(-1, n_feat)
        return m, np.zeros(n_feat, dtype=np.int64)
    except (TypeError, ValueError):
        pass
    n = len(rows)
    m = np.full((n, n_feat), np.nan)
    err = np.zeros(n_feat, dtype=np.int64)
    cols = list(zip(*rows, strict=True)) if n_feat > 1 else [rows]
    for j, col in enumerate(cols):
        try:
            m[:, j] = np.array(col, dtype=np.float64)
        except (TypeError, ValueError):
            for i, v in enumerate(col):
                if v is None:
                    continue
                if isinstance(v, int | float):  # bool is an int: True -> 1.0
                    m[i, j] = float(v)
                else:
                    err[j] += 1
    return m, err


_MISSING = object()


class PredictionDecoder:
    """Extract one model's columns from decoded prediction events."""

    def __init__(self, schema: Schema, no_action: Iterable[str], max_unexpected: int = 64) -> None:
        self.schema = schema
        self.no_action = {s.lower() for s in no_action}
        self.max_unexpected = max_unexpected

    def decode(self, model: str, events: list[dict[str, Any]], slice_dims: Sequence[str]) -> PredictionBatch:
        sch = self.schema
        n = len(events)
        fs = [e.get("features") for e in events]
        n_num, n_cat = len(sch.numeric), len(sch.categorical)
        num_absent = np.zeros(n_num, dtype=np.int64)
        cat_absent = np.zeros(n_cat, dtype=np.int64)
        unexpected: dict[str, int] = {}
        # --- numeric block: one itemgetter pass when every key is present (the usual case)
        full = True
        if n_num:
            try:
                rows = list(map(sch._num_get, fs)) if sch._num_get else [f[sch.numeric[0]] for f in fs]
            except KeyError:
                full = False
            if not full:
                rows = []
                for j, name in enumerate(sch.numeric):
                    col = [f.get(name, _MISSING) for f in fs]
                    absent = sum(1 for v in col if v is _MISSING)
                    num_absent[j] = absent
                    rows.append([None if v is _MISSING else v for v in col])
                rows = list(zip(*rows, strict=True)) if n_num > 1 else rows[0]
            num, num_type_err = _numeric_matrix(rows, n_num)
            nonfinite_mask = np.isinf(num)
            num_nonfinite = nonfinite_mask.sum(axis=0)
            if num_nonfinite.any():
                num[nonfinite_mask] = np.nan
            # NaN literal (stdlib fallback) is also "sent as a value"
        else:
            num = np.empty((n, 0))
            num_type_err = np.zeros(0, dtype=np.int64)
            num_nonfinite = np.zeros(0, dtype=np.int64)
        # --- categorical block
        codes = np.empty((n, n_cat), dtype=np.int32)
        cat_type_err = np.zeros(n_cat, dtype=np.int64)
        unseen: list[list[str]] = []
        for j, name in enumerate(sch.categorical):
            vocab = sch.vocab[name]
            unseen_code = len(vocab)
            missing_code = unseen_code + 1
            col = [f.get(name, _MISSING) for f in fs]
            c = np.fromiter(map(vocab.get, col, [unseen_code] * n), dtype=np.int32, count=n)
            bad = np.flatnonzero(c == unseen_code)
            uns: list[str] = []
            for i in bad.tolist():
                v = col[i]
                if v is None:
                    c[i] = missing_code
                elif v is _MISSING:
                    c[i] = missing_code
                    cat_absent[j] += 1
                elif isinstance(v, str):
                    uns.append(v)
                elif isinstance(v, bool) or not isinstance(v, int | float):
                    c[i] = missing_code
                    cat_type_err[j] += 1
                else:  # numbers for a categorical: compare by their text form
                    s = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
                    code = vocab.get(s)
                    if code is None:
                        uns.append(s)
                    else:
                        c[i] = code
            codes[:, j] = c
            unseen.append(uns)
        # --- unexpected feature names: only look at events with more keys than the schema
        n_known = n_num + n_cat
        for f in fs:
            if len(f) > n_known or (not full and len(f) != n_known):
                for k in f:
                    if k not in sch.known:
                        if k in unexpected or len(unexpected) < self.max_unexpected:
                            unexpected[k] = unexpected.get(k, 0) + 1
        # --- top-level fields
        ids = [str(e["prediction_id"]) for e in events]
        ts = parse_timestamps([e.get("ts") for e in events])
        score = _float_col([e.get("score", e.get("prediction")) for e in events])
        decisions_raw = [e.get("decision") for e in events]
        decisions: dict[str, int] = {}
        acted = np.full(n, np.nan)
        if any(d is not None for d in decisions_raw):
            no_action = self.no_action
            for i, d in enumerate(decisions_raw):
                if d is None:
                    continue
                s = str(d).lower() if not isinstance(d, bool) else ("true" if d else "false")
                acted[i] = 0.0 if s in no_action else 1.0
                if s in decisions or len(decisions) < 32:
                    decisions[s] = decisions.get(s, 0) + 1
        threshold = _float_col([e.get("threshold") for e in events])
        latency = _float_col([e.get("latency_ms") for e in events])
        fallback = _float_col([e.get("fallback") for e in events])
        versions: dict[str, int] = {}
        for e in events:
            v = e.get("model_version")
            if v is not None:
                v = str(v)
                versions[v] = versions.get(v, 0) + 1
        slices: dict[str, list[Any]] = {}
        sl = [e.get("slices") or {} for e in events]
        for dim in slice_dims:
            if dim in sch.known:
                j_cat = sch.categorical.index(dim) if dim in sch.categorical else None
                if j_cat is not None:
                    slices[dim] = [f.get(dim) for f in fs]
                else:
                    slices[dim] = [f.get(dim) for f in fs]
            else:
                slices[dim] = [s.get(dim) if type(s) is dict else None for s in sl]
        overrides = [e.get("override") for e in events]
        return PredictionBatch(
            model=model, ids=ids, ts=ts, num=num, num_absent=num_absent, num_nonfinite=num_nonfinite,
            num_type_err=num_type_err, cat_codes=codes, cat_absent=cat_absent, cat_type_err=cat_type_err,
            unseen=unseen, slices=slices, score=score, acted=acted, threshold=threshold, latency_ms=latency,
            fallback=fallback, versions=versions, unexpected=unexpected,
            override=overrides if any(o is not None for o in overrides) else None, decisions=decisions,
        )


def validate_predictions(
    events: list[dict[str, Any]], origin: list[int], raws: Sequence[bytes], min_epoch: float
) -> tuple[dict[str, list[dict[str, Any]]], list[EventError]]:
    """Envelope checks per event; returns events grouped by model and the errors."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    errors: list[EventError] = []
    ts = parse_timestamps([e.get("ts") for e in events])
    for i, e in enumerate(events):
        reason = None
        pid, model = e.get("prediction_id"), e.get("model")
        if pid is None or pid == "" or model is None or model == "":
            missing = [k for k in ("prediction_id", "model") if e.get(k) in (None, "")]
            reason = ("missing_field", f"event has no {' or '.join(missing)}; every prediction needs both")
        elif not isinstance(e.get("features"), dict):
            reason = ("bad_features", "'features' must be an object of feature name -> value")
        elif math.isnan(ts[i]):
            reason = ("bad_timestamp", f"ts={str(e.get('ts'))[:40]!r} is not RFC 3339 or epoch seconds")
        elif ts[i] < min_epoch:
            reason = ("ancient_timestamp", f"ts={str(e.get('ts'))[:40]!r} is before {min_epoch:.0f} (epoch); check the clock/unit")
        else:
            s = e.get("score", e.get("prediction"))
            if s is not None and (isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s)):
                reason = ("bad_score", f"score={str(s)[:40]!r} must be a finite number")
        if reason is None:
            by_model.setdefault(str(model), []).append(e)
        else:
            o = origin[i]
            errors.append(EventError(reason[0], reason[1], _raw_of(e, raws, origin, i), o))
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
