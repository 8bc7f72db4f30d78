"""A regression / multiclass model's cohorts carry their task counters as plain data: they round-trip
through the cohort state, merge across workers and sum into a baseline; a forged state is refused."""

from __future__ import annotations

import numpy as np
import pytest

from detector.core.outcomes.cohort import Cohort
from detector.core.outcomes.tasks import make_task
from detector.core.outcomes.tasks.base import PredictionColumns
from detector.core.state.codec import StateError

REG = {"format": "skewwatch.task/1", "task": "regression", "target": {"edges": [10.0, 20.0, 40.0]},
       "prediction": {"edges": [10.0, 20.0, 40.0]}, "errors": {"scale": 5.0}}


def cohort(seed: int) -> Cohort:
    t = make_task(REG)
    rng = np.random.default_rng(seed)
    c = Cohort(0.0, 3600.0, 3)
    c.tc = t.counters(3)
    n = 200
    ridx = np.stack([np.zeros(n, int), 1 + rng.integers(0, 2, n)], axis=1)
    p = rng.gamma(4, 6, n)
    t.add_predictions(c.tc, ridx, PredictionColumns(p, np.full(n, -1), np.ones(n, bool)))
    t.add_pairs(c.tc, ridx, p, np.full(n, -1), p + rng.normal(0, 4, n), np.ones(n))
    return c


def test_task_counters_round_trip_through_the_cohort_state():
    c = cohort(0)
    back = Cohort.from_state(c.to_state(), 3)
    assert back.tc is not None and back.tc.task == "regression"
    for k, a in c.tc.arrays.items():
        np.testing.assert_array_equal(back.tc[k], a)
    assert Cohort.from_state(Cohort(0.0, 1.0, 3).to_state(), 3).tc is None  # a binary model's cohort: none


def test_two_workers_cohorts_merge_to_the_counts_of_one_and_sum_into_a_baseline():
    a, b = cohort(1), cohort(2)
    whole = make_task(REG).metrics(a.tc)["mae"][0] * a.tc["cnt"][0, 5] + make_task(REG).metrics(b.tc)["mae"][0] * b.tc["cnt"][0, 5]
    a.merge(b)
    m = make_task(REG).metrics(a.tc)
    assert m["labelled"][0] == 400 and np.isclose(m["mae"][0] * 400, whole)
    base = Cohort(0.0, 0.0, 3)
    base.add(a)
    base.add(b)
    assert base.tc["cnt"][0, 0] == 600


def test_a_state_with_counters_of_another_shape_is_refused():
    st = cohort(0).to_state()
    st["task"]["arrays"]["cnt"]["shape"] = [2, 11]
    with pytest.raises(StateError):
        Cohort.from_state(st, 3)
    st = cohort(0).to_state()
    with pytest.raises(StateError):  # a cohort of another layout
        Cohort.from_state(st, 4)
