"""The event contract of regression and multiclass models: predictions and labels decoded by the model's task,
bad values dead-lettered with a reason naming the fix, binary models decoded exactly as before."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.inputs.events import (
    PredictionDecoder,
    Schema,
    concat,
    decode_labels,
    parse_messages,
    validate_predictions,
)
from detector.core.outcomes.tasks.routing import label_router
from detector.core.reference.profile import Reference

SCHEMA = Schema(numeric=["km"], categorical=["city"], vocab={"city": {"a": 0, "b": 1}})
T = 1795615200.0
REG = {"format": "skewwatch.task/1", "task": "regression", "target": {"edges": [1.0, 2.0, 5.0]}}
MC = {"format": "skewwatch.task/1", "task": "multiclass", "classes": ["billing", "tech", "__other__"]}


def ev(**kw):
    base = {"prediction_id": "p1", "model": "m", "ts": T, "features": {"km": 3.0, "city": "a"}}
    base.update(kw)
    return base


def decode(events, task):
    raws = [orjson.dumps(e) for e in events]
    evs, origin, errors = parse_messages(raws)
    by_model, errs, orig, items = validate_predictions(evs, origin, raws, 946684800.0)
    dec = PredictionDecoder(SCHEMA, ["approve"], task=task)
    batch = dec.decode("m", by_model["m"], [], orig["m"], items["m"]) if by_model else None
    return batch, errors + errs


def ref(task=None):
    return Reference(n_rows=10, features={}, task=dict(task or {}))


def labels(events, route):
    raws = [orjson.dumps(e) for e in events]
    evs, origin, _ = parse_messages(raws)
    return decode_labels(evs, origin, raws, 0, tasks=route)


def test_a_regression_prediction_is_the_output_and_score_only_stands_in():
    b, errs = decode([ev(prediction=12.5), ev(prediction_id="p2", score=0.3), ev(prediction_id="p3", prediction=-4, score=0.9)],
                     "regression")
    assert not errs and b.score.tolist() == [12.5, 0.3, -4.0] and b.outputs is None


def test_a_binary_model_still_reads_the_score_first_and_prediction_when_it_is_absent():
    b, _ = decode([ev(score=0.2, prediction=7.0), ev(prediction_id="p2", prediction=0.8)], "binary")
    assert b.score.tolist() == [0.2, 0.8]


@pytest.mark.parametrize("bad, reason, words", [
    ({"prediction": "12.5"}, "bad_prediction", "finite number"),
    ({"prediction": float("inf")}, "bad_prediction", "finite number"),
    ({"predicted_class": ["tech"]}, "bad_prediction", "class name"),
    ({"predicted_class": True}, "bad_prediction", "class name"),
    ({"scores": {"tech": 1.4}}, "bad_scores", "[0, 1]"),
    ({"scores": {"tech": 0.8, "billing": 0.7}}, "bad_scores", "sum"),
    ({"scores": [0.2, 0.8]}, "bad_scores", "object"),
    ({"scores": {"tech": "high"}}, "bad_scores", "probabilities"),
])
def test_bad_outputs_are_dead_lettered_with_the_fix_and_the_rest_goes_on(bad, reason, words):
    raw = [orjson.dumps(ev(**bad)) if "inf" not in str(bad) else
           orjson.dumps(ev()).replace(b'"features"', b'"prediction":1e999,"features"'),
           orjson.dumps(ev(prediction_id="ok", predicted_class="tech"))]
    evs, origin, _ = parse_messages(raw)
    by_model, errs, _, _ = validate_predictions(evs, origin, raw, 946684800.0)
    assert [e.reason for e in errs] == [reason] and words in errs[0].detail
    assert [e["prediction_id"] for e in by_model["m"]] == ["ok"]


def test_a_multiclass_batch_carries_its_outputs_through_take_and_concat():
    b, errs = decode([ev(predicted_class="tech", scores={"tech": 0.7, "billing": 0.3}),
                      ev(prediction_id="p2", predicted_class=3), ev(prediction_id="p3")], "multiclass")
    assert not errs and np.isnan(b.score).all()
    assert b.outputs == {"predicted_class": ["tech", 3, None], "scores": [{"tech": 0.7, "billing": 0.3}, None, None]}
    both = concat([b.take(np.array([2, 0])), b.take(np.array([1]))])
    assert both.outputs["predicted_class"] == [None, "tech", 3] and both.ids == ["p3", "p1", "p2"]


def test_an_unknown_task_is_refused_when_the_decoder_is_made():
    with pytest.raises(ValueError, match="unknown model task"):
        PredictionDecoder(SCHEMA, [], task="ranking")


def test_regression_labels_are_numbers_and_anything_else_says_so():
    route = label_router({"m": ref(REG)}, None)
    b, errs = labels([{"prediction_id": "a", "ts": T, "label": 12.25}, {"prediction_id": "b", "ts": T, "label": -3},
                      {"prediction_id": "c", "ts": T, "label": "12"}, {"prediction_id": "d", "ts": T, "label": True}], route)
    assert b.ids == ["a", "b"] and b.label.tolist() == [12.25, -3.0]
    assert [e.reason for e in errs] == ["bad_label", "bad_label"] and "JSON number" in errs[0].detail


def test_multiclass_labels_become_class_codes_and_unknown_classes_are_other():
    route = label_router({"m": ref(MC)}, None)
    b, errs = labels([{"prediction_id": "a", "ts": T, "label": "tech"}, {"prediction_id": "b", "ts": T, "label": "refund"},
                      {"prediction_id": "c", "ts": T, "label": [1]}], route)
    assert b.label.tolist() == [1.0, 2.0] and [e.reason for e in errs] == ["bad_label"]


def test_with_models_of_several_tasks_a_class_name_must_name_its_model():
    route = label_router({"m": ref(MC), "eta": ref(REG), "fraud": ref()}, None)
    b, errs = labels([{"prediction_id": "a", "ts": T, "label": "tech", "model": "m"},
                      {"prediction_id": "b", "ts": T, "label": "tech"},
                      {"prediction_id": "c", "ts": T, "label": 7.5},
                      {"prediction_id": "d", "ts": T, "label": 1, "model": "fraud"},
                      {"prediction_id": "e", "ts": T, "label": 7.5, "model": "fraud"}], route)
    assert b.ids == ["a", "c", "d"] and b.label.tolist() == [1.0, 7.5, 1.0]
    why = {e.reason: e.detail for e in errs}
    assert len(errs) == 2 and "must name its \"model\"" in errs[0].detail and "binary labels" in errs[1].detail
    assert set(why) == {"bad_label"}


def test_only_binary_references_keep_the_binary_label_path():
    assert label_router({"fraud": ref(), "churn": ref({"task": "binary"})}, ref()) is None
    b, errs = labels([{"prediction_id": "a", "ts": T, "label": 2}], None)
    assert b.n == 0 and "binary labels must be 0/1" in errs[0].detail and "--task regression" in errs[0].detail
    assert label_router({"m": ref(REG)}, ref())(None) is None  # the two disagree: no shared task
