"""The regression (eta) and multiclass (intent) simulated models: determinism, contract, seasonality, and
that every fault changes what it should and nothing else (compared with the clean run of the same seed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector.core.outcomes.tasks import infer_task
from detector.sim.tasks import KINDS, TaskFault, TaskScenario, simulate_task, task_training
from detector.sim.tasks.world import DOMAIN_SERVE, model_of

T0 = 1_795_000_000_000


def _draw(name, faults, n=20000, seed=0, params=None):
    t = T0 + np.sort(np.random.default_rng(seed).integers(0, 3_600_000, n))
    return model_of(name).draw(seed, DOMAIN_SERVE, 0, t, -5, {k: np.ones(n) for k in faults}, params or {})


def test_same_seed_same_events_and_contract_shapes():
    sc = TaskScenario("x", "intent", hours=3, rate_per_hour=300, seed=5)
    a, b = simulate_task(sc), simulate_task(sc)
    assert a == b and a != simulate_task(TaskScenario("x", "intent", hours=3, rate_per_hour=300, seed=6))
    preds = [e for _, t, e in a if t == "predictions"]
    labels = [e for _, t, e in a if t == "labels"]
    assert len(labels) < len(preds)  # some labels never arrive, some arrive after the end
    ids = {e["prediction_id"] for e in preds}
    assert all(e["prediction_id"] in ids for e in labels)
    for e in preds:
        assert set(e) >= {"prediction_id", "model", "model_version", "ts", "features", "predicted_class", "scores", "slices"}
        assert abs(sum(e["scores"].values()) - 1) < 0.01 and e["predicted_class"] == max(e["scores"], key=e["scores"].get)
        assert all(v is None or isinstance(v, str) or math.isfinite(v) for v in e["features"].values())
    assert [t for t, _, _ in a] == sorted(t for t, _, _ in a)
    eta = [e for _, t, e in simulate_task(TaskScenario("y", "eta", hours=2, rate_per_hour=300)) if t == "labels"]
    assert all(isinstance(e["label"], float) for e in eta)


def test_training_tables_infer_their_task():
    assert infer_task(task_training("eta", 3000)["label"].tolist()) == "regression"
    assert infer_task(task_training("intent", 3000)["label"].tolist()) == "multiclass"


def test_inputs_and_errors_follow_the_clock():
    h = np.arange(24)
    t = T0 + (h[:, None] * 3_600_000 + np.arange(0, 3_600_000, 3600)[None, :]).ravel()
    d = model_of("eta").draw(0, DOMAIN_SERVE, 0, t, 0, {}, {})
    by_hour = d.num["traffic_index"].reshape(24, -1).mean(1)
    err = np.abs(d.prediction - d.label).reshape(24, -1).mean(1)
    assert by_hour.max() > 1.8 * by_hour.min() and err.max() > 1.15 * err.min()


@pytest.mark.parametrize("name,pair", [("eta", ("courier_load", "prep_time_min")), ("intent", ("order_value", "days_since_order"))])
def test_joint_faults_leave_every_marginal_unchanged(name, pair):
    clean = _draw(name, ())
    for fault in ("correlation_flip", "shuffled_join"):
        d = _draw(name, (fault,))
        for k, v in clean.num.items():  # the same distribution (quantiles), feature by feature
            np.testing.assert_allclose(np.quantile(d.num[k], [0.1, 0.5, 0.9]), np.quantile(v, [0.1, 0.5, 0.9]), rtol=0.08, err_msg=k)
        r0 = np.corrcoef(*(clean.num[p] for p in pair))[0, 1]
        r1 = np.corrcoef(*(d.num[p] for p in pair))[0, 1]
        assert r0 > 0.4 and (r1 < -0.3 if fault == "correlation_flip" else abs(r1) < 0.05)


@pytest.mark.parametrize("name", ["eta", "intent"])
def test_label_faults_change_the_truth_and_nothing_the_model_sees(name):
    clean = _draw(name, ())
    for fault in ("concept_change",) + (("class_prior_drift",) if name == "intent" else ()):
        d = _draw(name, (fault,))
        for k in clean.num:
            np.testing.assert_array_equal(d.num[k], clean.num[k])
        if name == "eta":
            np.testing.assert_array_equal(d.prediction, clean.prediction)
            e0, e1 = np.abs(clean.prediction - clean.label).mean(), np.abs(d.prediction - d.label).mean()
            assert e1 > 1.25 * e0 and abs(d.label.mean() - clean.label.mean()) < 0.05 * clean.label.mean()
        else:
            np.testing.assert_array_equal(d.scores, clean.scores)
            acc0, acc1 = np.mean(clean.predicted == clean.label), np.mean(d.predicted == d.label)
            if fault == "concept_change":
                assert acc1 < acc0 - 0.15
            else:
                share0, share1 = np.mean(clean.label == "cancellation"), np.mean(d.label == "cancellation")
                assert share1 > 1.5 * share0


def test_faults_are_validated_and_ground_truth_names_the_alert():
    with pytest.raises(ValueError, match="unknown"):
        TaskFault("meteor", 1.0)
    with pytest.raises(ValueError, match="after onset"):
        TaskFault("concept_change", 5.0, 4.0)
    with pytest.raises(ValueError, match="unknown task model"):
        model_of("ranking")
    gt = TaskScenario("x", "intent", faults=(TaskFault("class_prior_drift", 10, 20),)).ground_truth()[0]
    assert (gt["kind"], gt["cause"], gt["action"]) == KINDS["class_prior_drift"][1:]


def test_two_models_of_one_seed_share_no_prediction_id_and_labels_can_name_their_model():
    a = simulate_task(TaskScenario("x", "eta", hours=3, rate_per_hour=300, seed=2))
    b = simulate_task(TaskScenario("x", "intent", hours=3, rate_per_hour=300, seed=2, label_names_model=True))
    ids = [{e["prediction_id"] for _, t, e in s if t == "predictions"} for s in (a, b)]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    assert all("model" not in e for _, t, e in a if t == "labels")
    assert {e["model"] for _, t, e in b if t == "labels"} == {"intent"}


def test_the_demo_stream_merges_three_models_in_event_time_order():
    from detector.sim import get_scenario, simulate
    from detector.sim.tasks.demo import demo_events, demo_ground_truth, demo_task_scenarios

    sc = get_scenario("demo", rate_per_hour=100, hours=48)
    tasks = demo_task_scenarios(100, hours=48, start=sc.start)
    evs = list(demo_events(simulate(sc), tasks))
    assert [t for t, _, _ in evs] == sorted(t for t, _, _ in evs)
    models = {e.get("model") for _, t, e in evs if t == "predictions"}
    assert models == {"fraud", "eta", "intent"}
    assert len({e["prediction_id"] for _, t, e in evs if t == "predictions"}) == sum(t == "predictions" for _, t, _ in evs)
    gt = demo_ground_truth(hours=48, start=sc.start)
    assert [g["model"] for g in gt] == ["eta"]  # intent's fault starts after 48 h: left out
    assert all(sc.start_ms / 1000 + 36 * 3600 <= g["onset_ts"] < g["end_ts"] <= sc.end_ms / 1000 for g in gt)
