"""The sidecar's state protocol in memory (:class:`detector.kafka.local.LocalGroup`): exact and order-free.

The same traffic (a feature served in cents from hour 22, labels, offline features) is fed to
groups of 1, 2 and 4 workers, in different batches and topic orders, with checkpoints at
different times, through kills (a replacement with a new worker id restores from the last
checkpoints, and everything since is redelivered) and rebalances. Every run must count every
event once and raise the same alerts - window checks, outcome checks and feature parity. Checks
over the wire against the real worker are in ``test_worker.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import zlib
from collections import Counter
from functools import lru_cache
from typing import Any

import orjson
import pytest

from detector.config import Config
from detector.core.state.codec import StateError
from detector.kafka.checkpoint import assemble, write_checkpoint
from detector.kafka.local import LocalGroup
from detector.kafka.sidecar import AGGREGATOR, Message
from detector.sim import Fault, get_scenario, simulate

P = 4  # input partitions
H = 3600.0

# One test process runs this module (pytest-xdist, tests/conftest.py): the traffic and the one-worker
# baseline every test compares with (~25 s) are cached per process, so split over two they were built twice.
pytestmark = pytest.mark.xdist_group("tests/stream/test_local.py")


@lru_cache(maxsize=1)
def traffic() -> tuple[tuple[float, str, int, bytes], ...]:
    """(ts, kind, partition, message) in event-time order: 30 h at 400/h, amount in cents from hour 22."""
    sc = get_scenario("unit_change", rate_per_hour=400.0, hours=30.0).with_(faults=(Fault("unit_change", 22.0, None),))
    return tuple((ts, kind, zlib.crc32(str(ev["prediction_id"]).encode()) % P, orjson.dumps(ev))
                 for ts, kind, ev in simulate(sc))


@lru_cache(maxsize=1)
def reference() -> Any:
    from detector.cli.demo import demo_reference

    return demo_reference()


def config() -> Config:
    return Config.model_validate({"labels": {"early_label_hold": "30d"}})


def feed(g: LocalGroup, events: Any, slice_s: float = 600.0, order: tuple[str, ...] = ("predictions", "labels", "features"),
         checkpoint_every: int = 3, on_slice: Any = None) -> None:
    """Deliver ``events`` in event-time slices; within a slice, topics in ``order``; checkpoint every few slices."""
    buf: dict[tuple[str, int], list[bytes]] = {}
    cur, n = None, 0

    def flush() -> None:
        nonlocal n
        for kind in order:
            for p in range(P):
                vals = buf.pop((kind, p), [])
                if vals:
                    g.feed(kind, p, vals)
        n += 1
        if n % checkpoint_every == 0:
            g.checkpoint()
        if on_slice is not None:
            on_slice(n)

    for ts, kind, p, raw in events:
        s = ts // slice_s
        if cur is not None and s != cur:
            flush()
        cur = s
        buf.setdefault((kind, p), []).append(raw)
    flush()
    g.checkpoint()


def alert_set(g: LocalGroup) -> set[tuple[str, str, str, str, str]]:
    return {(a.kind, a.feature or "", str(a.slice), a.window["start"], a.state) for a in g.alerts}


def totals(g: LocalGroup) -> dict[str, int]:
    c: Counter[str] = Counter()
    for side in g.sidecars.values():
        for u in side.units.values():
            e = u.engine.counters
            c.update(predictions=e.predictions, labels=e.labels, features=e.feature_events, late=e.late,
                     matched=u.gate.monitor.join.counters["matched"])
    c["aggregated"] = g.aggregator.engine.counters.predictions
    return dict(c)


def expected() -> dict[str, int]:
    kinds = Counter(k for _, k, _, _ in traffic())
    labelled = {orjson.loads(raw)["prediction_id"] for _, k, _, raw in traffic() if k == "labels"}
    return {"predictions": kinds["predictions"], "labels": kinds["labels"], "features": kinds["features"], "late": 0,
            "matched": len(labelled), "aggregated": kinds["predictions"]}


@lru_cache(maxsize=1)
def baseline() -> tuple[frozenset[Any], dict[str, int]]:
    g = LocalGroup(config(), {}, reference(), P, workers=1)
    feed(g, traffic())
    g.finish(quiet=12 * H)
    return frozenset(alert_set(g)), totals(g)


def test_baseline_counts_everything_once_and_sees_every_kind_of_check():
    alerts, counts = baseline()
    assert counts == expected()
    kinds = {k for k, *_ in alerts}
    # input, parity and outcome checks all come through units and aggregator (the scores of a unit change
    # are miscalibrated and lose performance; which outcome statistic breaches first is the detector's call)
    assert {"unit_shift", "feature_parity"} <= kinds and kinds & {"performance", "calibration"}, sorted(alerts)


@pytest.mark.parametrize("workers,slice_s,order,every", [
    (2, 300.0, ("labels", "features", "predictions"), 7),
    (4, 900.0, ("features", "predictions", "labels"), 1),
])
def test_the_same_alerts_whatever_the_group_size_batching_and_topic_order(workers, slice_s, order, every):
    g = LocalGroup(config(), {}, reference(), P, workers=workers)
    feed(g, traffic(), slice_s=slice_s, order=order, checkpoint_every=every)
    g.finish(quiet=12 * H)
    alerts, counts = baseline()
    assert totals(g) == counts
    assert alert_set(g) == alerts


def test_a_killed_worker_is_replaced_under_a_new_id_and_everything_counts_once():
    g = LocalGroup(config(), {}, reference(), P, workers=2)
    events = traffic()
    cut = int(len(events) * 0.6)
    feed(g, events[:cut], checkpoint_every=4)
    for _ts, kind, p, raw in events[cut : cut + 300]:  # steps packed, checkpointed and sent just before the crash (enough
        # events for the robust event-time progress to pass a window boundary)
        g.feed(kind, p, [raw])
    g.checkpoint(g.sidecars["w0"])
    # w0 (it holds the aggregator) did some work after its last checkpoint, then dies
    for _ts, kind, p, raw in events[cut + 300 : cut + 600]:
        g.feed(kind, p, [raw])
    held = sorted(g.sidecars["w0"].units)
    g.kill("w0", "pod-new-name")
    # the consumer restarts from the committed offsets; here: everything of those partitions again
    for kind in ("predictions", "labels", "features"):
        for p in (int(n[1:]) for n in held):
            topic = g.topics[kind]
            vals = [raw for _, k, q, raw in events[: cut + 600] if k == kind and q == p]
            g.redeliver(kind, p, [Message(topic, p, i, v) for i, v in enumerate(vals)])
    g.checkpoint()
    feed(g, events[cut + 600 :], checkpoint_every=3)
    g.finish(quiet=12 * H)
    alerts, counts = baseline()
    assert totals(g) == counts
    assert alert_set(g) == alerts
    side = g.sidecars["pod-new-name"]
    assert sum(u.duplicates for u in side.units.values()) > 0  # redelivered messages were skipped by offset
    assert g.aggregator.duplicates > 0  # steps resent from restored outboxes were skipped by seq


def test_partitions_and_the_aggregator_move_in_a_rebalance_and_their_state_follows():
    g = LocalGroup(config(), {}, reference(), P, workers=1)
    plans = {30: ({"w0": [0, 1], "w1": [2, 3]}, "w1"), 80: ({"w1": [0, 1, 2], "w2": [3]}, "w2"),
             120: ({"w0": [0, 1, 2, 3]}, "w0")}

    def rebalance(n: int) -> None:
        if n in plans:
            g.assign(*plans[n])

    feed(g, traffic(), on_slice=rebalance)
    g.finish(quiet=12 * H)
    alerts, counts = baseline()
    assert totals(g) == counts
    assert alert_set(g) == alerts


class RecordingProducer:
    """Stands in for the Faust producer: appends (key, value) to a log, as one partition would."""

    def __init__(self) -> None:
        self.log: list[tuple[str, bytes | None]] = []

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int, timestamp: Any,
                   headers: Any) -> Any:
        self.log.append((key.decode(), value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def compacted(log: list[tuple[str, bytes | None]]) -> dict[str, bytes]:
    """What log compaction keeps: the last record of every key, tombstoned keys dropped."""
    last: dict[str, bytes | None] = {}
    for k, v in log:
        last[k] = v
    return {k: v for k, v in last.items() if v is not None}


def test_checkpoints_survive_compaction_of_the_state_topic():
    g = LocalGroup(config(), {}, reference(), P, workers=1)
    events = traffic()
    prod = RecordingProducer()
    chunks: dict[str, list[str]] = {}
    side = g.sidecars["w0"]

    async def write_all() -> None:
        for name in [*side.units, AGGREGATOR]:
            chunks[name] = await write_checkpoint(prod, "state", "grp", name, side.checkpoint(name), chunks.get(name),
                                                  chunk_bytes=4096)  # small chunks: many per checkpoint

    for i in range(0, len(events) // 2, 2000):
        feed(g, events[i : i + 2000])
        asyncio.run(write_all())
    assert len(chunks[AGGREGATOR]) > 3
    records = compacted(prod.log)
    assert len(records) < len(prod.log) / 2  # compaction dropped most of the log ...
    replacement = LocalGroup(config(), {}, reference(), P, workers=1)
    new = replacement.sidecars["w0"]
    for name in [*side.units, AGGREGATOR]:
        data, keys = assemble(records, "grp", name)  # ... and kept every chunk the newest manifests name
        assert keys == chunks[name]
        new.restore(name, data)
    for name, u in side.units.items():
        assert new.units[name].offsets == u.offsets and new.units[name].engine.counters == u.engine.counters
    assert new.agg.engine.counters == side.agg.engine.counters
    # a chunk that is gone, or bytes that do not match the manifest, are refused (the unit starts fresh)
    gone = dict(records)
    del gone[chunks["p0"][0]]
    with pytest.raises(StateError, match="missing 1 of"):
        assemble(gone, "grp", "p0")
    bad = dict(records)
    bad[chunks["p0"][0]] = b"\x00" + bad[chunks["p0"][0]][1:]
    with pytest.raises(StateError, match="SHA-256"):
        assemble(bad, "grp", "p0")


def test_a_pickle_or_garbage_where_a_checkpoint_belongs_is_refused_without_running_it(tmp_path):
    import os

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = pickle.dumps(Exploit())
    records = {"grp/p0": evil, "grp/aggregator": zlib.compress(evil)}
    for name in ("p0", "aggregator"):
        with pytest.raises(StateError):
            assemble(records, "grp", name)
    g = LocalGroup(config(), {}, reference(), P, workers=1)
    for name in ("p0", AGGREGATOR):
        with pytest.raises(StateError):
            g.sidecars["w0"].restore(name, evil)
    assert not marker.exists()


def test_hostile_messages_on_the_partials_topic_are_counted_and_block_nothing(tmp_path):
    import os

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    g = LocalGroup(config(), {}, reference(), P, workers=2)
    events = traffic()
    half = len(events) // 2
    feed(g, events[:half])
    forged = [
        ({"skewwatch-kind": "step", "skewwatch-unit": "p1", "skewwatch-seq": "1000000", "skewwatch-part": "0",
          "skewwatch-parts": "1"}, pickle.dumps(Exploit())),  # a pickle where a step belongs, with a huge seq
        ({"skewwatch-kind": "step", "skewwatch-unit": "p2", "skewwatch-seq": "999", "skewwatch-part": "0",
          "skewwatch-parts": "3"}, b"part of nothing"),  # never completed (held, bounded)
        ({"skewwatch-kind": "claim", "skewwatch-unit": "p3", "skewwatch-seq": "1",
          "skewwatch-watermark": "nonsense"}, b""),
        ({"skewwatch-kind": "what"}, b"\x00"),
    ]
    for h, v in forged:
        g.log.append((len(g.log), h, v))
    g.pump()
    agg = g.aggregator
    assert agg.rejected >= 3 and not marker.exists()
    feed(g, events[half:])
    g.finish(quiet=12 * H)
    alerts, counts = baseline()
    assert totals(g) == counts  # p1's real steps were not taken for duplicates of the forged seq
    assert alert_set(g) == alerts


def test_a_forged_watermark_cannot_close_windows_early():
    g = LocalGroup(config(), {}, reference(), P, workers=2)  # the aggregator (w0) does not own p1 or p3
    events = traffic()
    half = len(events) // 2
    feed(g, events[:half])
    agg = g.aggregator
    src = agg.sources["p1"]
    g.log.append((len(g.log), {"skewwatch-kind": "claim", "skewwatch-unit": "p1", "skewwatch-seq": str(int(src["seq"])),
                               "skewwatch-life": src["life"], "skewwatch-watermark": "1e300"}, b""))
    g.log.append((len(g.log), {"skewwatch-kind": "claim", "skewwatch-unit": "p3", "skewwatch-seq": "1",
                               "skewwatch-life": agg.sources["p3"]["life"], "skewwatch-watermark": "1e300"}, b""))
    g.pump()
    assert agg.capped >= 2
    assert agg.sources["p1"]["claim"] < 1e12  # capped near the newest event time seen, and not kept as a maximum
    feed(g, events[half:])
    g.finish(quiet=12 * H)
    alerts, counts = baseline()
    assert totals(g) == counts and agg.engine.counters.late == 0
    assert alert_set(g) == alerts


def test_a_forged_claim_sent_after_a_pause_cannot_close_the_window_a_slower_unit_is_still_filling():
    """The race a loaded machine once hit: a forged claim arriving minutes (of wall time) after the last
    evidence, then the aggregator's own units racing ahead while the forged units are still behind."""
    g = LocalGroup(config(), {}, reference(), P, workers=2)  # w0 holds the aggregator, p0 and p2
    events = traffic()
    half = len(events) // 2
    feed(g, events[:half])
    agg = g.aggregator
    g.time += 600.0  # ten minutes of wall time pass before the forged claims come
    for unit in ("p1", "p3"):
        src = agg.sources[unit]
        g.log.append((len(g.log), {"skewwatch-kind": "claim", "skewwatch-unit": unit, "skewwatch-seq": str(int(src["seq"])),
                                   "skewwatch-life": src["life"], "skewwatch-watermark": "1e300"}, b""))
    g.pump()
    assert agg.capped >= 2
    held = max(agg.sources[u]["step"] for u in ("p1", "p3"))
    rest = events[half:]
    home = next(s for s in g.sidecars.values() if s.agg is not None)
    slices: dict[float, list[tuple[float, str, int, bytes]]] = {}
    for e in rest:
        if e[2] in (0, 2):
            slices.setdefault(e[0] // 600.0, []).append(e)
    for part in slices.values():  # the aggregator's own units take the whole rest; p1 and p3 send nothing
        for kind in ("predictions", "labels", "features"):
            for p in (0, 2):
                vals = [raw for _, k, q, raw in part if k == kind and q == p]
                if vals:
                    g.feed(kind, p, vals)
        g.checkpoint(home)
    assert home.units["p0"].boundary > held + 2 * H  # the aggregator's own units have moved well on ...
    assert agg.boundary <= held + 600.0, (agg.boundary, held)  # ... but p1 and p3 still hold event time back
    feed(g, [e for e in rest if e[2] in (1, 3)])
    g.finish(quiet=12 * H)
    alerts, counts = baseline()
    assert totals(g) == counts and agg.engine.counters.late == 0
    assert alert_set(g) == alerts


def test_one_event_dated_2100_cannot_anchor_a_partition():
    g = LocalGroup(config(), {}, reference(), P, workers=1)
    first = orjson.loads(next(raw for _, k, p, raw in traffic() if k == "predictions" and p == 0))
    g.feed("predictions", 0, [orjson.dumps({**first, "prediction_id": "from-the-future", "ts": "2100-01-01T00:00:00Z"})])
    assert [e.reason for _, e in g.dlq] == ["future_timestamp"]
    feed(g, traffic())
    g.finish(quiet=12 * H)
    alerts, counts = baseline()
    assert totals(g) == counts  # nothing was dropped as late behind it
    assert alert_set(g) == alerts


def test_topics_that_are_not_co_partitioned_get_a_unit_per_topic_partition_and_an_error(caplog):
    from detector.kafka.sidecar import Sidecar

    side = Sidecar(config(), {}, reference(), "w")
    t = config().kafka.topics
    side.set_partitions({t.predictions: 4, t.labels: 4, t.features: 4})
    assert side.copartitioned and side.unit_of(t.labels, 2) == "p2" and side.expected_units() == {"p0", "p1", "p2", "p3"}
    with caplog.at_level("ERROR", logger="skewwatch.sidecar"):
        side.set_partitions({t.predictions: 4, t.labels: 2, t.features: 4})
    assert not side.copartitioned
    assert side.unit_of(t.predictions, 1) == "predictions-p1" and side.unit_of(t.labels, 1) == "labels-p1"
    assert len(side.expected_units()) == 10
    assert "not co-partitioned" in caplog.text and f"{t.labels}: 2 partitions" in caplog.text


def _leaf_paths(obj: Any, path: tuple[Any, ...] = ()) -> Any:
    """Every path into a plain value (the first few items of each list)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaf_paths(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:4]):
            yield from _leaf_paths(v, (*path, i))
    if path:
        yield path


def test_a_tampered_checkpoint_is_refused_or_restores_a_unit_that_keeps_working(caplog):
    """One value anywhere in a real checkpoint replaced by a value of another type or range.

    Restoring it raises StateError/EngineError (and the held state is untouched), or what it
    restores keeps working: the unit folds more traffic without an internal error and is
    checkpointed again; the aggregator evaluates and is checkpointed again.
    """
    import random

    import numpy as np

    from detector.core.engine import EngineError
    from detector.core.state.codec import pack, unpack
    from detector.kafka.sidecar import CHECKPOINT_VERSION

    g = LocalGroup(config(), {}, reference(), P, workers=1)
    events = traffic()
    half = len(events) // 2
    feed(g, events[:half])
    side = g.sidecars["w0"]
    later = [(kind, raw) for _, kind, p, raw in events[half:half + 400] if p == 0]
    values = [None, True, -1, 0, 2**63, 1e300, float("nan"), float("-inf"), "x", b"\x00", [], {}, [1.5], {"a": 1},
              np.zeros(3), np.full((2, 2), -1, np.int64)]
    rng = random.Random(10)
    outcomes: Counter[str] = Counter()
    offset = 10**6
    for name, n in (("p0", 60), (AGGREGATOR, 40)):
        blob = side.checkpoint(name)
        paths = list(_leaf_paths(unpack(blob, "checkpoint", {CHECKPOINT_VERSION})))
        for _ in range(n):
            data = unpack(blob, "checkpoint", {CHECKPOINT_VERSION})
            path, value = rng.choice(paths), rng.choice(values)
            at = data
            for key in path[:-1]:
                at = at[key]
            at[path[-1]] = value
            before = side.checkpoint(name)
            try:
                side.restore(name, pack("checkpoint", CHECKPOINT_VERSION, data))
            except (StateError, EngineError):
                assert side.checkpoint(name) == before, f"a refused checkpoint changed {name} ({path})"
                outcomes["refused"] += 1
                continue
            outcomes["restored"] += 1
            if name == AGGREGATOR:
                side.aggregate()
            else:
                dlq = []
                for kind, raw in later:
                    topic = g.topics[kind]
                    offset += 1
                    dlq.extend(side.on_messages(topic, 0, [Message(topic, 0, offset, raw)]).dlq)
                side.tick(float("inf"))
                internal = [e for _, e in dlq if e.reason == "internal_error"]
                assert not internal, f"restored from a checkpoint with {path} = {value!r}, the unit fails: {internal[:1]}"
            side.checkpoint(name)
            side.restore(name, blob)
    assert outcomes["refused"] > 10 and outcomes["restored"] > 10, outcomes


class CrashingProducer(RecordingProducer):
    """A producer whose process dies after ``left`` more records."""

    def __init__(self, log: list[tuple[str, bytes | None]], left: int) -> None:
        super().__init__()
        self.log, self.left = log, left

    async def send(self, topic: str, key: bytes, value: bytes | None, partition: int, timestamp: Any,
                   headers: Any) -> Any:
        if self.left <= 0:
            raise ConnectionError("killed")
        self.left -= 1
        return await super().send(topic, key, value, partition, timestamp, headers)


def test_a_checkpoint_torn_by_a_crash_leaves_the_previous_one_readable_after_compaction():
    """A kill at any record of a checkpoint write: compaction keeps a complete checkpoint, old or new."""
    g = LocalGroup(config(), {}, reference(), P, workers=1)
    events = traffic()
    side = g.sidecars["w0"]
    feed(g, events[: len(events) // 4])
    old = side.checkpoint("p0")
    prod = RecordingProducer()
    keys = asyncio.run(write_checkpoint(prod, "state", "grp", "p0", old, chunk_bytes=4096))
    feed(g, events[len(events) // 4 : len(events) // 2])
    new = side.checkpoint("p0")
    n_chunks = -(-len(new) // 4096)
    assert len(keys) > 2 and n_chunks > 2
    base = list(prod.log)
    # chunks, then the manifest, then one tombstone per chunk of the previous checkpoint
    for sent in range(n_chunks + 1 + len(keys) + 1):
        log = list(base)
        with pytest.raises(ConnectionError) if sent <= n_chunks + len(keys) else contextlib.nullcontext():
            asyncio.run(write_checkpoint(CrashingProducer(log, sent), "state", "grp", "p0", new, keys, chunk_bytes=4096))
        data, _ = assemble(compacted(log), "grp", "p0")
        assert data == (new if sent > n_chunks else old), f"killed after {sent} records"
