"""Label join: arrival-order independence, duplicates, corrections, early labels, TTL and bounds."""

from __future__ import annotations

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.core.engine import Engine
from detector.core.inputs.events import LabelBatch
from detector.core.outcomes.cohort import C
from detector.core.outcomes.labels import LabelJoin, RingStore, delay_bins, hist_quantile
from detector.core.outcomes.monitor import OutcomeSettings, attach_outcomes
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.core.state.codec import decode, encode

T0 = 1795564800.0


def labels(ids, y, rev=None, ts=1000.0):
    n = len(ids)
    return LabelBatch(list(ids), np.full(n, ts), np.asarray(y, dtype=float),
                      np.asarray(rev if rev is not None else [0] * n, dtype=np.int64), [None] * n)


def put(j, ids, ts, model=0):
    n = len(ids)
    return j.add_predictions(model, list(ids), np.asarray(ts, dtype=float), np.full(n, 0.5), np.zeros(n, np.int8),
                             np.zeros((n, 0), np.int16))


# --------------------------------------------------------------------------- unit semantics


def test_match_duplicate_correction_and_stale_revision():
    j = LabelJoin(ttl=1e6, max_pending=10_000, early_hold=100.0)
    put(j, ["a", "b"], [10.0, 20.0])
    (m,) = j.add_labels(labels(["a"], [1], ts=70.0))
    assert m.slots.tolist() == [0] and m.first.tolist() == [True] and m.delay.tolist() == [60.0]
    assert j.add_labels(labels(["a"], [1]))[0].slots.size == 0  # exact duplicate
    (c,) = j.add_labels(labels(["a"], [0], rev=[2]))
    assert c.old.tolist() == [1] and c.label.tolist() == [0] and np.isnan(c.delay[0])
    assert j.add_labels(labels(["a"], [1], rev=[1]))[0].slots.size == 0  # older revision: stale
    (c2,) = j.add_labels(labels(["a"], [1], rev=[2]))  # same revision, other value: last one wins
    assert c2.old.tolist() == [0]
    assert j.counters == {"matched": 1, "duplicates": 2, "corrections": 2, "expired": 0, "evicted": 0, "orphans": 0,
                          "rejected": 0}


def test_same_id_twice_in_one_batch_is_applied_in_order():
    j = LabelJoin(ttl=1e6, max_pending=10_000, early_hold=100.0)
    put(j, ["a"], [10.0])
    rounds = j.add_labels(labels(["a", "a", "a"], [1, 1, 0], rev=[0, 0, 1]))
    assert [r.first.tolist() for r in rounds] == [[True], [], [False]] and rounds[2].old.tolist() == [1]
    assert j.counters["matched"] == 1 and j.counters["duplicates"] == 1 and j.counters["corrections"] == 1


def test_early_labels_wait_then_become_orphans():
    j = LabelJoin(ttl=1e6, max_pending=10_000, early_hold=100.0, max_early=3)
    j.add_labels(labels(["x", "y"], [1, 0], ts=500.0))
    j.add_labels(labels(["x"], [0], rev=[1], ts=520.0))  # correction while still held
    _, m = put(j, ["x"], [450.0])
    assert m.label.tolist() == [0] and m.delay.tolist() == [50.0]  # the held label's own ts
    j.expire(599.0)
    assert j.counters["orphans"] == 0 and len(j.early) == 1
    j.expire(601.0)
    assert j.counters["orphans"] == 1 and not j.early
    j.add_labels(labels(["p", "q", "r", "s"], [1, 1, 1, 1], ts=700.0))  # bound: the oldest held one goes
    assert len(j.early) == 3 and j.counters["orphans"] == 2


