"""The sidecar's error routing without a broker: poison messages become dead letters with their
source position and reason, their batch-mates are folded, and nothing raises out of a handler."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from detector.config import Config
from detector.core.reference.build import build_reference
from detector.kafka.sidecar import Message, Sidecar

T = 1795615200.0


@pytest.fixture(scope="module")
def ref():
    rng = np.random.default_rng(2)
    n = 2000
    return build_reference({"amount": rng.lognormal(3, 1, n).round(2),
                            "country": np.array(rng.choice(["DE", "FR"], n), dtype=object),
                            "score": rng.random(n).round(3), "label": (rng.random(n) < 0.2).astype(float)},
                           score_column="score", label_column="label")


def pred(i, **kw):
    e = {"prediction_id": f"p{i}", "model": "m", "ts": T + i, "features": {"amount": 12.0, "country": "DE"},
         "score": 0.3, "decision": "approve", "slices": {"region": "eu"}}
    e.update(kw)
    return json.dumps(e).encode()


def msgs(topic, values, start=0):
    return [Message(topic, 0, start + k, v, f"k{start + k}".encode()) for k, v in enumerate(values)]


def sidecar(ref):
    """A worker's sidecar holding partition 0 (unit ``p0``) of the three input topics."""
    side = Sidecar(Config(), {}, ref, "w1")
    side.set_partitions(dict.fromkeys(("predictions", "labels", "features"), 1))
    side.add_unit(side.new_unit("p0"), ["predictions:0", "labels:0", "features:0"])
    return side


def handler(side, topic):
    return lambda ms: side.on_messages(topic, 0, ms)


def test_poison_predictions_are_dead_lettered_and_batch_mates_folded(ref):
    side = sidecar(ref)
    poison = {2: pred(900, decision=["x"]), 5: b'{"prediction_id": "q", "model": "m", "ts": 1e999, "features": {}}',
              7: b"[" * 50_000, 9: pred(901, slices={"region": {"a": 1}}), 11: pred(902, score=9 * 10**399)}
    values = [poison.get(k, pred(k)) for k in range(14)]
    values[12] = b"[" + b",".join([pred(100), pred(101, model_version=[1]), pred(102)]) + b"]"  # envelope
    out = side.on_messages("predictions", 0, msgs("predictions", values))
    got = {(m.offset, e.reason): m for m, e in out.dlq}
    assert set(got) == {(2, "bad_field"), (5, "bad_timestamp"), (7, "invalid_json"), (9, "bad_field"),
                        (11, "bad_score"), (12, "bad_field")}, sorted(got)
    for (off, _), m in got.items():
        assert m.topic == "predictions" and m.partition == 0 and m.key == f"k{off}".encode()
        if off != 12:
            assert m.value == values[off]  # the producer's exact bytes
    assert orjson.loads(got[(12, "bad_field")].value)["prediction_id"] == "p101"  # only the bad envelope item
    assert side.units["p0"].engine.counters.predictions == 14 - 5 - 1 + 2
    assert side.dlq_total == 6


def test_poison_labels_and_offline_features_are_dead_lettered(ref):
    side = sidecar(ref)
    unit = side.units["p0"]
    side.on_messages("predictions", 0, msgs("predictions", [pred(k) for k in range(4)]))
    labels = [json.dumps({"prediction_id": "p0", "ts": T + 60, "label": 1}).encode(),
              b'{"prediction_id": "p1", "ts": 1795615260, "label": 1, "revision": NaN}',
              json.dumps({"prediction_id": "p2", "ts": T + 60, "label": 0, "revision": 2}).encode()]
    out = side.on_messages("labels", 0, msgs("labels", labels))
    assert [(m.offset, e.reason) for m, e in out.dlq] == [(1, "bad_field")]
    unit.advance(T + 2 * 3600)  # labels reach the join once event time passes their window
    assert unit.gate.monitor.join.counters["matched"] == 2
    feats = [json.dumps({"prediction_id": "p0", "ts": T, "features": {"amount": 9 * 10**399, "country": ["DE"]}}).encode(),
             json.dumps({"prediction_id": ["p1"], "ts": T, "features": {}}).encode()]
    out = side.on_messages("features", 0, msgs("features", feats))
    assert [(m.offset, e.reason) for m, e in out.dlq] == [(1, "bad_field")]
    assert unit.engine.counters.feature_events == 1


