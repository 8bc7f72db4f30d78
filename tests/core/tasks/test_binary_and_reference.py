"""Binary behind the task interface behaves exactly as today's cohort + outcome checks; reference builders."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.outcomes.checks import Arrays, OutcomeThresholds, outcome_checks
from detector.core.outcomes.cohort import Cohort
from detector.core.outcomes.labels import N_DELAY
from detector.core.outcomes.tasks import BinaryTask, TaskReferenceError, infer_task, make_task
from detector.core.outcomes.tasks.base import CheckContext
from detector.core.outcomes.tasks.reference import (
    binary_reference,
    multiclass_reference,
    regression_reference,
)


def _data(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    s = np.clip(rng.beta(1, 8, n) + shift, 0, 1)
    y = (rng.uniform(0, 1, n) < s).astype(float)
    ridx = np.stack([np.zeros(n, int), 1 + rng.integers(0, 2, n)], axis=1)
    return s, y, ridx


def test_binary_counters_are_exactly_todays_cohort_counts():
    s, y, ridx = _data(3000, 0)
    pred = (s >= 0.3).astype(np.int8)
    thr = np.full(3000, 0.3)
    c = Cohort(0.0, 3600.0, 3)
    c.add_predictions(ridx, s, pred, thr)
    c.add_pairs(ridx, s, pred, y, np.ones(3000), None)
    t = BinaryTask()
    k = t.counters(3)
    p = t.prediction_columns([{"score": float(v), "threshold": 0.3} for v in s])
    p.klass = pred.astype(np.int64)
    t.add_predictions(k, ridx, p)
    t.add_pairs(k, ridx, s, p.klass, y, np.ones(3000))
    for name in ("cnt", "rel", "hist"):
        np.testing.assert_array_equal(k[name], getattr(c, name))
    assert k["phist"].sum() == 3 * 3000 / 1.5  # every prediction in row 0 and in one slice row


def test_binary_checks_are_todays_outcome_checks():
    t = BinaryTask()
    out = []
    for seed, shift in ((1, 0.0), (2, 0.15)):
        s, y, ridx = _data(4000 if seed == 1 else 1500, seed, shift)
        k = t.counters(3)
        p = t.prediction_columns([{"score": float(v)} for v in s])
        p.klass = (s >= 0.5).astype(np.int64)
        t.add_predictions(k, ridx, p)
        t.add_pairs(k, ridx, s, p.klass, y, np.ones(len(s)))
        out.append(k)
    real, srows = np.array([0, 1, 2]), np.array([1, 2])
    cur, base = out[1].pseudo(real, srows), out[0].pseudo(real, srows)
    P = 5
    comp = np.array([False, False, False, True, True])
    delay, arr = np.zeros((P, N_DELAY)), np.zeros((P, 2))
    args = dict(ref_rate=np.full(P, np.nan), ref_n=np.full(P, np.nan), ref_oe=np.full(P, np.nan),
                slice_ref_rate=np.full(P, np.nan), slice_ref_n=np.full(P, np.nan), global_ratio=float("nan"), ref_auc=None,
                ref_auc_n=(0.0, 0.0), horizon=3600.0, base_horizon=3600.0, river_latched=False, stable=np.ones(P, bool))
    ctx = CheckContext(comp=comp, extra={"delay": (delay, delay), "arrivals": (arr, arr), "outcome_args": args})
    mine = t.checks(cur, base, ctx)
    theirs = outcome_checks(Arrays(cur["cnt"], cur["rel"], cur["hist"], delay, arr),
                            Arrays(base["cnt"], base["rel"], base["hist"], delay, arr), OutcomeThresholds(),
                            comp=comp, day=None, **args)
    assert [(r.kind, r.statistic) for r in mine] == [(r.kind, r.statistic) for r in theirs]
    for a, b in zip(mine, theirs, strict=True):
        np.testing.assert_array_equal(a.warn, b.warn)
        np.testing.assert_allclose(np.nan_to_num(a.pvalue, nan=-1), np.nan_to_num(b.pvalue, nan=-1))
    assert any(r.warn.any() for r in mine)  # the shifted scores do breach something


def test_binary_decoding_and_error_ranking():
    t = BinaryTask()
    assert t.decode_labels([1, 0, True, 0.0, "yes", 2, None]).ok.tolist() == [True] * 4 + [False] * 3
    p = t.prediction_columns([{"score": 0.2}, {"prediction": 0.7}, {"score": -0.1}, {"score": "0.5"}, {}])
    assert p.ok.tolist() == [True, True, False, False, True] and p.value[1] == 0.7
    r = t.rank_errors(np.array([0.9, 0.1, 0.6]), np.array([1, 0, 1]), np.array([0.0, 1.0, 1.0]), np.full(3, 0.5))
    assert r.kind.tolist() == [0, 1, -1]
    assert r.margin[:2].tolist() == pytest.approx([0.4, 0.4])
    with pytest.raises(ValueError, match="calibration map"):
        t.estimates(t.counters(1))


@pytest.mark.parametrize("values,task", [
    ([0, 1, None, 1], "binary"), (["true", "false"], "binary"), ([True, False, True], "binary"), ([1.0, 0.0], "binary"),
    ([0.5, 2.25, 3.0], "regression"), (list(range(100)), "regression"), ([1, 2, 3, 4, 5] * 10, "multiclass"),
    (["billing", "tech", "billing", "ship"], "multiclass"), (["1.5", "2.5", "7"], "regression"),
])
def test_task_inference(values, task):
    assert infer_task(values) == task


def test_task_inference_refuses_ambiguous_labels_with_the_fix():
    with pytest.raises(TaskReferenceError, match="--task multiclass"):
        infer_task(["cat", "dog", "cat"])
    with pytest.raises(TaskReferenceError, match="--task explicitly"):
        infer_task([None, float("nan")])


def test_reference_builders_return_json_and_refuse_bad_input():
    rng = np.random.default_rng(5)
    s = rng.uniform(0, 1, 2000)
    y = (rng.uniform(0, 1, 2000) < s).astype(int)
    ts = 1.79e9 + np.arange(2000) * 600.0
    ref = binary_reference(y, s, 0.5, ts=ts)
    orjson.dumps(ref)
    assert set(ref["estimate_tau"]) == {"accuracy", "precision", "recall", "auc"}
    assert ref["metrics"]["precision"] == pytest.approx(((s >= 0.5) & (y == 1)).sum() / (s >= 0.5).sum())
    with pytest.raises(TaskReferenceError, match=r"\[0, 1\]"):
        binary_reference(y, s * 3)
    with pytest.raises(TaskReferenceError, match="--task multiclass"):
        binary_reference(["a", "b"], None)
    mc = multiclass_reference(["a", "b", "c", "a"] * 10, ["a", "b", "a", "a"] * 10, top_k=2)
    assert mc["classes"] == ["a", "b", "__other__"] and mc["labels"]["priors"][2] == pytest.approx(0.25)
    orjson.dumps(mc)
    reg = regression_reference(rng.normal(size=500), rng.normal(size=500), {"x": rng.normal(size=500)})
    orjson.dumps(reg)
    assert reg["dle"]["format"] == "skewwatch.dle/1" and len(reg["errors"]["by_prediction_bin"]["n"]) == 10
    with pytest.raises(TaskReferenceError, match="--label-column"):
        regression_reference(None, None)
    tiny = regression_reference(np.arange(20.0), np.arange(20.0) + 1, {"x": np.arange(20.0)})
    assert tiny["dle"] is None and "at least" in tiny["dle_skipped"]


def test_make_task_needs_a_reference_for_the_new_tasks():
    assert make_task(None).name == "binary"
    with pytest.raises(ValueError, match="skewwatch baseline --task regression"):
        make_task(None, "regression")
    with pytest.raises(ValueError, match="unknown task"):
        make_task({"task": "ranking"})
