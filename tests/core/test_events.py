"""Decoding: every bad input has a defined outcome, and nothing stops the batch."""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
import pytest

from detector.core.inputs.events import (
    PredictionDecoder,
    Schema,
    decode_labels,
    parse_messages,
    validate_predictions,
)

SCHEMA = Schema(numeric=["amount", "age"], categorical=["country"], vocab={"country": {"DE": 0, "FR": 1}})
T = 1795615200.0


def ev(**kw):
    base = {"prediction_id": "p1", "model": "fraud", "ts": T, "features": {"amount": 12.5, "age": 3, "country": "DE"},
            "score": 0.4}
    base.update(kw)
    return base


def decode(events, dims=("region",)):
    raws = [orjson.dumps(e) if not isinstance(e, bytes) else e for e in events]
    evs, origin, errors = parse_messages(raws)
    by_model, errs, _, _ = validate_predictions(evs, origin, raws, 946684800.0)
    errors += errs
    dec = PredictionDecoder(SCHEMA, ["approve"])
    batch = dec.decode("fraud", by_model.get("fraud", []), list(dims)) if by_model else None
    return batch, errors


def test_envelope_and_single_messages_decode_to_the_same_columns():
    events = [ev(prediction_id=f"p{i}", features={"amount": float(i), "age": i, "country": "FR"}) for i in range(5)]
    single, e1 = decode(events)
    env, origin, errs = parse_messages([orjson.dumps(events)])
    assert not e1 and not errs and origin == [0] * 5
    by_model, _, _, _ = validate_predictions(env, origin, [orjson.dumps(events)], 0)
    batch = PredictionDecoder(SCHEMA, ["approve"]).decode("fraud", by_model["fraud"], ["region"])
    np.testing.assert_array_equal(single.num, batch.num)
    assert single.ids == batch.ids == [f"p{i}" for i in range(5)]
    assert single.cat_codes[:, 0].tolist() == [1] * 5


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"{not json", "invalid_json"),
        (b"", "empty_message"),
        (b"[1]", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (orjson.dumps(ev(prediction_id=None)), "missing_field"),
        (orjson.dumps(ev(model="")), "missing_field"),
        (orjson.dumps(ev(ts="yesterday")), "bad_timestamp"),
        (orjson.dumps(ev(ts=None)), "bad_timestamp"),
        (orjson.dumps(ev(ts="1970-01-02T00:00:00Z")), "ancient_timestamp"),
        (orjson.dumps(ev(score="high")), "bad_score"),
        (orjson.dumps(ev(score=True)), "bad_score"),
        (json.dumps(ev(score=float("nan"))).encode(), "bad_score"),
        (orjson.dumps(ev(features=[1, 2])), "bad_features"),
    ],
)
def test_bad_messages_become_error_records_and_the_rest_survives(payload, reason):
    good = [ev(prediction_id=f"ok{i}") for i in range(3)]
    batch, errors = decode([good[0], payload, good[1], good[2]])
    assert [e.reason for e in errors] == [reason]
    assert errors[0].index == 1 and errors[0].detail
    assert batch.ids == ["ok0", "ok1", "ok2"]


def test_feature_level_problems_keep_the_event_and_are_counted():
    events = [
        ev(prediction_id="a", features={"amount": "12.5", "age": 1, "country": "DE"}),  # wrong type
        ev(prediction_id="b", features={"age": 1, "country": "DE"}),  # absent key
        ev(prediction_id="c", features={"amount": None, "age": 1, "country": None}),  # nulls
        json.dumps(ev(prediction_id="d", features={"amount": float("inf"), "age": 1, "country": "XX"})).encode(),
        ev(prediction_id="e", features={"amount": 1.0, "age": True, "country": 7, "brand_new": 1}),
    ]
    batch, errors = decode(events)
    assert errors == []
    assert batch.ids == ["a", "b", "c", "d", "e"]
    amount = batch.num[:, 0]
    assert math.isnan(amount[0]) and math.isnan(amount[1]) and math.isnan(amount[2]) and math.isnan(amount[3])
    assert batch.num_type_err.tolist() == [1, 0]
    assert batch.num_absent.tolist() == [1, 0]
    assert batch.num_nonfinite.tolist() == [1, 0]
    assert batch.num[4, 1] == 1.0  # bool -> 1.0
    assert batch.cat_codes[:, 0].tolist() == [0, 0, 3, 2, 2]  # missing = K+1 = 3, unseen = K = 2
    assert batch.unseen[0] == ["XX", "7"]
    assert batch.unexpected == {"brand_new": 1}


def test_timestamps_rfc3339_offsets_and_epoch_millis_agree():
    events = [ev(prediction_id="a", ts="2026-11-25T14:00:00Z"), ev(prediction_id="b", ts="2026-11-25T15:00:00+01:00"),
              ev(prediction_id="c", ts=T * 1000), ev(prediction_id="d", ts=T)]
    batch, errors = decode(events)
    assert not errors
    assert batch.ts.tolist() == [T, T, T, T]


def test_decisions_slices_and_serving_fields():
    events = [ev(prediction_id="a", decision="review", threshold=0.7, slices={"region": "eu"}, latency_ms=5, fallback=True),
              ev(prediction_id="b", decision="approve", slices={"region": "us"}),
              ev(prediction_id="c")]
    batch, _ = decode(events)
    assert batch.acted[:2].tolist() == [1.0, 0.0] and math.isnan(batch.acted[2])
    assert batch.slices["region"] == ["eu", "us", None]
    assert batch.threshold[0] == 0.7 and math.isnan(batch.threshold[1])
    assert batch.fallback[0] == 1.0 and math.isnan(batch.fallback[1])


def test_labels_decode_with_reasons():
    raws = [orjson.dumps({"prediction_id": "a", "ts": T, "label": 1}),
            orjson.dumps({"prediction_id": "b", "ts": T, "label": "yes"}),
            orjson.dumps({"ts": T, "label": 0}),
            orjson.dumps({"prediction_id": "c", "ts": T, "label": False, "revision": 2})]
    evs, origin, errors = parse_messages(raws)
    batch, errs = decode_labels(evs, origin, raws, 0)
    assert batch.ids == ["a", "c"] and batch.label.tolist() == [1.0, 0.0] and batch.revision.tolist() == [0, 2]
    assert sorted(e.reason for e in errs) == ["bad_label", "missing_field"]
