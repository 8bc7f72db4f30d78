"""Multiclass task: decoding, metrics against scikit-learn, prior shift vs concept change."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from detector.core.decisions.select import select_findings
from detector.core.outcomes.tasks import MulticlassTask, make_task
from detector.core.outcomes.tasks.base import CheckContext
from detector.core.outcomes.tasks.multiclass_checks import confusion_metrics, macro_f1_se, prior_shift
from detector.core.outcomes.tasks.reference import multiclass_reference
from tests.core.tasks.harness import View

CLASSES = ["ship", "bill", "tech", "other"]
W = np.array([[2.0, 0.0, -1.0], [0.0, 2.0, 0.5], [-1.0, -0.5, 2.0], [0.3, 0.3, 0.3]])


def _world(n, rng, prior=None, swap=False):
    """Classes from a softmax of three inputs; the served model knows the weights (but not prior moves)."""
    x = rng.standard_normal((n, 3))
    logit = x @ W.T
    served = logit.copy()
    if swap:  # concept change: "ship" and "tech" tickets now look like each other
        logit = logit[:, [2, 1, 0, 3]]
    if prior is not None:
        logit = logit + np.log(prior)
    p = np.exp(logit - logit.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (rng.uniform(0, 1, (n, 1)) > np.cumsum(p, 1)).sum(1)
    q = np.exp(served - served.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    cls = np.array(CLASSES)
    return [{"predicted_class": cls[i], "scores": dict(zip(CLASSES, r, strict=True))} for i, r in
            zip(q.argmax(1), np.round(q, 4).tolist(), strict=True)], cls[y].tolist()


@pytest.fixture(scope="module")
def task() -> MulticlassTask:
    ev, lab = _world(30000, np.random.default_rng(0))
    return make_task(multiclass_reference(lab, [e["predicted_class"] for e in ev], [e["scores"] for e in ev]))  # type: ignore[return-value]


def _cohort(task, ev, lab):
    c = task.counters(1)
    ridx = np.zeros((len(ev), 1), dtype=np.int64)
    p = task.prediction_columns(ev)
    task.add_predictions(c, ridx, p)
    y = task.decode_labels(lab)
    task.add_pairs(c, ridx, p.value, p.klass, y.y, np.ones(len(lab)))
    return c


def _findings(task, cur, base):
    res = task.checks(cur, base, CheckContext(comp=np.zeros(1, bool)))
    return select_findings(res, View(np.array([0]), np.zeros(1, bool), np.array([1000.0])), 0.001)


def test_decoding_names_the_fix(task):
    d = task.decode_labels(["ship", "nope", 3, None, 1.5, True])
    assert d.ok.tolist() == [True, True, True, False, False, False]
    assert d.y[1] == task.C - 1  # an unknown class is __other__, counted, not an error
    assert "class name" in d.errors[1][2]
    p = task.prediction_columns([{"predicted_class": "tech"}, {"scores": {"ship": 0.2, "bill": 0.8}},
                                 {"scores": {"ship": 1.7}}, {"scores": "x"}, {}, {"predicted_class": ["a"]}])
    assert p.ok.tolist() == [True, True, False, False, False, False]
    assert p.klass[:2].tolist() == [task.code["tech"], task.code["bill"]] and p.value[1] == 0.8
    assert {e[1] for e in p.errors} == {"bad_scores", "bad_prediction"}


def test_confusion_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 4, 3000), rng.integers(0, 4, 3000)
    p[:1500] = y[:1500]
    conf = np.bincount(y * 4 + p, minlength=16).reshape(1, 4, 4).astype(float)
    m = confusion_metrics(conf)
    assert m["accuracy"][0] == pytest.approx(accuracy_score(y, p))
    assert m["macro_f1"][0] == pytest.approx(f1_score(y, p, average="macro"))
    np.testing.assert_allclose(m["precision"][0], precision_score(y, p, average=None))
    np.testing.assert_allclose(m["recall"][0], recall_score(y, p, average=None))


def test_macro_f1_standard_error_matches_the_spread_over_samples():
    rng = np.random.default_rng(2)
    cell = np.array([[50, 5, 5], [10, 30, 10], [2, 8, 80]], dtype=float).ravel()
    cell /= cell.sum()
    draws = rng.multinomial(800, cell, size=2000).reshape(-1, 3, 3).astype(float)
    f1 = confusion_metrics(draws)["macro_f1"]
    se = macro_f1_se(draws).mean()
    assert se == pytest.approx(f1.std(), rel=0.1)


def test_prior_shift_fit_recovers_the_class_factors():
    rng = np.random.default_rng(3)
    cond = rng.dirichlet(np.ones(3) * 2, 3).T  # P(true | predicted), columns sum to 1
    w_true = np.array([1.0, 2.5, 0.6])
    n_pred = np.array([4000.0, 3000.0, 3000.0])
    e = cond * w_true[:, None]
    e = e / e.sum(0, keepdims=True) * n_pred
    w, fitted = prior_shift(e[None], cond[None])
    np.testing.assert_allclose(w[0] / w[0, 0], w_true, rtol=1e-3)
    np.testing.assert_allclose(fitted[0], e, rtol=1e-3)


def test_a_class_prior_shift_is_label_drift_and_a_concept_swap_is_not(task):
    base = _cohort(task, *_world(30000, np.random.default_rng(4)))
    prior = _cohort(task, *_world(3000, np.random.default_rng(5), prior=np.array([1.0, 4.0, 1.0, 1.0])))
    found = _findings(task, prior, base)
    ld = [f for f in found if f.kind == "label_drift"]
    assert ld and ld[0].statistic == "class_prior_ratio" and ld[0].evidence["class"] == "bill"
    assert not [f for f in found if f.statistic == "confusion_shift"]
    swap = _cohort(task, *_world(3000, np.random.default_rng(6), swap=True))
    found = _findings(task, swap, base)
    assert {"accuracy_drop", "confusion_shift"} & {f.statistic for f in found}
    assert not [f for f in found if f.kind == "label_drift"]


def test_stable_traffic_with_another_class_mix_has_no_finding(task):
    base = _cohort(task, *_world(30000, np.random.default_rng(7)))
    for seed in range(8, 12):
        assert _findings(task, _cohort(task, *_world(3000, np.random.default_rng(seed))), base) == []


def test_estimates_follow_realised_accuracy(task):
    c = _cohort(task, *_world(5000, np.random.default_rng(13)))
    m = task.metrics(c)
    assert abs(m["accuracy"][0] - m["estimated_accuracy"][0]) < 3 * m["estimated_accuracy_se"][0]
    assert abs(m["macro_f1"][0] - m["estimated_macro_f1"][0]) < 3 * m["estimated_macro_f1_se"][0]


def test_the_most_confident_wrong_prediction_ranks_first(task):
    r = task.rank_errors(np.array([0.9, 0.6, 0.99]), np.array([0, 1, 2]), np.array([1.0, 2.0, 2.0]), np.full(3, np.nan))
    assert r.kind.tolist() == [0, 0, -1] and r.margin.tolist() == [0.9, 0.6, 0.0]


def test_a_reference_without_classes_is_refused():
    with pytest.raises(ValueError, match="__other__"):
        MulticlassTask({"classes": ["a", "b"]})
