"""Contract checks every task's counters must pass: additive, mergeable, plain-data state, bounded."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.outcomes.tasks import make_task
from detector.core.outcomes.tasks.base import Counters, labels_moved
from detector.core.outcomes.tasks.reference import (
    binary_reference,
    multiclass_reference,
    regression_reference,
)

RNG = np.random.default_rng(7)
N = 3000
CLASSES = ["a", "b", "c", "d"]


def _tasks():
    y = RNG.normal(10, 3, N)
    pred = y + RNG.normal(0, 1, N)
    x = RNG.uniform(0, 1, N)
    reg = regression_reference(y, pred, {"x": x, "k": RNG.choice(["u", "v"], N).astype(object)})
    lab = RNG.choice(CLASSES, N)
    S = RNG.dirichlet(np.ones(4), N)
    prd = np.array(CLASSES)[S.argmax(1)]
    mc = multiclass_reference(lab, prd, [dict(zip(CLASSES, r, strict=True)) for r in S.tolist()])
    s = RNG.uniform(0, 1, N)
    bi = binary_reference((RNG.uniform(0, 1, N) < s).astype(int), s)
    return {"regression": reg, "multiclass": mc, "binary": bi}


REFS = _tasks()


def _events(task: str, n: int, rng: np.random.Generator) -> tuple[list[dict], list]:
    if task == "regression":
        y = rng.normal(10, 3, n)
        ev = [{"prediction": float(v), "features": {"x": float(u)}} for v, u in zip(y + rng.normal(0, 1, n), rng.uniform(0, 1, n), strict=True)]
        return ev, y.tolist()
    if task == "multiclass":
        S = rng.dirichlet(np.ones(4), n)
        ev = [{"scores": dict(zip(CLASSES, r, strict=True))} for r in S.tolist()]
        return ev, rng.choice(CLASSES + ["zzz"], n).tolist()
    s = rng.uniform(0, 1, n)
    return [{"score": float(v)} for v in s], (rng.uniform(0, 1, n) < s).astype(int).tolist()


def _fold(task, events, labels, ridx):
    c = task.counters(4)
    p = task.prediction_columns(events)
    if task.name == "binary":
        p.klass = (p.value >= 0.5).astype(np.int64)
    feats = {"x": np.array([e.get("features", {}).get("x", np.nan) for e in events])}
    task.add_predictions(c, ridx, p, feats)
    lab = task.decode_labels(labels)
    k = np.flatnonzero(lab.ok)
    task.add_pairs(c, ridx[k], p.value[k], p.klass[k], lab.y[k], np.ones(k.size))
    return c


@pytest.mark.parametrize("name", ["binary", "multiclass", "regression"])
def test_counters_of_two_halves_merge_to_the_counters_of_the_whole(name):
    task = make_task(REFS[name])
    rng = np.random.default_rng(1)
    ev, lab = _events(name, 800, rng)
    ridx = np.stack([np.zeros(800, int), 1 + rng.integers(0, 3, 800)], axis=1)
    whole = _fold(task, ev, lab, ridx)
    a = _fold(task, ev[:300], lab[:300], ridx[:300])
    b = _fold(task, ev[300:], lab[300:], ridx[300:])
    a.merge(b)
    for k in whole.arrays:
        np.testing.assert_allclose(a[k], whole[k], atol=1e-9, err_msg=k)
    # every row's counts add up: row 0 is the sum of the slice rows (one slice dimension)
    for k, arr in whole.arrays.items():
        np.testing.assert_allclose(arr[0], arr[1:].sum(0), atol=1e-9, err_msg=k)


NEW_LABEL = {"binary": None, "multiclass": "c", "regression": 99.5}


@pytest.mark.parametrize("name", ["binary", "multiclass", "regression"])
def test_a_correction_moves_a_pair_without_double_counting(name):
    task = make_task(REFS[name])
    ev, lab = _events(name, 50, np.random.default_rng(2))
    ridx = np.zeros((50, 1), dtype=np.int64)
    new_label = NEW_LABEL[name] if name != "binary" else 1 - lab[0]
    corrected = _fold(task, ev, lab, ridx)
    p = task.prediction_columns(ev)
    if task.name == "binary":
        p.klass = (p.value >= 0.5).astype(np.int64)
    old, new = task.decode_labels(lab[:1]), task.decode_labels([new_label])
    task.add_pairs(corrected, ridx[:1], p.value[:1], p.klass[:1], old.y, -np.ones(1))
    task.add_pairs(corrected, ridx[:1], p.value[:1], p.klass[:1], new.y, np.ones(1))
    direct = _fold(task, ev, [new_label] + lab[1:], ridx)
    for k in direct.arrays:
        np.testing.assert_allclose(corrected[k], direct[k], atol=1e-9, err_msg=k)


@pytest.mark.parametrize("name", ["binary", "multiclass", "regression"])
def test_state_is_plain_data_and_round_trips(name):
    task = make_task(REFS[name])
    rng = np.random.default_rng(3)
    ev, lab = _events(name, 200, rng)
    c = _fold(task, ev, lab, np.zeros((200, 1), dtype=np.int64) + np.array([[0]]))
    st = c.to_state()
    assert set(st) == {"format", "task", "arrays"}
    for a in st["arrays"].values():
        assert isinstance(a["data"], bytes) and isinstance(a["dtype"], str) and isinstance(a["shape"], list)
    back = Counters.from_state(st)
    for k in c.arrays:
        np.testing.assert_array_equal(back[k], c[k])
    assert back.nbytes == c.nbytes


def test_merge_of_incompatible_counters_names_both_shapes():
    a = make_task(REFS["regression"]).counters(2)
    b = make_task(REFS["multiclass"]).counters(2)
    with pytest.raises(ValueError, match="cannot merge multiclass counters .* into regression counters"):
        a.merge(b)
    with pytest.raises(ValueError, match="format"):
        Counters.from_state({"format": "other/9", "task": "x", "arrays": {}})


@pytest.mark.parametrize("name,limit", [("binary", 4000), ("multiclass", 3000), ("regression", 3000)])
def test_memory_per_slice_row_is_bounded_as_documented(name, limit):
    c = make_task(REFS[name]).counters(10)
    assert c.nbytes / 10 <= limit


def test_references_are_json_and_rebuild_the_same_task():
    for name, ref in REFS.items():
        back = orjson.loads(orjson.dumps(ref))
        t = make_task(back)
        assert t.name == name


def test_labels_moved_reads_only_label_drift_results_with_half_the_effect():
    from detector.core.checks.window import Result

    def res(kind, value, p, thr):
        v = np.asarray(value, dtype=float)
        return Result(kind, None, "s", v, np.ones(v.size, bool), np.zeros(v.size, bool), np.zeros(v.size, bool),
                      np.asarray(p, dtype=float), thr, lambda i: {}, lambda i: "", effect=np.abs(np.log(v)) if thr > 1 else np.abs(v))

    moved = labels_moved([res("label_drift", [1.3, 1.1, 1.3], [0.001, 0.001, 0.5], 1.5), res("performance", [9, 9, 9], [0, 0, 0], 1.5)])
    assert moved.tolist() == [True, False, False]
    assert labels_moved([res("label_drift", [0.2, 0.1], [0.0, 0.0], 0.25)]).tolist() == [True, False]


@pytest.mark.parametrize("array,why", [
    ({"dtype": "|O", "shape": [1], "data": b"\0" * 8}, "dtype"),  # object arrays are never read
    ({"dtype": "<U2", "shape": [1], "data": b"\0" * 8}, "dtype"),
    ({"dtype": "<f8", "shape": [10**18], "data": b""}, "bytes for shape"),  # nothing is allocated for it
    ({"dtype": "<f8", "shape": [2], "data": b"\0" * 8}, "bytes for shape"),
    ({"dtype": "<f8", "shape": [-1], "data": b"\0" * 8}, "shape"),
    ({"dtype": "<f8", "shape": [1], "data": "not bytes"}, "bytes for shape"),
    ([1, 2], "must be a map"),
])
def test_forged_counters_state_is_refused_with_a_state_error(array, why):
    from detector.core.state.codec import StateError

    with pytest.raises(StateError, match=why):
        Counters.from_state({"format": "skewwatch.counters/1", "task": "binary", "arrays": {"n": array}})
    with pytest.raises(StateError):
        Counters.from_state({"format": "skewwatch.counters/1", "task": None, "arrays": {}})
