"""Hostile input: no bytes a producer sends can make ingest raise or cost an event's batch-mates.

Known crashers (each once raised out of ``Engine.ingest_*``) are pinned with the reason they
now get; hypothesis then fuzzes the whole event contract - predictions, labels and offline
features, single messages and batch envelopes, with any JSON value in any field (lists and
objects where scalars belong, integers with hundreds of digits, NaN / Infinity, deep nesting,
long strings, broken bytes) - and checks that every event is accounted for exactly once
(accepted, late, or an error naming its message) and that the well-formed events around the
poison are always accepted. Downstream consumers of the state (window close, metrics
exposition, status) run over the result too.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.core.engine import Engine
from detector.core.inputs.wire import REASONS
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings

T = 1795615200.0
NUM, CAT = ["amount", "age"], ["country"]


@pytest.fixture(scope="module")
def ref():
    rng = np.random.default_rng(1)
    n = 3000
    return build_reference({"amount": rng.lognormal(3, 1, n).round(2), "age": rng.integers(0, 90, n).astype(float),
                            "country": np.array(rng.choice(["DE", "FR", "US"], n), dtype=object),
                            "region": np.array(rng.choice(["eu", "us"], n), dtype=object),
                            "score": rng.random(n).round(3), "label": (rng.random(n) < 0.2).astype(float)},
                           score_column="score", label_column="label", slice_columns=["region"])


def engine(ref, **kw):
    eng = Engine(DetectorSettings(**kw), default_reference=ref)
    attach_outcomes(eng)
    return eng


def pred(i, **kw):
    e = {"prediction_id": f"p{i}", "model": "m", "model_version": "v1", "ts": T + i,
         "features": {"amount": 10.0 + i, "age": 30, "country": "DE"}, "score": 0.4, "decision": "approve",
         "threshold": 0.5, "slices": {"region": "eu"}, "latency_ms": 3.0, "fallback": False}
    e.update(kw)
    return e


def raw(obj) -> bytes:
    """What a careless producer writes: Python's json (NaN, Infinity, exact big integers)."""
    return json.dumps(obj).encode()


BIG = 9 * 10**399  # 400 digits
DEEP = b'{"prediction_id": "d", "model": "m", "ts": 1795615200, "features": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}"

# (payload, reason): each of these once raised out of ingest
PREDICTION_POISON = [
    (raw(pred(90, decision=["review"])), "bad_field"),
    (raw(pred(90, decision={"a": 1})), "bad_field"),
    (raw(pred(90, model_version=[1, 2])), "bad_field"),
    (raw(pred(90, slices={"region": ["eu"]})), "bad_field"),
    (raw(pred(90, slices={"region": {"x": 1}})), "bad_field"),
    (raw(pred(90, score=BIG)), "bad_score"),
    (raw(pred(90, ts=BIG)), "bad_timestamp"),
    (raw(pred(90, latency_ms=BIG)), "bad_field"),
    (raw(pred(90, threshold=float("nan"))), "bad_field"),
    (DEEP, "invalid_json"),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    (raw(pred(90, prediction_id=["a"])), "bad_field"),
    (raw(pred(90, prediction_id="x" * 100_000)), "oversized_field"),
    (raw(pred(90, model={"name": "m"})), "bad_field"),
    (raw(pred(90, ts=True)), "bad_timestamp"),
    (raw(pred(90, ts=1e300)), "bad_timestamp"),
    (raw(pred(90, ts="9" * 5000)), "bad_timestamp"),
    (b'{"prediction_id": "\\ud800", "model": "m", "ts": 1795615200, "features": {}}', "invalid_json"),
    (b"\xff\xfe{}", "invalid_json"),
]
# feature-level trouble keeps the event (counted as a schema signal), as the contract says
PREDICTION_KEPT = [
    raw(pred(90, features={"amount": BIG, "age": 1, "country": "DE"})),  # -> non-finite
    raw(pred(90, features={"amount": 1.0, "age": 1, "country": ["DE"]})),  # -> type mismatch
    raw(pred(90, features={"amount": 1.0, "age": 1, "country": {"x": 1}})),
    raw(pred(90, features={"amount": 1.0, "age": 1, "country": BIG})),
    raw(pred(90, features={"amount": 1.0, "age": 1, "country": "Z" * 100_000, "k" * 10_000: 1})),
    raw(pred(90, ts=1795615290 * 10**9)),  # nanoseconds
    raw(pred(90, ts=1795615290 * 10**6)),  # microseconds
    raw(pred(90, slices={"region": "r" * 100_000})),
    raw(pred(90, decision="d" * 100_000, model_version="v" * 100_000, override="o" * 100_000)),
]


