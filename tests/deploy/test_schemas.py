"""JSON Schemas of the event contract and the producer helper agree with the core decoder."""

from __future__ import annotations

import json
from importlib import resources

import orjson
import pytest

from detector import producer
from detector.core.engine import Engine
from detector.sim import get_scenario, simulate
from tests.deploy.traffic import reference

TOPIC_SCHEMA = {"predictions": "prediction", "labels": "label", "features": "feature"}


def schema(name):
    return json.loads((resources.files("detector") / "schemas" / f"{name}.schema.json").read_text())


def validator(name):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed: pip install 'jsonschema>=4.18'")
    s = schema(name)
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_schemas_are_draft_2020_12_and_ship_with_the_package():
    for name in TOPIC_SCHEMA.values():
        s = schema(name)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert s["$id"].startswith("urn:skewwatch:schema:")
        validator(name)


def test_simulated_events_of_every_topic_are_valid():
    seen = dict.fromkeys(TOPIC_SCHEMA, 0)
    vals = {t: validator(n) for t, n in TOPIC_SCHEMA.items()}
    sc = get_scenario("stable", rate_per_hour=400, hours=6)
    for _, topic, ev in simulate(sc):
        if seen[topic] < 200:
            errs = list(vals[topic].iter_errors(json.loads(orjson.dumps(ev))))
            assert not errs, (topic, ev, [e.message for e in errs])
            seen[topic] += 1
    assert all(seen.values()), seen


def test_prediction_schema_takes_regression_and_multiclass_outputs():
    v = validator("prediction")
    base = {"prediction_id": "a", "model": "eta", "ts": 1795615200, "features": {}}
    assert v.is_valid({**base, "prediction": 14.5})
    assert v.is_valid({**base, "predicted_class": "tech", "scores": {"tech": 0.7, "billing": 0.3}})
    assert not v.is_valid({**base, "predicted_class": ["tech"]})
    assert not v.is_valid({**base, "scores": {"tech": 1.5}})


@pytest.mark.parametrize("bad, field", [
    ({"model": "fraud", "ts": "2026-11-25T14:00:00Z", "features": {}}, "prediction_id"),
    ({"prediction_id": "a", "ts": "2026-11-25T14:00:00Z", "features": {}}, "model"),
    ({"prediction_id": "a", "model": "fraud", "ts": "yesterday", "features": {}}, "ts"),
    ({"prediction_id": "a", "model": "fraud", "ts": 12.0, "features": {}}, "ts"),
    ({"prediction_id": "a", "model": "fraud", "ts": 1795615200, "features": [1, 2]}, "features"),
    ({"prediction_id": "a", "model": "fraud", "ts": 1795615200, "features": {"x": {"nested": 1}}}, "features"),
    ({"prediction_id": "a", "model": "fraud", "ts": 1795615200, "features": {}, "score": "0.5"}, "score"),
])
def test_prediction_schema_rejects_what_the_core_rejects(bad, field):
    errs = list(validator("prediction").iter_errors(bad))
    assert errs and any(field in (list(e.absolute_path) + [e.message]).__str__() for e in errs)


def test_label_schema_accepts_each_tasks_labels_and_revisions_rejects_other_labels():
    v = validator("label")
    assert v.is_valid({"prediction_id": "a", "ts": "2026-11-25T14:00:00+01:00", "label": True, "revision": 2})
    assert v.is_valid({"prediction_id": "a", "ts": "2026-11-25T14:00:00Z", "label": 12.5})  # regression
    assert v.is_valid({"prediction_id": "a", "ts": "2026-11-25T14:00:00Z", "label": "billing", "model": "intent"})
    assert not v.is_valid({"prediction_id": "a", "ts": "2026-11-25T14:00:00Z", "label": [1]})
    assert not v.is_valid({"prediction_id": "a", "ts": "2026-11-25T14:00:00Z", "label": ""})
    assert not v.is_valid({"prediction_id": "a", "ts": "2026-11-25T14:00:00Z", "label": 1, "revision": -1})


def test_producer_events_validate_and_the_core_accepts_them():
    ts = 1795615200.0
    preds = [producer.prediction_event("fraud", {"amount": 10.0 + i, "country": "DE", "hour_of_day": float("nan")},
                                       score=0.1, prediction_id=f"p{i}", ts=ts + i, model_version="v1",
                                       decision="approve", threshold=0.5, slices={"region": "eu"}, latency_ms=3.0,
                                       fallback=False) for i in range(20)]
    labels = [producer.label_event(f"p{i}", i % 2, ts=ts + 60 + i) for i in range(20)]
    feats = [producer.feature_event(f"p{i}", {"amount": 10.0 + i}, ts=ts + i) for i in range(20)]
    eng = Engine(default_reference=reference())
    assert eng.ingest_predictions([producer.encode(e) for e in preds]) == []
    assert eng.ingest_predictions([producer.encode(preds)]) == []  # batch envelope
    assert eng.ingest_labels([producer.encode(e) for e in labels]) == []
    assert eng.ingest_features([producer.encode(e) for e in feats]) == []
    assert eng.counters.predictions == 40 and eng.counters.labels == 20 and eng.counters.feature_events == 20
    assert producer.key(preds[3]) == b"p3"
    for name, evs in (("prediction", preds), ("label", labels), ("feature", feats)):
        v = validator(name)  # skips here without jsonschema: the core check above still ran
        for ev in evs:
            assert v.is_valid(json.loads(producer.encode(ev))), ev


@pytest.mark.parametrize("call, field", [
    (lambda: producer.prediction_event("", {}), "model"),
    (lambda: producer.prediction_event("m", {"x": [1]}), "features.x"),
    (lambda: producer.prediction_event("m", {}, score=float("inf")), "score"),
    (lambda: producer.prediction_event("m", {}, ts=5.0), "ts"),
    (lambda: producer.prediction_event("m", {}, latency_ms=-1), "latency_ms"),
    (lambda: producer.label_event("a", 0.5), "label"),
    (lambda: producer.encode({"x": float("nan")}), "non-finite"),
])
def test_producer_names_the_field_it_rejects(call, field):
    with pytest.raises(producer.ContractError, match=field.replace(".", r"\.")):
        call()


def test_producer_defaults_id_and_time():
    ev = producer.prediction_event("m", {}, ts=None)
    assert len(ev["prediction_id"]) == 32 and ev["ts"].endswith("Z")
    assert producer.timestamp(clock=lambda: 1795615200.5) == "2026-11-25T14:00:00.500Z"
