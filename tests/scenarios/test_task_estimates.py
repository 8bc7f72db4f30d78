"""Golden scenarios: regression (DLE) and multiclass (CBPE) performance estimated before labels, through the engine.

The simulated ``eta`` (delivery time, regression) and ``intent`` (routing, multiclass) models:
references from their training tables with the task block (expected-error model, per-class
calibration maps), prediction events as bytes through ``Engine.ingest_predictions`` / ``advance``.
The labels of the same simulation measure each window's realised MAE / RMSE / accuracy /
macro-F1 offline, to check the estimates made at window close against them.

* stable traffic: no alert at all, and each hourly window's estimate is within its stated error
  of the realised value (RMS of the gap in stated errors near 1, about 95% within two);
* the served multiclass model's scores lose their confidence (a softmax temperature bug): an
  ``estimated_accuracy_drop`` within hours, before any label.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.inputs.timeparse import parse_timestamps
from detector.core.outcomes.tasks.multiclass import MulticlassTask, confusion_metrics
from detector.core.outcomes.tasks.reference import multiclass_reference, regression_reference
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.sim.tasks.world import TaskScenario, simulate_task, task_training
from tests.engine_replay import replay_log
from tests.scenarios.test_multivariate_engine import alert_validator

DIMS = {"eta": ["region", "vehicle"], "intent": ["channel", "language"]}
METRICS = {"eta": ("mae", "rmse"), "intent": ("accuracy", "macro_f1")}
ONSET = 40.0


@cache
def reference(model: str):
    tr = task_training(model, 30000, seed=1)
    cols = {k: v for k, v in tr.items() if k not in ("scores", "predicted_class", "prediction", "label")}
    ref = build_reference(cols, slice_columns=DIMS[model], time_column="ts", model=model)
    if model == "eta":
        feats = {k: v for k, v in cols.items() if k not in ("ts", *DIMS[model])}
        ref.task = regression_reference(tr["label"], tr["prediction"], features=feats, ts=tr["ts"])
    else:
        ref.task = multiclass_reference(list(tr["label"]), list(tr["predicted_class"]), list(tr["scores"]), ts=tr["ts"])
    return ref


@cache
def traffic(model: str):
    sc = TaskScenario("golden", model, hours=72, rate_per_hour=1000, seed=0)
    preds, labels = [], {}
    for _, topic, e in simulate_task(sc):
        if topic == "predictions":
            preds.append(e)
        elif topic == "labels":
            labels[e["prediction_id"]] = e["label"]
    return sc.start_ms / 1000, preds, labels


def hour(e, t0):
    return (float(parse_timestamps([e["ts"]])[0]) - t0) / 3600


def run(model, preds, chunk=400):
    """Events through the engine; the all-traffic estimate of every closed window (start -> row)."""
    per_window = {}

    def record(eng: Engine, _k: int) -> None:
        pe = eng.models[model].estimate
        if pe is not None and pe.last:
            per_window[pe.last["window"]["start"]] = pe.last["slices"][""]

    r = replay_log(Engine(DetectorSettings(), default_reference=reference(model)), [orjson.dumps(e) for e in preds], chunk,
                   after_chunk=record)
    assert r.errors["predictions"] == []
    return r.engine, r.dicts(), per_window


def realised(model, preds, labels, t0):
    """Realised metrics per hourly window of prediction time, from the simulation's labels."""
    by: dict[float, list[dict]] = {}
    for e in preds:
        if e["prediction_id"] in labels:
            by.setdefault(t0 + 3600 * np.floor(hour(e, t0)), []).append(e)
    out = {}
    t = MulticlassTask(reference(model).task) if model == "intent" else None
    for s, es in by.items():
        y = [labels[e["prediction_id"]] for e in es]
        if model == "eta":
            err = np.array([e["prediction"] for e in es]) - np.array(y, dtype=float)
            out[s] = {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err * err).mean())), "n": len(es)}
        else:
            yc = t.decode_labels(y).y.astype(int)
            pc = t.prediction_columns(es).klass
            conf = np.zeros((t.C, t.C))
            np.add.at(conf, (yc, pc), 1.0)
            m = confusion_metrics(conf[None])
            out[s] = {"accuracy": float(m["accuracy"][0]), "macro_f1": float(m["macro_f1"][0]), "n": len(es)}
    return out


@pytest.mark.parametrize("model", ["eta", "intent"])
def test_stable_traffic_no_alert_and_window_estimates_within_their_stated_error(model):
    t0, preds, labels = traffic(model)
    eng, alerts, per_window = run(model, preds)
    assert alerts == []
    pe = eng.models[model].estimate
    assert pe is not None and pe.est.task == ("regression" if model == "eta" else "multiclass")
    assert pe.last["day"] is not None  # the trailing day was tested (and stayed quiet)
    real = realised(model, preds, labels, t0)
    for m in METRICS[model]:
        # the realised value rests on the labelled share (the last windows' labels are still in flight): its
        # sampling error is larger by sqrt(predictions / labelled), as the monitor accounts for it
        z = np.array([(real[s][m] - w[m]) / (w[f"{m}_se"] * np.sqrt(max(1.0, w["predictions"] / real[s]["n"])))
                      for s, w in per_window.items() if s in real and w.get(m) is not None])
        assert z.size >= 60, (m, z.size)
        assert float(np.sqrt(np.mean(z * z))) < 1.5, (m, z)
        assert np.mean(np.abs(z) < 2.0) >= 0.85, (m, z)
        assert abs(float(np.mean(z))) < 0.8, (m, z)


