"""Golden scenarios: multivariate drift through the real engine (reference from ``build_reference``,
events as bytes through ``Engine.ingest_predictions`` / ``advance``, the path replay and the
sidecar run).

* a stable correlation raises no alert at all, over three days, for both simulated models;
* a correlation flip (and a join that pairs the wrong rows) with unchanged marginals is caught as
  ``multivariate_drift`` within 24 h of its onset, on all traffic, with the changed pair named in
  the evidence, triaged covariate_drift, and resolved after the fault ends;
* the state survives a snapshot/restore mid-run and the window sums merge across workers.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from detector.core.engine import Engine
from detector.core.reference.build import build_reference
from detector.core.reference.profile import Reference
from detector.core.settings import DetectorSettings
from detector.exporters.prometheus import SkewwatchCollector
from detector.sim.tasks.world import TaskFault, TaskScenario, simulate_task, task_training
from detector.web.report import render_report
from tests.engine_replay import replay_log

DIMS = {"eta": ["region", "vehicle"], "intent": ["channel", "language"]}
PAIR = {"eta": {"courier_load", "prep_time_min"}, "intent": {"order_value", "days_since_order"}}
ONSET, END = 40.0, 56.0


@cache
def reference(model: str, timestamps: bool = True) -> Reference:
    tr = task_training(model, 30000, seed=1)
    cols = {k: v for k, v in tr.items() if k not in ("scores", "predicted_class", "prediction", "label")}
    if not timestamps:
        del cols["ts"]
    return build_reference(cols, slice_columns=DIMS[model], time_column="ts" if timestamps else None, model=model)


@cache
def events(model: str, fault: str | None = None, seed: int = 0, onset: float = ONSET, end: float = END) -> tuple[float, list[bytes]]:
    faults = (TaskFault(fault, onset, end),) if fault else ()
    sc = TaskScenario("golden", model, hours=72, rate_per_hour=1000, faults=faults, seed=seed)
    return sc.start_ms / 1000, [orjson.dumps(e) for _, topic, e in simulate_task(sc) if topic == "predictions"]


def alert_validator():
    import json
    from importlib import resources

    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema not installed: pip install 'jsonschema>=4.18'")
    s = json.loads((resources.files("detector") / "schemas" / "alert.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_the_alert_schema_refuses_a_joint_alert_that_names_a_feature_or_no_evidence():
    check = alert_validator()
    ok = {"alert_id": "a", "ts": "2026-11-03T22:00:00.000Z", "state": "firing", "model": "eta", "model_version": None,
          "kind": "multivariate_drift", "feature": None, "slice": {}, "statistic": "reconstruction_error_ratio",
          "value": 1.4, "threshold": 1.1, "severity": "critical",
          "window": {"start": "2026-11-03T21:00:00.000Z", "end": "2026-11-03T22:00:00.000Z", "count": 1000},
          "cause": "covariate_drift", "action": "fix_data",
          "evidence": {"reference": {"mean_error": 1.0, "source": "training"}, "current": {"mean_error": 1.4, "rows": 1000},
                       "features": [{"feature": "courier_load", "residual_ratio": 3.2}]}, "summary": "…"}
    check.validate(ok)
    for bad in ({**ok, "feature": "courier_load"}, {**ok, "evidence": {}}, {**ok, "kind": "joint_drift"},
                {**ok, "cause": "concept_drift"}):
        assert not check.is_valid(bad)


def run(eng: Engine, raws: list[bytes], chunk: int = 2000, flush: bool = True) -> list[dict]:
    r = replay_log(eng, raws, chunk, flush=flush)
    assert r.errors["predictions"] == []
    return r.dicts()


@pytest.mark.parametrize("model", ["eta", "intent"])
def test_the_reference_holds_the_joint_structure_by_hour_and_round_trips(model, tmp_path):
    ref = reference(model)
    mv = ref.multivariate
    assert mv["format"] == "skewwatch.pca/1" and mv["hourly"] is not None
    assert PAIR[model] <= set(mv["features"])
    ref.save(tmp_path / "ref.json")
    assert Reference.load(tmp_path / "ref.json").multivariate == orjson.loads(orjson.dumps(mv))


@pytest.mark.parametrize("model", ["eta", "intent"])
def test_stable_joint_structure_raises_nothing(model):
    _, raws = events(model)
    eng = Engine(DetectorSettings(), default_reference=reference(model))
    assert run(eng, raws) == []
    assert "no change in how the features move together" in render_report(eng, alerts=[])
    ms = eng.models[model]
    assert ms.joint is not None and len(ms.joint.history) == 24  # it kept learning: every window was clean
    stats = {k[:2] for k in ms.last_stats}
    assert ("multivariate_drift", "reconstruction_error_ratio") in stats  # tested, and exported as a gauge


@pytest.mark.parametrize("model,fault", [("eta", "correlation_flip"), ("intent", "correlation_flip"), ("eta", "shuffled_join")])
def test_a_joint_change_with_unchanged_marginals_is_caught_within_24h(model, fault):
    t0, raws = events(model, fault)
    eng = Engine(DetectorSettings(), default_reference=reference(model))
    cut = next(i for i, r in enumerate(raws) if orjson.loads(r)["ts"] >= "2026-11-04T06")  # 49 h: fault on
    alerts = run(eng, raws[:cut], flush=False)
    # the exporter shows the statistic while the fault is on (the pipeline dashboard's model statistics)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SkewwatchCollector(lambda: eng))
    labels = {"model": model, "kind": "multivariate_drift", "slice": "all", "statistic": "reconstruction_error_ratio"}
    assert reg.get_sample_value("skewwatch_model_statistic", labels) >= 1.1
    assert reg.get_sample_value("skewwatch_model_statistic_threshold", labels) == pytest.approx(1.1)
    alerts += run(eng, raws[cut:])
    assert {a["kind"] for a in alerts} == {"multivariate_drift"}, alerts  # no marginal check sees it
    fired = [a for a in alerts if a["state"] == "firing"]
    first = fired[0]
    start = orjson.loads(orjson.dumps(first["window"]))["start"]
    from detector.core.inputs.timeparse import parse_timestamps

    at = float(parse_timestamps([start])[0])
    assert ONSET <= (at - t0) / 3600 <= ONSET + 24
    assert first["feature"] is None and first["slice"] == {} and first["statistic"] == "reconstruction_error_ratio"
    assert first["cause"] == "covariate_drift" and first["action"] == "fix_data"
    assert first["value"] >= 1.1
    named = [f["feature"] for f in first["evidence"]["features"]]
    assert set(named[:2]) & PAIR[model], named
    assert "no longer move together" in first["summary"]
    assert any(a["state"] == "resolved" for a in alerts)  # the fault ends at 56 h
    check = alert_validator()
    for a in alerts:
        check.validate(a)  # the alert contract's JSON Schema, firing and resolved
    # the report names the incident and the features behind it
    html = render_report(eng, alerts=alerts)
    joint = html.split('data-section="joint"')[1].split("</section>")[0]
    assert "resolved" in joint and all(n in joint for n in named)


def test_without_timestamps_the_reference_learns_each_hour_from_production():
    ref = reference("eta", timestamps=False)
    assert ref.multivariate["hourly"] is None
    _, raws = events("eta", seed=4)
    assert run(Engine(DetectorSettings(), default_reference=ref), raws) == []
    t0, raws = events("eta", "correlation_flip", seed=4, onset=50.0, end=66.0)
    fired = [a for a in run(Engine(DetectorSettings(), default_reference=ref), raws) if a["state"] == "firing"]
    assert fired and fired[0]["kind"] == "multivariate_drift"


def test_state_survives_a_snapshot_and_window_sums_merge_across_workers():
    model = "eta"
    ref = reference(model)
    t0, raws = events(model, "correlation_flip")
    whole = run(Engine(DetectorSettings(), default_reference=ref), raws)

    # stop halfway (before the fault), snapshot, restore into a fresh engine, go on
    half = len(raws) // 2
    a = Engine(DetectorSettings(), default_reference=ref)
    first = []
    for i in range(0, half, 2000):
        a.ingest_predictions(raws[i : min(i + 2000, half)])
        first += [x.to_dict() for x in a.advance()]
    b = Engine(DetectorSettings(), default_reference=ref)
    b.restore(a.snapshot())
    assert len(b.models[model].joint.history) == len(a.models[model].joint.history) > 0
    rest = first + run(b, raws[half:])
    assert [(x["kind"], x["state"], x["window"]["start"]) for x in rest] == \
           [(x["kind"], x["state"], x["window"]["start"]) for x in whole]

    # two workers each see half of every window's events; their windows merge into the sums of one
    one = Engine(DetectorSettings(), default_reference=ref)
    w1, w2 = Engine(DetectorSettings(), default_reference=ref), Engine(DetectorSettings(), default_reference=ref)
    chunk = raws[:3000]
    one.ingest_predictions(chunk)
    w1.ingest_predictions(chunk[0::2])
    w2.ingest_predictions(chunk[1::2])
    w1.merge_windows(w2)
    lay1, lay = w1.models[model].layout, one.models[model].layout
    by_label = {str(lay1.row_label(r)): r for r in range(lay1.n_rows)}
    assert one.models[model].windows
    for s, w in one.models[model].windows.items():
        merged = w1.models[model].windows[s].mv
        for r in range(lay.n_rows):
            if w.mv["err"][r, 0] == 0:
                continue
            r1 = by_label[str(lay.row_label(r))]
            np.testing.assert_allclose(merged["err"][r1], w.mv["err"][r], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(merged["res"][r1], w.mv["res"][r], rtol=1e-9, atol=1e-9)


def test_baseline_and_replay_command_lines_catch_a_correlation_flip(tmp_path):
    """What users run: ``skewwatch baseline`` on a CSV training table, ``skewwatch replay`` of logged events."""
    import csv
    import subprocess
    import sys

    tr = task_training("eta", 30000, seed=1)
    names = [k for k in tr if k not in ("scores", "predicted_class", "label", "prediction")]
    with open(tmp_path / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows(zip(*(tr[k].tolist() for k in names), strict=True))

    def skewwatch(*args):
        return subprocess.run([sys.executable, "-m", "detector", *args], capture_output=True, text=True, timeout=600)

    r = skewwatch("baseline", "--data", str(tmp_path / "train.csv"), "--out", str(tmp_path / "ref.json"),
                  "--slice-column", *DIMS["eta"], "--model", "eta")
    assert r.returncode == 0, r.stderr
    assert "joint structure: 6 numeric features" in r.stdout and "by hour of day" in r.stdout
    r = skewwatch("baseline", "--data", str(tmp_path / "train.csv"), "--out", str(tmp_path / "off.json"), "--no-multivariate")
    assert r.returncode == 0 and Reference.load(tmp_path / "off.json").multivariate == {}

    _, raws = events("eta", "correlation_flip")
    (tmp_path / "p.jsonl").write_bytes(b"\n".join(raws) + b"\n")
    r = skewwatch("replay", "--reference", str(tmp_path / "ref.json"), "--predictions", str(tmp_path / "p.jsonl"),
                  "--alerts-out", str(tmp_path / "a.jsonl"))
    assert r.returncode == 0, r.stderr
    alerts = [orjson.loads(x) for x in (tmp_path / "a.jsonl").read_bytes().splitlines()]
    fired = [a for a in alerts if a["state"] == "firing"]
    assert [a["kind"] for a in fired] == ["multivariate_drift"], fired
    assert {f["feature"] for f in fired[0]["evidence"]["features"][:2]} & PAIR["eta"]