@pytest.mark.parametrize("payload, reason", PREDICTION_POISON, ids=range(len(PREDICTION_POISON)))
def test_poison_prediction_is_rejected_alone(ref, payload, reason):
    eng = engine(ref)
    msgs = [orjson.dumps(pred(0)), orjson.dumps(pred(1)), payload, orjson.dumps(pred(2))]
    errors = eng.ingest_predictions(msgs)
    assert [(e.reason, e.index) for e in errors] == [(reason, 2)], [(e.reason, e.detail) for e in errors]
    assert eng.counters.predictions == 3
    assert errors[0].raw == payload  # the producer's exact bytes go to the dead-letter topic


@pytest.mark.parametrize("payload", PREDICTION_KEPT, ids=range(len(PREDICTION_KEPT)))
def test_feature_level_trouble_keeps_the_event(ref, payload):
    eng = engine(ref)
    errors = eng.ingest_predictions([orjson.dumps(pred(0)), payload])
    assert errors == [] and eng.counters.predictions == 2
    eng.flush()
    assert eng.counters.windows_closed >= 1


def test_retained_strings_are_cut_to_the_byte_budget_and_counted(ref):
    eng = engine(ref, max_value_bytes=64)
    big = "é" * 1000  # 2 bytes per character: cut on a character boundary
    e = pred(0, features={"amount": 1.0, "age": 1, "country": big, "n" * 500: 1}, slices={"region": big},
             decision=big, model_version=big)
    assert eng.ingest_predictions([orjson.dumps(e)]) == []
    ms = eng.models["m"]
    w = next(iter(ms.windows.values()))
    kept = [*w.unseen[0], *w.unexpected, *w.versions, *w.decisions, *ms.layout.vocabs[0].values]
    assert kept and all(len(s.encode()) <= 64 for s in kept), [len(s.encode()) for s in kept]
    assert eng.counters.clipped == {"category": 1, "feature_name": 1, "slice": 1, "decision": 1, "model_version": 1}


LABEL_POISON = [
    (b'{"prediction_id": "p1", "ts": 1795615300, "label": 1, "revision": NaN}', "bad_field"),
    (b'{"prediction_id": "p1", "ts": 1795615300, "label": 1, "revision": 1e999}', "bad_field"),
    (b'{"prediction_id": "p1", "ts": 1795615300, "label": 1, "revision": ' + b"9" * 400 + b"}", "bad_field"),
    (b'{"prediction_id": "p1", "ts": 1795615300, "label": 1, "revision": 2.5}', "bad_field"),
    (b'{"prediction_id": "p1", "ts": 1795615300, "label": 1, "revision": -1}', "bad_field"),
    (b'{"prediction_id": "p1", "ts": ' + b"9" * 400 + b', "label": 1}', "bad_timestamp"),
    (raw({"prediction_id": ["p1"], "ts": T, "label": 1}), "bad_field"),
    (raw({"prediction_id": "p" * 10_000, "ts": T, "label": 1}), "oversized_field"),
    (raw({"prediction_id": "p1", "ts": T, "label": [1]}), "bad_label"),
    (raw({"prediction_id": "p1", "ts": T, "label": 1, "model": ["m"]}), "bad_field"),
    (DEEP, "invalid_json"),
]


@pytest.mark.parametrize("payload, reason", LABEL_POISON, ids=range(len(LABEL_POISON)))
def test_poison_label_is_rejected_alone(ref, payload, reason):
    eng = engine(ref)
    eng.ingest_predictions([orjson.dumps(pred(i)) for i in range(3)])
    msgs = [raw({"prediction_id": "p0", "ts": T + 60, "label": 1}), payload,
            raw({"prediction_id": "p2", "ts": T + 60, "label": 0})]
    errors = eng.ingest_labels(msgs)
    assert [(e.reason, e.index) for e in errors] == [(reason, 1)], [(e.reason, e.detail) for e in errors]
    assert eng.counters.labels == 2 and eng.outcomes.join.counters["matched"] == 2