def test_ttl_expiry_is_counted_exactly_once():
    j = LabelJoin(ttl=100.0, max_pending=100_000, early_hold=0.0)
    ids = [f"p{i}" for i in range(1000)]
    put(j, ids, np.arange(1000.0))
    j.add_labels(labels(ids[::2], [1] * 500, ts=1000.0))  # even ids labelled
    assert j.expire(500.0) == 200  # odd ids with ts < 400
    assert j.expire(500.0) == 0
    assert j.expire(5000.0) == 300
    assert j.counters["expired"] == 500 and j.counters["matched"] == 500 and len(j.store) == 0
    assert j.coverage == 0.5
    j.add_labels(labels(["p3"], [1], ts=5000.0))  # its prediction is gone: held, then an orphan
    j.expire(5000.1)
    assert j.counters["orphans"] == 1 and j.counters["expired"] == 500


def test_max_pending_evicts_oldest_and_counts_unlabelled_only():
    j = LabelJoin(ttl=1e9, max_pending=1000, early_hold=0.0)
    put(j, [f"a{i}" for i in range(1000)], np.arange(1000.0))
    j.add_labels(labels([f"a{i}" for i in range(10)], [1] * 10))
    put(j, [f"b{i}" for i in range(50)], np.arange(1000.0, 1050.0))
    assert len(j.store) == 1000 and j.store.evicted == 40  # 50 oldest dropped, 10 of them labelled
    assert j.store.get_many(["a0", "a49", "a50", "b49"]).tolist()[:2] == [-1, -1]
    assert j.store.get_many(["a50", "b49"]).min() >= 0


def test_retried_prediction_keeps_the_first_copy():
    s = RingStore(ttl=1e9, max_pending=100, initial=4)
    z = np.zeros((3, 0), np.int16)
    st = s.put_many(0, ["a", "b", "a"], np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3]), np.zeros(3, np.int8), z)
    assert st.tolist() == [True, True, False]
    st = s.put_many(0, ["b", "c"], np.array([4.0, 5.0]), np.array([0.4, 0.5]), np.zeros(2, np.int8), z[:2])
    assert st.tolist() == [False, True]
    assert s.score[s.get_many(["a", "b", "c"])].tolist() == [0.1, 0.2, 0.5] and s.pending == 3


def test_ring_growth_and_state_roundtrip_keep_every_id():
    j = LabelJoin(ttl=1e9, max_pending=20_000, early_hold=10.0)
    for k in range(5):  # grows 16384 -> 20000, then wraps around evicting the oldest
        put(j, [f"{k}-{i}" for i in range(9000)], np.full(9000, float(k)))
    assert len(j.store) == 20_000 and j.store.evicted == 25_000
    j2 = LabelJoin(ttl=1e9, max_pending=20_000, early_hold=10.0)
    j2.load_state(decode(encode(j.to_state())))  # through the plain state format
    probe = ["0-5", "3-8999", "4-0", "nope"]
    assert (j2.store.get_many(probe) >= 0).tolist() == (j.store.get_many(probe) >= 0).tolist() == [False, True, True, False]
    assert len(j2.store) == len(j.store) and j2.counters == j.counters
    # a store configured smaller keeps the newest records of a larger state (the bound is the config's)
    j3 = LabelJoin(ttl=1e9, max_pending=1000, early_hold=10.0)
    j3.load_state(decode(encode(j.to_state())))
    assert len(j3.store) == 1000 and (j3.store.get_many(["4-8999", "4-7999", "4-7000"]) >= 0).tolist() == [True, False, False]


def test_delay_bins_and_quantiles():
    d = np.array([-5.0, 0.5, 1.0, 59.0, 3600.0, 1e8])
    assert delay_bins(d).tolist()[:3] == [0, 0, 1]
    h = np.bincount(delay_bins(np.geomspace(10, 10000, 1001)), minlength=30).astype(float)
    assert 250 < hist_quantile(h, 0.5) < 400 and 4000 < hist_quantile(h, 0.9) < 6300  # log-uniform: 10^2.5, 10^3.7


# --------------------------------------------------------------------------- order independence through the engine


