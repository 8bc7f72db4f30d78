"""Checkpoints of the sidecar's state in a Kafka topic (the changelog), chunked.

A checkpoint is the engines' snapshot plus the input offsets it covers, written as one or more
messages (``<= chunk_bytes`` each) keyed by the worker's state key, with headers
``skewwatch-ckpt`` (checkpoint id), ``skewwatch-part`` and ``skewwatch-parts``. On start the
worker reads the topic to its end and keeps the newest checkpoint of its key whose chunks are
all present; a torn write (crash mid-checkpoint) is simply ignored in favour of the previous one.
On a real cluster the topic should be compacted (``cleanup.policy=compact``) — the newest chunks
of every key survive; the embedded broker keeps everything in memory instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

__all__ = ["write_checkpoint", "read_checkpoint", "read_published_alerts"]

log = logging.getLogger("skewwatch.checkpoint")
CHUNK = 512 * 1024


async def write_checkpoint(producer: Any, topic: str, key: str, data: bytes, chunk_bytes: int = CHUNK) -> str:
    """Send ``data`` in chunks; returns the checkpoint id. ``producer`` is the Faust app's producer."""
    ckpt = uuid.uuid4().hex
    parts = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]
    futs = []
    for i, part in enumerate(parts):
        headers = [("skewwatch-ckpt", ckpt.encode()), ("skewwatch-part", str(i).encode()),
                   ("skewwatch-parts", str(len(parts)).encode())]
        futs.append(await producer.send(topic, key=key.encode(), value=part, partition=0, timestamp=None, headers=headers))
    await asyncio.gather(*futs)
    return ckpt


async def read_checkpoint(bootstrap: str, topic: str, key: str, timeout: float = 30.0, **client_kwargs: Any) -> bytes | None:
    """The newest complete checkpoint for ``key``, or None."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                **client_kwargs)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        parts_avail = consumer.partitions_for_topic(topic)
        if parts_avail is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public call
            parts_avail = consumer.partitions_for_topic(topic)
        if not parts_avail:
            return None
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            return None
        await consumer.seek_to_beginning(tp)
        want = key.encode()
        chunks: dict[str, dict[int, bytes]] = {}
        order: list[str] = []
        total: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        pos = 0
        while pos < end and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1000)
            for msg in batch.get(tp, []):
                pos = msg.offset + 1
                if msg.key != want:
                    continue
                h = {k: v.decode() for k, v in (msg.headers or [])}
                cid = h.get("skewwatch-ckpt")
                if cid is None:
                    continue
                if cid not in chunks:
                    chunks[cid] = {}
                    order.append(cid)
                chunks[cid][int(h.get("skewwatch-part", "0"))] = msg.value or b""
                total[cid] = int(h.get("skewwatch-parts", "1"))
        for cid in reversed(order):
            got = chunks[cid]
            if len(got) == total[cid]:
                return b"".join(got[i] for i in range(total[cid]))
            log.warning("ignoring an incomplete checkpoint", extra={"checkpoint": cid, "chunks": len(got), "expected": total[cid]})
        return None
    finally:
        await consumer.stop()


async def read_published_alerts(bootstrap: str, topic: str, tail: int = 10_000, timeout: float = 30.0,
                                **client_kwargs: Any) -> set[tuple[str, str]]:
    """``(alert_id, state)`` of the last ``tail`` alert messages of each partition of ``topic``.

    A worker restored from a checkpoint replays what it had processed after that checkpoint, so
    it re-raises the alerts it raised in that interval, with the same ids (an id is derived from
    the alert key and the incident's first window). Whatever is already on the alert topic is not
    sent again.
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
