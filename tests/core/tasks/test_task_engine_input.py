"""Hostile and imperfect input for multiclass and regression models through the engine: every bad value is
dead-lettered with a reason naming the fix, its batch-mates go on, and the outcomes count what was good."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.outcomes.tasks.reference import multiclass_reference, regression_reference
from detector.core.reference.build import build_reference

T = 1795615200.0
CLASSES = ["billing", "tech", "delivery"]


def engine(task: str) -> Engine:
    rng = np.random.default_rng(0)
    n = 2000
    cols = {"x": rng.normal(size=n), "city": rng.choice(["a", "b"], n).astype(object)}
    ref = build_reference(cols, model="m")
    if task == "multiclass":
        y = rng.choice(CLASSES, n)
        ref.task = multiclass_reference(list(y), list(y), None)
    else:
        y = rng.gamma(3, 5, n)
        ref.task = regression_reference(y, y + rng.normal(0, 2, n))
    eng = Engine(references={"m": ref})
    attach_outcomes(eng)
    return eng


def pred(i: int, **kw) -> bytes:
    return orjson.dumps({"prediction_id": f"p{i}", "model": "m", "ts": T + i, "features": {"x": 0.5, "city": "a"}, **kw})


def label(i: int, y, **kw) -> bytes:
    return orjson.dumps({"prediction_id": f"p{i}", "ts": T + 3600 + i, "label": y, **kw})


@pytest.mark.parametrize("task, good, bad", [
    ("multiclass", {"predicted_class": "tech", "scores": {"tech": 0.6, "billing": 0.4}},
     [({"predicted_class": {"a": 1}}, "bad_prediction"), ({"scores": {"tech": 2}}, "bad_scores"),
      ({"scores": "tech"}, "bad_scores"), ({"scores": {"tech": 0.9, "billing": 0.9}}, "bad_scores")]),
    ("regression", {"prediction": 14.5},
     [({"prediction": "14.5"}, "bad_prediction"), ({"prediction": [1]}, "bad_prediction"),
      ({"prediction": True}, "bad_prediction")]),
])
def test_bad_outputs_are_dead_lettered_and_the_rest_are_counted(task, good, bad):
    eng = engine(task)
    raws = [pred(i, **good) for i in range(5)] + [pred(10 + k, **b) for k, (b, _) in enumerate(bad)]
    errs = eng.ingest_predictions(raws)
    assert sorted((e.index, e.reason) for e in errs) == [(5 + k, r) for k, (_, r) in enumerate(bad)]
    assert all(("must" in e.detail or "sum" in e.detail) for e in errs)
    assert eng.counters.predictions == 5 and eng.counters.invalid == {r: sum(1 for _, x in bad if x == r) for _, r in bad}
    m = eng.outcomes.models["m"]
    assert sum(c.tc["cnt"][0, 0] for c in m.open.values()) == 5


@pytest.mark.parametrize("task, good, bad", [
    ("multiclass", ["tech", "billing", "refund", 3], [[1], {"a": 1}, None, True]),
    ("regression", [12.5, -3, 0, 1], ["12.5", [1], None, True, {"v": 1}]),
])
def test_bad_labels_are_dead_lettered_and_good_ones_join(task, good, bad):
    eng = engine(task)
    out = {"predicted_class": "tech"} if task == "multiclass" else {"prediction": 10.0}
    assert eng.ingest_predictions([pred(i, **out) for i in range(len(good))]) == []
    raws = [label(i, y) for i, y in enumerate(good)] + [label(100 + k, y) for k, y in enumerate(bad)]
    errs = eng.ingest_labels(raws)
    assert sorted(e.index for e in errs) == list(range(len(good), len(raws)))
    assert {e.reason for e in errs} <= {"bad_label", "missing_field"} and all(e.detail for e in errs)
    assert eng.outcomes.join.counters["matched"] == len(good)
    store = eng.outcomes.join.store
    y = store.label[store.get_many([f"p{i}" for i in range(len(good))])]
    if task == "multiclass":  # class codes in the reference's class order; unknown classes are __other__
        cl = eng.references["m"].task["classes"]
        want = [float(cl.index(str(v))) if str(v) in cl[:-1] else float(len(cl) - 1) for v in good]
    else:
        want = [float(v) for v in good]
    assert y.tolist() == want