def test_a_bug_in_ingest_dead_letters_the_batch_instead_of_stopping_the_worker(ref, monkeypatch):
    side = sidecar(ref)
    unit = side.units["p0"]

    def boom(raws):
        raise RuntimeError("simulated defect")

    monkeypatch.setattr(unit.engine, "ingest_labels", boom)
    out = side.on_messages("labels", 0, msgs("labels", [b'{"prediction_id": "p0", "ts": 1795615260, "label": 1}'] * 2))
    assert [(m.offset, e.reason) for m, e in out.dlq] == [(0, "internal_error"), (1, "internal_error")]
    out = side.on_messages("predictions", 0, msgs("predictions", [pred(0), pred(1)]))  # the worker goes on
    assert out.dlq == [] and unit.engine.counters.predictions == 2


def test_fuzz_through_the_sidecar_every_message_is_folded_or_dead_lettered(ref):
    """Hostile messages on all three topics through the sidecar's handlers: nothing raises, every
    dead letter names its source message, and the well-formed messages around them are folded."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.core.test_hostile_input import _encode, hostile_features, hostile_label, hostile_prediction

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data):
        side = sidecar(ref)
        c = side.units["p0"].engine.counters
        draw = data.draw
        for topic, strat, count in (
                ("predictions", hostile_prediction, lambda: c.predictions),
                ("labels", hostile_label, lambda: c.labels),
                ("features", hostile_features, lambda: c.feature_events)):
            bad = _encode(draw, [draw(strat(50 + i)) for i in range(draw(st.integers(1, 3)))])
            good = {"predictions": [pred(k) for k in range(3)],
                    "labels": [json.dumps({"prediction_id": f"p{k}", "ts": T + 60, "label": 1}).encode() for k in range(3)],
                    "features": [json.dumps({"prediction_id": f"p{k}", "ts": T, "features": {"amount": 1.0}}).encode()
                                 for k in range(3)]}[topic]
            values = [good[0], *bad, good[1], good[2]]
            before = count()
            out = handler(side, topic)(msgs(topic, values, start=100))
            offsets = {m.offset for m, _ in out.dlq}
            assert offsets <= set(range(101, 101 + len(bad))), (topic, sorted(offsets))
            assert all(m.topic == topic and e.reason and e.detail for m, e in out.dlq)
            assert count() - before >= 3  # the well-formed batch-mates

    check()


def test_column_batches_skip_redelivered_offsets_and_dead_letter_empty_and_oversized(ref):
    from detector.kafka.unit import Batch

    side = sidecar(ref)
    unit = side.units["p0"]
    vals = [pred(k) for k in range(40)]
    assert side.on_batch(Batch("predictions", 0, list(range(40)), vals, [None] * 40)).dlq == []
    assert unit.engine.counters.predictions == 40 and unit.offsets["predictions:0"] == 39
    # a redelivery that starts before the last folded offset: only the new part is folded
    out = side.on_batch(Batch("predictions", 0, list(range(30, 50)), [pred(k) for k in range(30, 50)], [None] * 20))
    assert out.dlq == [] and unit.engine.counters.predictions == 50 and unit.duplicates == 10
    # offsets out of order (a seek within a batch), a tombstone, an empty and an oversized message
    big = b'{"x": "' + b"a" * (Config().kafka.max_message_bytes + 1) + b'"}'
    out = side.on_batch(Batch("predictions", 0, [50, 51, 45, 52, 53, 54], [pred(50), None, pred(45), b"", big, pred(54)],
                              [b"k50", b"k51", b"k45", b"k52", b"k53", b"k54"]))
    assert sorted((m.offset, m.key, e.reason) for m, e in out.dlq) == [(51, b"k51", "empty_message"), (52, b"k52", "empty_message"),
                                                                       (53, b"k53", "oversized")]
    assert unit.engine.counters.predictions == 52 and unit.duplicates == 11 and unit.offsets["predictions:0"] == 54


def test_the_worker_gathers_faust_batches_into_columns_per_topic_partition_until_a_fold_is_due():
    from types import SimpleNamespace

    from detector.kafka.worker import Worker

    def ev(topic, part, off):
        return SimpleNamespace(message=SimpleNamespace(topic=topic, partition=part, offset=off, value=f"{topic}{part}{off}".encode(),
                                                       key=b"k"))

    w = Worker.__new__(Worker)  # the gathering alone: no Faust app, no broker
    w.pending, w.fold_bytes, w.hold, w.hold_behind, w.backlogged = {}, 9, 1.0, 5.0, set()
    order = [("p", 0, 5), ("p", 1, 7), ("p", 0, 6), ("l", 0, 1), ("p", 1, 8), ("p", 0, 7)]
    assert w._gather([ev(*o) for o in order[:3]], now=100.0) == []  # 6 and 3 bytes waiting, nothing old yet
    due = w._gather([ev(*o) for o in order[3:]], now=100.5)
    assert due == [("p", 0)]  # 9 bytes: due; the others wait
    groups = {k: p.batch for k, p in w.pending.items()}
    assert list(groups) == [("p", 0), ("p", 1), ("l", 0)]  # in order of first appearance
    assert groups[("p", 0)].offsets == [5, 6, 7] and groups[("p", 0)].values == [b"p05", b"p06", b"p07"]
    assert groups[("p", 1)].offsets == [7, 8] and groups[("l", 0)].keys == [b"k"]
    assert groups[("p", 1)].message(1).value == b"p18"
    assert w._due(100.9) == [("p", 0)] and w._due(101.0) == [("p", 0), ("p", 1)]  # ("p", 1) waited `hold` since 100.0
    assert w._due(0.0, everything=True) == [("p", 0), ("p", 1), ("l", 0)]
    # while more of a partition waits at the broker, it keeps gathering up to `hold_behind`
    ends = {("p", 0): 8, ("p", 1): 50, ("l", 0): 2}  # ("p", 1): read up to offset 8 of 50
    w.app = SimpleNamespace(consumer=SimpleNamespace(highwater=lambda tp: ends[(tp.topic, tp.partition)]))
    assert w._due(101.0) == [("p", 0)] and w._due(104.9) == [("p", 0), ("l", 0)]
    assert w._due(105.0) == [("p", 0), ("p", 1), ("l", 0)]
    ends[("p", 1)] = 9  # read to its end after a backlog: its tail folds at once, not after `hold`
    assert w._due(100.1) == [("p", 0), ("p", 1)] and w._due(100.1) == [("p", 0), ("p", 1)]  # (asking changes nothing)
    assert w._taken(("p", 1)).batch.offsets == [7, 8] and ("p", 1) not in w.pending  # folded: not behind any more
    w._gather([ev("p", 1, 9)], now=100.2)
    assert w._due(101.1) == [("p", 0)] and w._due(101.2) == [("p", 0), ("p", 1)]  # `hold` again
    ends[("p", 1)] = 50
    assert w._due(100.3) == [("p", 0)] and ("p", 1) in w.backlogged
    assert w._taken(("p", 1)) is not None and ("p", 1) in w.backlogged  # folded while behind: its tail will not wait
    ends[("p", 1)] = 9
    w._gather([ev("p", 1, 8)], now=100.4)
    assert w._due(100.4) == [("p", 0), ("p", 1)]  # the last part of the backlog: at once
    assert w._taken(("p", 1)) is not None and ("p", 1) not in w.backlogged
    w._gather([ev("p", 1, 9)], now=100.0)
    w.app = None  # no consumer (not assigned, not started): `hold`
    assert w._due(101.0) == [("p", 0), ("p", 1)] and w._due(100.9) == [("p", 0)]


def _bench_unit_fold(monkeypatch, tries, values):
    """Fold ``values`` as one first batch of a fresh unit (bench model); the general path's inputs."""
    import detector.core.inputs.ingest as ingest_mod
    import detector.kafka.unit as unit_mod
    from detector.bench.workload import reference

    seen: list[int] = []
    real = ingest_mod.parse_messages
    monkeypatch.setattr(ingest_mod, "parse_messages", lambda raws: (seen.append(len(raws)), real(raws))[1])
    monkeypatch.setattr(unit_mod, "HEAD_TRIES", tries)
    side = Sidecar(Config(), {}, reference(n=20_000), "w1")
    side.set_partitions(dict.fromkeys(("predictions", "labels", "features"), 1))
    side.add_unit(side.new_unit("p0"), ["predictions:0", "labels:0", "features:0"])
    out = side.on_messages("predictions", 0, msgs("predictions", values))
    return side, out, seen


