"""Counterexample library: exact ranking under corrections and early labels, bounded features, outputs."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.config import Config, ModelConfig
from detector.core.engine import Engine
from detector.core.outcomes.counterexamples import CounterexampleLibrary, counterexamples_for, library_of
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.kafka.local import LocalGroup

T0 = 1795564800.0
H = 3600.0


def reference(n_features: int = 3, leak: bool = False):
    rng = np.random.default_rng(0)
    n = 3000
    y = (rng.random(n) < 0.3).astype(float)
    cols = {f"f{j}": rng.normal(size=n) + (0.3 * j * y) for j in range(n_features)}
    if leak:
        cols["f0"] = y + rng.normal(0, 0.01, n)
    cols.update(region=np.array(rng.choice(["eu", "us"], n), dtype=object), score=rng.random(n), label=y)
    return build_reference(cols, score_column="score", slice_columns=["region"], label_column="label")


def pred(i: int, ts: float, score: float, act: bool, region: str = "eu", n_features: int = 3) -> dict:
    return {"prediction_id": f"p{i:03d}", "model": "m", "ts": ts, "score": score, "threshold": 0.5,
            "decision": "review" if act else "approve", "slices": {"region": region},
            "features": {f"f{j}": float(i + j) for j in range(n_features)}}


def feed(eng: Engine, events: list[tuple[str, dict]]) -> None:
    for topic, e in events:
        (eng.ingest_predictions if topic == "p" else eng.ingest_labels)([orjson.dumps(e)])
        eng.advance()
    filler = [orjson.dumps(pred(900 + k, T0 + H + k * 60.0, 0.1, False)) for k in range(240)]
    eng.ingest_predictions(filler)
    eng.ingest_labels([orjson.dumps({"prediction_id": f"p{900 + k}", "ts": T0 + H + k * 60.0 + 30, "label": 0})
                       for k in range(240)])
    eng.advance()
    eng.flush()


def ranked(eng: Engine, typ: str, sl: dict | None = None) -> list[str]:
    recs = [r for r in counterexamples_for(eng, "m") if r["type"] == typ and r["slice"] == (sl or {})
            and r["cohort"]["start"] == "2026-11-25T00:00:00.000Z"]
    return [r["prediction_id"] for r in sorted(recs, key=lambda r: r["rank"])]


def test_corrections_move_errors_in_and_out_and_early_labels_count():
    eng = Engine(DetectorSettings(), default_reference=reference())
    attach_outcomes(eng)
    ev: list[tuple[str, dict]] = []
    for i, s in enumerate([0.95, 0.9, 0.85, 0.8, 0.7]):  # five confident flags
        ev.append(("p", pred(i, T0 + i * 10, s, True)))
    ev.append(("l", {"prediction_id": "p005", "ts": T0 + 40, "label": 1}))  # label before its prediction
    ev.append(("p", pred(5, T0 + 50, 0.02, False, region="us")))  # a confident miss
    ev += [("l", {"prediction_id": f"p{i:03d}", "ts": T0 + 100 + i, "label": 0}) for i in range(5)]
    # p000 turns out to be fraud after all (correction); p003 was labelled fraud, corrected to legit
    ev += [("l", {"prediction_id": "p000", "ts": T0 + 500, "label": 1, "revision": 2})]
    ev += [("l", {"prediction_id": "p003", "ts": T0 + 90, "label": 1}), ]
    ev.sort(key=lambda t: t[1]["ts"])
    ev.append(("l", {"prediction_id": "p003", "ts": T0 + 600, "label": 0, "revision": 3}))
    feed(eng, ev)
    assert ranked(eng, "false_positive") == ["p001", "p002", "p003", "p004"]  # p000 left the list
    assert ranked(eng, "false_negative") == ["p005"] == ranked(eng, "false_negative", {"region": "us"})
    fp = next(r for r in counterexamples_for(eng, "m") if r["prediction_id"] == "p001" and r["slice"] == {})
    assert fp["margin"] == pytest.approx(0.4) and fp["label"] == 0 and fp["decision"] == "act" and fp["rank"] == 1


def test_features_are_bounded_ordered_by_audit_and_may_have_left_the_ring():
    ref = reference(n_features=40, leak=True)
    eng = Engine(DetectorSettings(), default_reference=ref)
    mon = attach_outcomes(eng)
    lib = library_of(eng)
    assert isinstance(lib, CounterexampleLibrary) and lib is mon.listeners[1]
    lib.retain_max = 3  # only the three newest predictions keep their features
    ev = [("p", pred(i, T0 + i * 10, 0.9 - i * 0.01, True, n_features=40)) for i in range(6)]
    ev += [("l", {"prediction_id": f"p{i:03d}", "ts": T0 + 100 + i, "label": 0}) for i in range(6)]
    feed(eng, ev)
    recs = [r for r in counterexamples_for(eng, "m") if r["slice"] == {}]
    assert [r["prediction_id"] for r in recs] == [f"p{i:03d}" for i in range(6)]  # ranking is exact regardless
    kept = [r for r in recs if r["features_retained"]]
    gone = [r for r in recs if not r["features_retained"]]
    assert gone and all(r["features"] is None for r in gone)
    for r in kept:
        assert len(r["features"]) == 30
        assert next(iter(r["features"])) == "f0"  # the most predictive feature of the training audit first


def test_output_is_drained_once_and_snapshots_keep_it():
    eng = Engine(DetectorSettings(), default_reference=reference())
    attach_outcomes(eng)
    ev = [("p", pred(i, T0 + i * 10, 0.8, True)) for i in range(3)]
    ev += [("l", {"prediction_id": f"p{i:03d}", "ts": T0 + 100 + i, "label": 0}) for i in range(3)]
    feed(eng, ev)
    lib = library_of(eng)
    restored = Engine(DetectorSettings(), default_reference=reference())
    attach_outcomes(restored)
    restored.restore(eng.snapshot())
    assert len(library_of(restored).pending) == len(lib.pending) == 6  # 3 errors x (all traffic, region=eu)
    out = lib.drain()
    assert len(out) == 6 and lib.drain() == [] and len(lib.recent("m")) == 6
    assert {tuple(r["slice"].items()) for r in out} == {(), (("region", "eu"),)}


def test_the_sidecar_hands_counterexamples_to_its_outbox():
    g = LocalGroup(Config(models={"m": ModelConfig(reference="unused.json", review_capacity=50)}), {"m": reference()}, None,
                   partitions=1)
    assert g.aggregator.engine.adoption.capacity == {"m": 50}
    g.feed("predictions", 0, [orjson.dumps(pred(k, T0 + k * 10, 0.9, True)) for k in range(4)])
    g.feed("labels", 0, [orjson.dumps({"prediction_id": f"p{k:03d}", "ts": T0 + 50 + k, "label": 0}) for k in range(4)])
    g.feed("predictions", 0, [orjson.dumps(pred(100 + k, T0 + H + k * 60, 0.1, False)) for k in range(200)])
    g.feed("labels", 0, [orjson.dumps({"prediction_id": f"p{100 + k:03d}", "ts": T0 + H + k * 60 + 5, "label": 0})
                         for k in range(200)])
    g.finish(quiet=6 * H)  # the unit's joins reach the aggregator, which evaluates the matured cohorts
    assert len(g.counterexamples) == 8 and {r["type"] for r in g.counterexamples} == {"false_positive"}


def test_candidates_stay_bounded_however_many_errors_a_cohort_has():
    eng = Engine(DetectorSettings(), default_reference=reference())
    attach_outcomes(eng)
    eng.ingest_predictions([orjson.dumps(pred(i, T0 + i, 0.5 + i / 1000, True)) for i in range(300)])
    eng.ingest_labels([orjson.dumps({"prediction_id": f"p{i:03d}", "ts": T0 + 400 + i, "label": 0}) for i in range(300)])
    lib = library_of(eng)
    recs = lib.records[("m", T0)]
    assert len(recs) == lib.keep == 20  # the same 20 lead both lists (all traffic and region=eu)
    assert set(recs) == {f"p{i:03d}" for i in range(280, 300)}


def test_a_batch_keeps_each_rows_override_unseen_category_and_version():
    """Rows of one batch share its model version and alerts, but keep their own override and unseen text."""
    rng = np.random.default_rng(1)
    n = 3000
    y = (rng.random(n) < 0.3).astype(float)
    cols = {"f0": rng.normal(size=n) + y, "c0": np.array(rng.choice(["a", "b"], n), dtype=object),
            "region": np.array(rng.choice(["eu", "us"], n), dtype=object), "score": rng.random(n), "label": y}
    ref = build_reference(cols, score_column="score", slice_columns=["region"], label_column="label")
    eng = Engine(DetectorSettings(), default_reference=ref)
    attach_outcomes(eng)
    batch = []
    for i in range(4):
        e = {"prediction_id": f"p{i:03d}", "model": "m", "model_version": "v7", "ts": T0 + i, "score": 0.9 - i * 0.1,
             "threshold": 0.5, "decision": "review", "slices": {"region": "eu"},
             "features": {"f0": float(i), "c0": "zzz" if i == 2 else "a"}}
        if i in (1, 3):
            e["override"] = f"manual-{i}"
        batch.append(orjson.dumps(e))
    eng.ingest_predictions(batch)
    eng.advance()
    feed(eng, [("l", {"prediction_id": f"p{i:03d}", "ts": T0 + 100 + i, "label": 0}) for i in range(4)])
    recs = {r["prediction_id"]: r for r in counterexamples_for(eng, "m") if r["slice"] == {}}
    assert sorted(recs) == ["p000", "p001", "p002", "p003"]
    assert [recs[p]["override"] for p in sorted(recs)] == [None, "manual-1", None, "manual-3"]
    assert {recs[p]["model_version"] for p in recs} == {"v7"}
    assert all(r["features_retained"] and isinstance(r["active_alerts"], list) for r in recs.values())
    assert [recs[p]["features"]["c0"] for p in sorted(recs)] == ["a", "a", "zzz", "a"]
