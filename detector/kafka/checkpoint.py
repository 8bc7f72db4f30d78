"""Checkpoints in the state topic (``<group>-state``): chunks under unique keys, a manifest per unit.

A checkpoint of a unit (or of the aggregator) is written as

1. its chunks (``<= chunk_bytes`` each), key ``<group>/<unit>/<checkpoint id>/<i>`` - every chunk
   of every checkpoint has its own key, so log compaction never drops one that is still needed;
2. then, once every chunk is acknowledged, the *manifest*, key ``<group>/<unit>``: a small
   plain-data record naming the chunk keys, the size and the SHA-256 of the checkpoint;
3. then tombstones (null values) for the chunk keys of the previous checkpoint of that unit.

The topic is created with ``cleanup.policy=compact``: compaction keeps the last record of every
key, that is the newest manifest of each unit and the chunks it names (older chunks are deleted by
their tombstones). A reader keeps the last record of every key while it reads the topic to its
end - exactly what compaction leaves - and then takes each unit's manifest and its chunks. A crash
between steps 1 and 2 leaves chunks that no manifest names (the previous checkpoint stays the
current one); a crash between 2 and 3 leaves the previous chunks. Either way the next owner of
the unit tombstones every chunk key of the unit it found besides the ones its own next checkpoint
writes. A manifest whose chunks are missing or do not match its SHA-256 is refused: that unit
starts fresh and says so in the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from typing import Any

from detector.core.state.codec import StateError, pack, unpack

__all__ = ["write_checkpoint", "read_checkpoints", "read_published_alerts", "CHUNK", "assemble"]

log = logging.getLogger("skewwatch.checkpoint")
CHUNK = 512 * 1024
MANIFEST_VERSION = 1


def manifest_key(prefix: str, unit: str) -> str:
    return f"{prefix}/{unit}"


async def write_checkpoint(producer: Any, topic: str, prefix: str, unit: str, data: bytes, previous: list[str] | None = None,
                           chunk_bytes: int = CHUNK, worker: str = "") -> list[str]:
    """Write ``data`` as unit ``unit``'s newest checkpoint; returns its chunk keys (tombstone them next time).

    ``producer`` is the Faust app's producer (``send(topic, key, value, partition, timestamp, headers)``).
    """
    ckpt = uuid.uuid4().hex
    parts = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]
    keys = [f"{prefix}/{unit}/{ckpt}/{i}" for i in range(len(parts))]
    futs = [await producer.send(topic, key=k.encode(), value=p, partition=0, timestamp=None, headers=None)
            for k, p in zip(keys, parts, strict=True)]
    await asyncio.gather(*futs)
    manifest = pack("manifest", MANIFEST_VERSION, {
        "unit": unit, "checkpoint": ckpt, "chunks": keys, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "written": time.time(), "worker": worker})
    fut = await producer.send(topic, key=manifest_key(prefix, unit).encode(), value=manifest, partition=0, timestamp=None,
                              headers=None)
    await fut
    if previous:
        tombs = [await producer.send(topic, key=k.encode(), value=None, partition=0, timestamp=None, headers=None)
                 for k in previous if k not in keys]
        await asyncio.gather(*tombs)
    return keys


def assemble(records: dict[str, bytes], prefix: str, unit: str) -> tuple[bytes, list[str]] | None:
    """Unit ``unit``'s checkpoint from the last record of every key (None if it has none).

    Raises :class:`~detector.core.state.codec.StateError` when its manifest is unreadable or its chunks are
    missing or corrupt.
    """
    raw = records.get(manifest_key(prefix, unit))
    if raw is None:
        return None
    m = unpack(raw, "manifest", {MANIFEST_VERSION})
    if not isinstance(m, dict) or m.get("unit") != unit or not isinstance(m.get("chunks"), list):
        raise StateError(f"manifest of {unit} is malformed")
    keys = [str(k) for k in m["chunks"]]
    if not all(k.startswith(f"{prefix}/{unit}/") for k in keys):
        raise StateError(f"manifest of {unit} names chunks of another unit")
    missing = [k for k in keys if records.get(k) is None]
    if missing:
        raise StateError(f"checkpoint of {unit} is missing {len(missing)} of {len(keys)} chunks (e.g. {missing[0]})")
    data = b"".join(records[k] for k in keys)
    if len(data) != m.get("bytes") or hashlib.sha256(data).hexdigest() != m.get("sha256"):
        raise StateError(f"checkpoint of {unit} does not match its manifest (size or SHA-256)")
    return data, keys


async def read_records(bootstrap: str, topic: str, prefix: str, units: set[str], timeout: float = 30.0,
                       **client_kwargs: Any) -> dict[str, bytes]:
    """The last value of every key of ``units`` in the state topic (tombstoned keys dropped), read to its end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    want = tuple(f"{prefix}/{u}".encode() for u in units)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **client_kwargs)
    await consumer.start()
    out: dict[str, bytes] = {}
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public call
            parts = consumer.partitions_for_topic(topic)
        if not parts or not want:
            return out
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"state topic {topic} not read to its end within {timeout:.0f} s")
            batch = await consumer.getmany(*todo, timeout_ms=1000, max_records=2000)
            for tp, msgs in batch.items():
                for msg in msgs:
                    k = msg.key or b""
                    if k.startswith(want) and (k in want or any(k.startswith(w + b"/") for w in want)):
                        key = k.decode("utf-8", "replace")
                        if msg.value is None:
                            out.pop(key, None)
                        else:
                            out[key] = msg.value
                if msgs and msgs[-1].offset + 1 >= ends[tp]:
                    todo.discard(tp)
        return out
    finally:
        await consumer.stop()


