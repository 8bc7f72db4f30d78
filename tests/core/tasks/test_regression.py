"""Regression task: decoding, metrics against scikit-learn, and the checks on controlled cohorts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from detector.core.decisions.select import select_findings
from detector.core.outcomes.tasks import RegressionTask, make_task
from detector.core.outcomes.tasks.base import CheckContext, PredictionColumns
from detector.core.outcomes.tasks.reference import regression_reference
from tests.core.tasks.harness import View

RNG = np.random.default_rng(11)


def _world(n, rng, level_shift=0.0, noise_scale=1.0, mix=0.5, bias=0.0):
    """Demand-like data: a predicted level (mix of quiet and busy hours), errors proportional to the level."""
    busy = rng.uniform(0, 1, n) < mix
    level = np.where(busy, rng.lognormal(np.log(120), 0.3, n), rng.lognormal(np.log(30), 0.3, n))
    pred = level + bias
    y = level * (1 + noise_scale * 0.15 * rng.standard_normal(n)) + level_shift
    return pred, y


@pytest.fixture(scope="module")
def task() -> RegressionTask:
    pred, y = _world(40000, RNG)
    return make_task(regression_reference(y, pred))  # type: ignore[return-value]


def _cohort(task, pred, y):
    c = task.counters(1)
    ridx = np.zeros((len(pred), 1), dtype=np.int64)
    p = PredictionColumns(pred, np.full(len(pred), -1), np.ones(len(pred), bool))
    task.add_predictions(c, ridx, p)
    task.add_pairs(c, ridx, pred, p.klass, y, np.ones(len(y)))
    return c


def _findings(task, cur, base, **ctx):
    res = task.checks(cur, base, CheckContext(comp=np.zeros(1, bool), **ctx))
    return res, select_findings(res, View(np.array([0]), np.zeros(1, bool), np.array([1000.0])), 0.001)


def test_labels_and_predictions_decode_strictly_with_fixes_in_the_message(task):
    lab = task.decode_labels([3, 2.5, "4.0", False, [1], None])
    assert lab.ok.tolist() == [True, True, False, False, False, False]
    assert "JSON number" in lab.errors[0][2] and "--task multiclass" in lab.errors[0][2]
    p = task.prediction_columns([{"prediction": 1.5}, {"prediction": "2"}, {"score": 3.0}, {}, {"prediction": float("nan")}])
    assert p.ok.tolist() == [True, False, True, True, False]
    assert np.isnan(p.value[3]) and p.value[2] == 3.0
    assert {e[1] for e in p.errors} == {"bad_prediction"}


def test_metrics_match_scikit_learn(task):
    pred, y = _world(5000, np.random.default_rng(1))
    m = task.metrics(_cohort(task, pred, y))
    assert m["mae"][0] == pytest.approx(mean_absolute_error(y, pred), rel=1e-9)
    assert m["rmse"][0] == pytest.approx(np.sqrt(mean_squared_error(y, pred)), rel=1e-9)
    assert m["bias"][0] == pytest.approx(np.mean(pred - y), abs=1e-9)
    assert m["r2"][0] == pytest.approx(r2_score(y, pred), rel=1e-6)
    for q in (50, 90, 99):  # within one log bin (10 per decade: a factor 10 ** 0.1)
        true = np.quantile(np.abs(pred - y), q / 100)
        assert true / 10**0.1 <= m[f"abs_error_p{q}"][0] <= true * 10**0.1


def test_a_seasonal_mix_of_quiet_and_busy_hours_is_not_an_error_change(task):
    base = _cohort(task, *_world(20000, np.random.default_rng(2), mix=0.5))
    for mix in (0.05, 0.95):  # the night (almost all quiet) and the peak (almost all busy)
        cur = _cohort(task, *_world(2000, np.random.default_rng(3), mix=mix))
        _, found = _findings(task, cur, base)
        assert found == []
        # ... although the raw MAE moved far more than the 25% effect size
        raw = task.metrics(cur)["mae"][0] / task.metrics(base)["mae"][0]
        assert raw < 0.5 or raw > 1.5


def test_larger_errors_for_the_same_predictions_are_a_performance_finding(task):
    base = _cohort(task, *_world(20000, np.random.default_rng(4)))
    cur = _cohort(task, *_world(2000, np.random.default_rng(5), noise_scale=1.6))
    res, found = _findings(task, cur, base)
    assert {(f.kind, f.statistic) for f in found} >= {("performance", "mae_ratio")}
    f = next(f for f in found if f.statistic == "mae_ratio")
    assert 1.4 < f.value < 1.8 and f.severity == "critical"
    small = _cohort(task, *_world(2000, np.random.default_rng(5), noise_scale=1.1))  # 10%: below the effect size
    assert _findings(task, small, base)[1] == []


def test_a_target_level_shift_is_label_drift_unless_the_predictions_moved_instead(task):
    base = _cohort(task, *_world(20000, np.random.default_rng(6)))
    sd = np.std(_world(20000, np.random.default_rng(6))[1])
    cur = _cohort(task, *_world(2000, np.random.default_rng(7), level_shift=0.5 * sd))
    _, found = _findings(task, cur, base)
    f = next(f for f in found if f.kind == "label_drift")
    assert f.statistic == "target_shift" and f.value == pytest.approx(0.5, abs=0.1)
    # a broken model (predictions up, target unchanged) while input alerts are open: not label drift
    broken = _cohort(task, *_world(2000, np.random.default_rng(7), bias=0.5 * sd))
    assert not [f for f in _findings(task, broken, base, inputs_stable=False)[1] if f.kind == "label_drift"]


def test_trailing_day_distributions_are_compared_with_training(task):
    pred, y = _world(20000, np.random.default_rng(8), mix=0.9)
    day = _cohort(task, pred, y)
    base = _cohort(task, *_world(20000, np.random.default_rng(9)))
    res, found = _findings(task, day, base, day=day)
    kinds = {(f.kind, f.statistic) for f in found}
    assert ("score_drift", "prediction_psi") in kinds or ("label_drift", "target_psi") in kinds
    stable_day = _cohort(task, *_world(20000, np.random.default_rng(10)))
    assert [f for f in _findings(task, stable_day, base, day=stable_day)[1] if f.statistic.endswith("_psi")] == []


def test_worst_errors_rank_by_absolute_error():
    t = RegressionTask({"target": {"edges": [1.0, 2.0]}, "errors": {"scale": 1.0}})
    r = t.rank_errors(np.array([5.0, 1.0, np.nan]), np.full(3, -1), np.array([1.0, 4.0, 2.0]), np.full(3, np.nan))
    assert r.kind.tolist() == [0, 1, -1] and r.margin.tolist() == [4.0, 3.0, 0.0]


def test_a_reference_without_target_or_prediction_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="--label-column or --prediction-column"):
        RegressionTask({"task": "regression"})