def test_a_units_first_large_batch_folds_its_head_alone_so_the_rest_takes_the_fast_decoders(monkeypatch):
    """Until the engine has chosen its fast decoders, the general (dict) path would take a whole
    first fold: the unit folds the batch's head first, and the tail goes the fast way - with the
    same dead letters (at the right offsets), counts and window contents as one fold."""
    from detector.bench.workload import make_events

    values = make_events(4000)  # ~2.5 MB: what a worker gathers for one fold
    values[10] = b'{"prediction_id": "x"'  # broken JSON in the head
    values[3000] = pred(3000, decision=["x"])  # a bad field in the tail
    got = {}
    for tries in (0, 3):
        side, out, seen = _bench_unit_fold(monkeypatch, tries, values)
        eng = side.units["p0"].engine
        (ms,) = eng.models.values()
        cnt = {s: (int(w.num.sum()), int(w.cat.sum()), float(w.sx.sum())) for s, w in sorted(ms.windows.items())}
        got[tries] = (sorted((m.offset, e.reason) for m, e in out.dlq), eng.counters.predictions, cnt)
        assert eng.fast_decoders_chosen  # after the first fold either way
        if tries:
            assert side.units["p0"].heads == 1
            # the general path saw the head (the 1,000 events a model's layout is inferred from)
            # and then only the message it owns
            assert seen[0] == 1000 and sum(seen[1:]) <= 2, seen
        else:
            assert seen[0] == len(values)
    assert got[0][0] == [(10, "invalid_json"), (3000, "bad_field")]
    assert got[3][:2] == got[0][:2] and got[3][1] == len(values) - 2
    assert got[3][2].keys() == got[0][2].keys()
    for s, (num, cat, sx) in got[0][2].items():
        assert got[3][2][s][:2] == (num, cat)
        assert got[3][2][s][2] == pytest.approx(sx, rel=1e-12)


def test_the_head_split_is_tried_a_few_times_only_and_never_for_small_batches(monkeypatch):
    from detector.bench.workload import make_events

    side, _, seen = _bench_unit_fold(monkeypatch, 3, make_events(1500))  # the head would be most of it
    assert side.units["p0"].heads == 0 and seen == [1500]
    unit = side.units["p0"]
    unit.engine._typed = unit.engine._arrow = None  # as for a model the fast decoders do not serve
    unit.heads = 3
    vals = make_events(4000, seed=8, start=T + 600)
    seen.clear()
    side.on_messages("predictions", 0, msgs("predictions", vals, start=1500))
    assert unit.heads == 3 and seen[0] == len(vals)


def test_an_envelope_counts_as_its_items_in_the_head(monkeypatch):
    from detector.bench.workload import make_events

    ev = make_events(5000)
    envelopes = [b"[" + b",".join(ev[i : i + 100]) + b"]" for i in range(0, len(ev), 100)]
    side, out, seen = _bench_unit_fold(monkeypatch, 3, envelopes)
    assert not out.dlq and side.units["p0"].engine.counters.predictions == 5000
    assert side.units["p0"].heads == 1 and seen[0] == 10 and sum(seen[1:]) == 0  # 10 envelopes = 1,000 events
