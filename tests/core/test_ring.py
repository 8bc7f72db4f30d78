"""The one ring of served predictions (detector.core.outcomes.ring) that the label join, the parity join and the
counterexample library share: bounds, the first copy of an id, expiry in arrival order, state."""

from __future__ import annotations

import numpy as np
import pytest

from detector.core.outcomes.labels import PENDING, RingStore
from detector.core.outcomes.ring import Column, Ring
from detector.core.state.codec import StateError, decode, encode


def ring(max_rows: int = 8, **kw) -> Ring:
    cols = {"ts": Column(np.float64), "y": Column(np.float64, fill=np.nan), "codes": Column(np.int16, 2, -1),
            "obj": Column(object, fill=None)}
    return Ring(cols, max_rows, initial=2, **kw)


def put(r: Ring, ids: list[str], t0: float = 0.0) -> np.ndarray:
    n = len(ids)
    return r.put(ids, {"ts": t0 + np.arange(n, dtype=float), "codes": np.ones((n, 1), dtype=np.int16),
                       "obj": np.array([{"i": i} for i in ids], dtype=object)})


def test_grows_to_its_bound_then_the_oldest_leave_and_are_seen_leaving() -> None:
    r = ring(max_rows=5)
    assert r.cap == 2
    dropped: list[list[str]] = []
    assert put(r, ["a", "b", "c"]).all() and r.cap == 4
    ids_before = r.ids.copy()
    r.put(["d", "e", "f", "g"], {"ts": np.arange(3.0, 7.0)}, on_drop=lambda s: dropped.append(list(ids_before[s])))
    assert r.cap == 5 and len(r) == 5
    assert sorted(r.index) == ["c", "d", "e", "f", "g"] and dropped == [["a", "b"]]
    assert r.y[r.index["g"]] != r.y[r.index["g"]]  # a column the batch did not give holds its fill (NaN)
    assert r.codes[r.index["a" if "a" in r.index else "c"]].tolist() == [1, -1]  # narrower codes: the rest is filled
    assert all(r.obj[s] is None for s in range(r.cap) if r.ids[s] is None)  # rows that left let go of their objects


def test_the_first_copy_of_an_id_stays_whether_it_comes_again_later_or_twice_in_one_batch() -> None:
    r = ring()
    put(r, ["a", "b"])
    stored = r.put(["b", "c", "c", "d"], {"ts": np.array([9.0, 10.0, 11.0, 12.0])}, dead={"y": -1.0})
    assert stored.tolist() == [False, True, False, True]
    assert r.ts[r.index["b"]] == 1.0 and r.ts[r.index["c"]] == 10.0
    dead = [s for s in r.order().tolist() if r.ids[s] is None]
    assert len(dead) == 1 and r.y[dead[0]] == -1.0  # the later copy holds a slot, marked dead, never indexed
    assert np.array_equal(r.slots(["a", "zz", "d"]), [r.index["a"], -1, r.index["d"]])


def test_a_batch_longer_than_the_ring_keeps_its_newest_rows() -> None:
    r = ring(max_rows=3)
    stored = put(r, [f"p{i}" for i in range(5)])
    assert stored.tolist() == [False, False, True, True, True] and sorted(r.index) == ["p2", "p3", "p4"]


def test_expiry_walks_in_arrival_order() -> None:
    r = ring(max_rows=100)
    r.put(["a", "b", "c", "d"], {"ts": np.array([1.0, 5.0, 2.0, 9.0])})
    assert r.expire(4.0) == 1 and sorted(r.index) == ["b", "c", "d"]  # "c" is old but waits behind "b"
    assert r.expire(6.0) == 2 and sorted(r.index) == ["d"]


def test_the_byte_budget_drops_the_oldest_rows() -> None:
    r = ring(max_rows=1000, max_bytes=10 * 50, row_bytes=50)
    put(r, [f"id{i:04d}" for i in range(30)])
    assert r.nbytes <= 500 and len(r.index) >= 1 and "id0029" in r.index and "id0000" not in r.index
    assert r.id_bytes == sum(map(len, r.index))


def test_state_round_trips_through_the_codec_and_is_checked() -> None:
    r = ring()
    put(r, ["a", "b", "c"])
    st = r.to_state()
    del st["obj"]  # object columns are not state: a restored ring takes them from defaults
    back = ring()
    back.load_state(decode(encode(st)), "test ring", defaults={"obj": None})
    assert back.index == {"a": 0, "b": 1, "c": 2} and back.ts[:3].tolist() == [0.0, 1.0, 2.0]
    assert back.codes[:3].tolist() == [[1, -1]] * 3
    bad = dict(st, codes=np.zeros((3, 1), dtype=np.int16))
    with pytest.raises(StateError, match="codes"):
        ring().load_state(bad, "test ring", defaults={"obj": None})
    ring().load_state(bad, "test ring", defaults={"obj": None}, narrow=("codes",))  # allowed when declared
    with pytest.raises(StateError, match="ids"):
        ring().load_state(dict(st, ids=[1, 2, 3]), "test ring")


def test_the_label_store_keeps_its_state_layout_and_reads_states_from_before_float_labels() -> None:
    s = RingStore(ttl=100.0, max_pending=10, dims=1)
    s.put_many(0, ["a", "b"], np.array([1.0, 2.0]), np.array([0.1, 0.9]), np.array([0, 1], dtype=np.int8),
               np.zeros((2, 1), dtype=np.int16))
    st = s.to_state()
    assert set(st) == {"model", "ts", "score", "pred", "label", "rev", "counted", "aux", "codes", "ids", "ttl",
                       "max_pending", "evicted", "dims"}
    old = dict(st, label=np.array([-1, 1], dtype=np.int8))  # int8 labels: -1 pending
    del old["aux"]
    back = RingStore(ttl=100.0, max_pending=10)
    back.load_state(decode(encode(old)))
    rows = back.read(back.get_many(["a", "b"]))
    assert np.isnan(rows.label[0]) and rows.label[1] == 1.0 and rows.aux.tolist() == [-1, -1] and back.dims == 1
    assert back.pending == 1 and back.expire(102.0) == 1 and back.pending == 0  # "a" expired unlabelled
    assert np.isnan(PENDING)