async def read_checkpoints(bootstrap: str, topic: str, prefix: str, units: set[str], timeout: float = 30.0,
                           **client_kwargs: Any) -> dict[str, tuple[bytes, list[str]] | StateError | None]:
    """Per unit: ``(checkpoint, every chunk key of the unit)``, None (none) or the :class:`StateError` that refused it."""
    records = await read_records(bootstrap, topic, prefix, units, timeout, **client_kwargs)
    out: dict[str, tuple[bytes, list[str]] | StateError | None] = {}
    for u in units:
        chunks = [k for k in records if k.startswith(f"{prefix}/{u}/")]  # the manifest's and any orphans
        try:
            got = assemble(records, prefix, u)
            out[u] = None if got is None else (got[0], chunks)
        except StateError as exc:
            out[u] = exc
    return out


async def read_published_alerts(bootstrap: str, topic: str, tail: int = 10_000, timeout: float = 30.0,
                                **client_kwargs: Any) -> set[tuple[str, str]]:
    """``(alert_id, state)`` of the last ``tail`` alert messages of each partition of ``topic``.

    An aggregator restored from a checkpoint evaluates again what it had evaluated after that
    checkpoint, so it re-raises the alerts it raised in that interval, with the same ids (an id is
    derived from the alert key and the incident's first window). Whatever is already on the alert
    topic is not sent again.
    """
    import orjson
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **client_kwargs)
    await consumer.start()
    out: set[tuple[str, str]] = set()
    try:
        parts = consumer.partitions_for_topic(topic)
        if parts is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public call
            parts = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts or ())]
        if not tps:
            return out
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        todo = {}
        for tp in tps:
            if ends[tp] > starts[tp]:
                consumer.seek(tp, max(starts[tp], ends[tp] - tail))
                todo[tp] = ends[tp]
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            batch = await consumer.getmany(*todo, timeout_ms=500, max_records=5000)
            for tp, msgs in batch.items():
                for msg in msgs:
                    try:
                        d = orjson.loads(msg.value or b"")
                        out.add((str(d["alert_id"]), str(d["state"])))
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        continue
                if msgs and msgs[-1].offset + 1 >= todo[tp]:
                    del todo[tp]
        if todo:
            log.warning("alert topic not read to its end; alerts may be re-sent", extra={"topic": topic})
        return out
    finally:
        await consumer.stop()