REF = build_reference({"x": np.random.default_rng(0).normal(size=2000),
                       "region": np.array(["eu", "us"] * 1000, dtype=object),
                       "score": np.random.default_rng(1).random(2000), "y": np.tile([0.0, 1.0], 1000)},
                      label_column="y", score_column="score", slice_columns=["region"])


def _messages(n, seed):
    rng = np.random.default_rng(seed)
    preds, labs, final = [], [], {}
    for i in range(n):
        pid = f"p{i}"
        score = float(rng.integers(0, 1024) / 1024)  # exact binary fractions: sums do not depend on order
        preds.append(orjson.dumps({"prediction_id": pid, "model": "m", "ts": T0 + 10 * i, "features": {"x": 0.1},
                                   "score": score, "decision": "review" if score > 0.5 else "approve",
                                   "slices": {"region": ["eu", "us"][i % 2]}}))
        if rng.random() < 0.2:
            continue  # never labelled
        y = int(rng.integers(0, 2))
        labs.append(orjson.dumps({"prediction_id": pid, "ts": T0 + 10 * i + 5, "label": y}))
        if rng.random() < 0.3:
            labs.append(orjson.dumps({"prediction_id": pid, "ts": T0 + 10 * i + 6, "label": y}))  # duplicate
        if rng.random() < 0.3:
            y = 1 - y
            labs.append(orjson.dumps({"prediction_id": pid, "ts": T0 + 10 * i + 900, "label": y, "revision": 1}))
        final[pid] = y
    return preds, labs, final


def _run(preds, labs, order, cuts):
    eng = Engine(DetectorSettings(), default_reference=REF)
    mon = attach_outcomes(eng, settings=OutcomeSettings(early_label_hold=1e9))
    msgs = [(0, m) for m in preds] + [(1, m) for m in labs]
    msgs = [msgs[i] for i in order]
    i = 0
    while i < len(msgs):  # consecutive messages of one topic go in as one batch (up to a cut)
        k = i + 1
        while k < len(msgs) and msgs[k][0] == msgs[i][0] and k not in cuts:
            k += 1
        batch = [m for _, m in msgs[i:k]]
        (eng.ingest_predictions if msgs[i][0] == 0 else eng.ingest_labels)(batch)
        i = k
    m = mon.models["m"]
    m.age.horizon = 1e9  # pairs matched before the label age is known are held; fold them (all in time)
    for b in m.age.release():
        mon._fold_pairs(m, b)
    (c,) = m.open.values()
    store = mon.join.store
    got = {pid: int(store.label[s]) for pid, s in store.index.items() if not np.isnan(store.label[s])}
    return c, got


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(4, 30), st.integers(0, 10_000), st.randoms(use_true_random=False), st.sets(st.integers(0, 80)))
def test_any_arrival_order_gives_the_same_pairs_and_cohort_counts(n, seed, rnd, cuts):
    preds, labs, final = _messages(n, seed)
    ref_c, ref_pairs = _run(preds, labs, list(range(len(preds) + len(labs))), set())
    order = list(range(len(preds) + len(labs)))
    rnd.shuffle(order)
    c, pairs = _run(preds, labs, order, cuts)
    assert ref_pairs == final and pairs == final
    assert c.cnt[0, C["pos"]] == sum(final.values()) and c.cnt[0, C["lab"]] == len(final)  # the final labels
    # every count of the pairs is order-free; how many *corrections* happened is not (a correction
    # that arrives before the label it corrects makes that label stale instead)
    corr = C["corr"]
    np.testing.assert_array_equal(np.delete(c.cnt, corr, axis=1), np.delete(ref_c.cnt, corr, axis=1))
    np.testing.assert_array_equal(c.rel, ref_c.rel)
    np.testing.assert_array_equal(c.hist, ref_c.hist)
    np.testing.assert_array_equal(c.delay.sum(axis=1), ref_c.delay.sum(axis=1))  # delays: time of the first label to arrive