FEATURE_POISON = [
    (raw({"prediction_id": {"id": 1}, "ts": T, "features": {}}), "bad_field"),
    (raw({"prediction_id": "p1", "ts": T, "features": [1, 2]}), "bad_features"),
    (raw({"prediction_id": "p1", "ts": T, "features": {}, "model": ["m"]}), "bad_field"),
    (b'{"prediction_id": "p1", "ts": 1e999, "features": {}}', "bad_timestamp"),
]


@pytest.mark.parametrize("payload, reason", FEATURE_POISON, ids=range(len(FEATURE_POISON)))
def test_poison_offline_feature_event_is_rejected_alone(ref, payload, reason):
    eng = engine(ref)
    eng.ingest_features([raw({"prediction_id": "zz", "ts": T, "features": {}})])  # parity on
    eng.ingest_predictions([orjson.dumps(pred(i)) for i in range(3)])
    good = [raw({"prediction_id": "p0", "ts": T, "features": {"amount": BIG, "age": [1], "country": {"a": 1}}}),
            raw({"prediction_id": "p2", "ts": T, "features": {"amount": 12.0, "age": 30, "country": "DE"}})]
    errors = eng.ingest_features([good[0], payload, good[1]])
    assert [(e.reason, e.index) for e in errors] == [(reason, 1)], [(e.reason, e.detail) for e in errors]
    assert eng.outcomes.parity.counters["joined"] == 2


def test_envelope_items_are_rejected_one_by_one(ref):
    eng = engine(ref)
    env = b"[" + b",".join([orjson.dumps(pred(0)), raw(pred(1, decision=[1])), b"7", orjson.dumps(pred(2))]) + b"]"
    errors = eng.ingest_predictions([orjson.dumps(pred(5)), env])
    assert sorted((e.index, e.item, e.reason) for e in errors) == [(1, 1, "bad_field"), (1, 2, "not_an_object")]
    assert eng.counters.predictions == 3
    bad = next(e for e in errors if e.item == 1)
    assert orjson.loads(bad.raw)["decision"] == [1]  # just the item, not the whole envelope


# ------------------------------------------------------------------------------------ fuzzing

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.sampled_from([BIG, -BIG, 10**18 + 1, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "x" * 3000, "2026-11-25T14:00:00Z", "NaN", "\u0000", "DE", "eu"]),
)
_json = st.recursive(_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                     max_leaves=6)

PRED_FIELDS = ["prediction_id", "model", "model_version", "ts", "features", "score", "prediction", "decision",
               "baseline_decision", "threshold", "slices", "latency_ms", "fallback", "override"]