def test_multiclass_scores_losing_confidence_are_an_estimated_accuracy_drop_before_labels():
    t0, preds, _ = traffic("intent")
    bad = []
    for e in preds:
        e = dict(e)
        if hour(e, t0) >= ONSET and e.get("scores"):  # a softmax temperature bug in the served model
            C = len(e["scores"])
            e["scores"] = {k: 0.4 * v + 0.6 / C for k, v in e["scores"].items()}
        bad.append(e)
    eng, alerts, _ = run("intent", bad, chunk=2000)
    fired = [a for a in alerts if a["state"] == "firing" and a["statistic"].startswith("estimated_")]
    assert fired, alerts
    first = fired[0]
    assert first["kind"] == "performance" and first["statistic"] in ("estimated_accuracy_drop", "estimated_macro_f1_drop")
    assert ONSET < hour(first, t0) <= ONSET + 24
    assert first["evidence"]["current"]["method"].startswith("confidence-based")
    check = alert_validator()
    for a in alerts:
        check.validate(a)
    from prometheus_client import CollectorRegistry

    from detector.exporters.prometheus import SkewwatchCollector

    reg = CollectorRegistry(auto_describe=False)
    reg.register(SkewwatchCollector(lambda: eng))
    v = reg.get_sample_value("skewwatch_estimated_performance_ratio", {"model": "intent", "slice": "all", "metric": "accuracy"})
    assert v is not None and v < reference("intent").task["metrics"]["accuracy"] - 0.1


def test_regression_estimates_are_exported_in_the_targets_units():
    _, preds, _ = traffic("eta")
    eng, _, _ = run("eta", preds[: len(preds) // 2], chunk=2000)
    from prometheus_client import CollectorRegistry

    from detector.exporters.prometheus import SkewwatchCollector

    reg = CollectorRegistry(auto_describe=False)
    reg.register(SkewwatchCollector(lambda: eng))
    mae = reg.get_sample_value("skewwatch_estimated_error", {"model": "eta", "slice": "all", "metric": "mae"})
    assert mae == pytest.approx(reference("eta").task["errors"]["mae"], rel=0.25)
    assert reg.get_sample_value("skewwatch_estimated_error_stderr", {"model": "eta", "slice": "all", "metric": "rmse"}) > 0
    assert reg.get_sample_value("skewwatch_estimated_performance_ratio", {"model": "eta", "slice": "all", "metric": "mae"}) is None


@cache
def matured_run(model: str):
    """Stable traffic with its labels through the engine and the outcome monitor (estimates meet labels at maturity)."""
    from detector.core.outcomes.monitor import attach_outcomes

    sc = TaskScenario("golden", model, hours=72, rate_per_hour=1000, seed=0)
    eng = Engine(DetectorSettings(), default_reference=reference(model))
    attach_outcomes(eng)
    r = replay_log(eng, [(t, orjson.dumps(e)) for _, t, e in simulate_task(sc)], 2000, flush=False)
    assert r.errors["predictions"] == [] and r.errors["labels"] == []
    return eng, r.dicts()


@pytest.mark.parametrize("model", ["eta", "intent"])
def test_at_label_maturity_the_estimates_meet_realised_performance_within_their_stated_error(model):
    eng, alerts = matured_run(model)
    assert alerts == []
    pe = eng.models[model].estimate
    errors = pe.errors()
    assert set(errors) == set(METRICS[model]), errors
    for m in METRICS[model]:
        g = pe.gaps[m]
        assert len(g) >= 25, (m, len(g))  # pooled hourly windows over two and a half days
        z = np.array([x[3] for x in g])  # in the stated error as exported at the time
        assert float(np.sqrt(np.mean(z * z))) < 1.5, (m, z)
        assert np.mean(np.abs(z) < 2.0) >= 0.85, (m, z)
        raw = np.array([x[2] for x in g])
        assert abs(float(np.mean(raw))) < 0.8, (m, raw)  # no gross bias before any widening
        assert errors[m]["rms_z"] > 0 and np.isfinite(errors[m]["gap"])
    from prometheus_client import CollectorRegistry

    from detector.exporters.prometheus import SkewwatchCollector

    reg = CollectorRegistry(auto_describe=False)
    reg.register(SkewwatchCollector(lambda: eng))
    name = "skewwatch_estimated_error_gap" if model == "eta" else "skewwatch_estimate_error_ratio"
    for m in METRICS[model]:
        assert reg.get_sample_value(name, {"model": model, "metric": m}) == pytest.approx(errors[m]["gap"])
        assert reg.get_sample_value("skewwatch_estimate_error_zscore_rms", {"model": model, "metric": m}) > 0
    realised = {"eta": ("skewwatch_outcome_mae", "skewwatch_outcome_rmse"),
                "intent": ("skewwatch_accuracy_ratio", "skewwatch_macro_f1_ratio")}[model]
    for fam in realised:
        assert reg.get_sample_value(fam, {"model": model, "slice": "all"}) > 0
    if model == "intent":
        rec = reg.get_sample_value("skewwatch_class_recall_ratio", {"model": model, "slice": "all", "class": "cancellation"})
        assert 0 < rec <= 1