@st.composite
def hostile_prediction(draw, i):
    e = pred(i)
    for k in draw(st.lists(st.sampled_from(PRED_FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            e.pop(k, None)
        else:
            e[k] = draw(_json)
    if type(e.get("features")) is dict:
        for k in draw(st.lists(st.sampled_from([*NUM, *CAT, "region", "new"]), max_size=3, unique=True)):
            e["features"][k] = draw(_json)
    if type(e.get("slices")) is dict and draw(st.booleans()):
        e["slices"][draw(st.sampled_from(["region", "x"]))] = draw(_json)
    return e


@st.composite
def hostile_label(draw, i):
    e = {"prediction_id": f"p{i}", "ts": T + 60, "label": i % 2, "revision": 1, "model": "m"}
    for k in draw(st.lists(st.sampled_from(list(e)), max_size=2, unique=True)):
        e[k] = draw(_json)
    return e


@st.composite
def hostile_features(draw, i):
    e = {"prediction_id": f"p{i}", "ts": T, "features": {"amount": 10.0 + i, "age": 30, "country": "DE"},
         "source": "offline"}
    for k in draw(st.lists(st.sampled_from(["prediction_id", "ts", "features", "model"]), max_size=2, unique=True)):
        e[k] = draw(_json)
    if type(e["features"]) is dict:
        for k in draw(st.lists(st.sampled_from([*NUM, *CAT, "new"]), max_size=2, unique=True)):
            e["features"][k] = draw(_json)
    return e


def _encode(draw, objs):
    """One message per event, or all in one envelope; sometimes with bytes mangled."""
    if len(objs) > 1 and draw(st.booleans()):
        msgs = [raw(objs)]
    else:
        msgs = [raw(o) for o in objs]
    how = draw(st.sampled_from(["as is"] * 4 + ["truncate", "garbage"]))
    if how == "truncate":
        msgs[0] = msgs[0][: len(msgs[0]) // 2]
    elif how == "garbage":
        msgs[0] = draw(st.binary(max_size=40))
    return msgs


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(data=st.data())
def test_fuzz_predictions_labels_features_never_raise_and_lose_nothing(ref, data):
    from detector.exporters.prometheus import exposition

    eng = engine(ref)
    eng.ingest_features([raw({"prediction_id": "zz", "ts": T, "features": {}})])  # parity on
    draw = data.draw
    hostile = [draw(hostile_prediction(10 + i)) for i in range(draw(st.integers(1, 3)))]
    msgs = _encode(draw, hostile)
    good = [orjson.dumps(pred(i)) for i in range(3)]
    batch = [good[0], *msgs, good[1], good[2]]
    errors = eng.ingest_predictions(batch)
    assert all(e.reason in REASONS and e.detail and len(e.detail) < 400 for e in errors)
    assert all(1 <= e.index <= len(msgs) for e in errors), [(e.index, e.reason) for e in errors]  # never a good one
    assert eng.counters.predictions >= 3
    labels = [draw(hostile_label(i)) for i in range(draw(st.integers(1, 3)))]
    lerr = eng.ingest_labels([raw({"prediction_id": "p0", "ts": T + 60, "label": 1}), *_encode(draw, labels)])
    assert all(e.index >= 1 and e.reason in REASONS for e in lerr)
    feats = [draw(hostile_features(i)) for i in range(draw(st.integers(1, 3)))]
    ferr = eng.ingest_features([raw({"prediction_id": "p1", "ts": T, "features": {"amount": 1.0}}), *_encode(draw, feats)])
    assert all(e.index >= 1 and e.reason in REASONS for e in ferr)
    assert eng.outcomes.join.counters["matched"] >= 1 and eng.outcomes.parity.counters["joined"] >= 1
    # everything downstream of the state copes with what was let in
    eng.flush()
    eng.outcomes.advance(T + 30 * 86400)
    assert b"skewwatch_events_total" in exposition(eng)
    orjson.dumps([a.to_dict() for a in eng.advance(T + 60 * 86400)])


@FUZZ
@given(data=st.data())
def test_fuzz_every_single_event_is_accounted_for_once(ref, data):
    """Single-event messages: accepted + late + rejected == sent, and errors point at their message."""
    eng = engine(ref)
    draw = data.draw
    events = [draw(hostile_prediction(i)) for i in range(draw(st.integers(1, 8)))]
    msgs = [raw(e) for e in events]
    errors = eng.ingest_predictions(msgs)
    per_msg = {}
    for e in errors:
        assert 0 <= e.index < len(msgs) and e.item == -1
        per_msg[e.index] = per_msg.get(e.index, 0) + 1
    assert all(v == 1 for v in per_msg.values()), per_msg
    assert eng.counters.predictions + eng.counters.late + len(errors) == len(msgs)


def test_engine_rejections_name_the_envelope_item(ref):
    """Errors found after decoding (a far-future ts) still point at the message and the item."""
    eng = engine(ref)
    eng.ingest_predictions([orjson.dumps(pred(0))])
    far = pred(2, ts=T + 30 * 86400)
    env = orjson.dumps([pred(1), far, pred(3)])
    for _ in range(2):  # the general path, then the typed one (chosen after the first batch)
        errors = eng.ingest_predictions([orjson.dumps(pred(4)), env])
        assert [(e.reason, e.index, e.item) for e in errors] == [("future_timestamp", 1, 1)]
        assert orjson.loads(errors[0].raw) == far
