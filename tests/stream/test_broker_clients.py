"""Which Kafka clients work against the embedded broker (`skewwatch demo`): what the README and the
demo's output promise, checked with the real clients over the wire."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from detector.kafka.broker import create_topics

pytestmark = pytest.mark.kafka


@pytest.fixture
def embedded(kafka_bootstrap: str) -> str:
    if os.environ.get("SKEWWATCH_TEST_BOOTSTRAP"):
        pytest.skip("these checks are about the embedded broker, not an external Kafka")
    return kafka_bootstrap


def _topic(bootstrap: str) -> str:
    name = f"clients-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, {name: 2})
    return name


def test_confluent_kafka_librdkafka_produces_and_consumes_in_a_group(embedded: str) -> None:
    ck = pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import AdminClient

    topic = _topic(embedded)
    assert topic in AdminClient({"bootstrap.servers": embedded}).list_topics(timeout=15).topics
    producer = ck.Producer({"bootstrap.servers": embedded})
    errors: list[object] = []
    for i in range(5):
        producer.produce(topic, key=f"p{i}", value=b'{"prediction_id": "p%d"}' % i, on_delivery=lambda e, _m: errors.append(e))
    assert producer.flush(30) == 0 and errors == [None] * 5
    consumer = ck.Consumer({"bootstrap.servers": embedded, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    keys: set[bytes] = set()
    deadline = time.monotonic() + 90  # joining a group on the embedded broker takes a while
    try:
        while len(keys) < 5 and time.monotonic() < deadline:
            m = consumer.poll(1.0)
            if m is not None and m.error() is None:
                keys.add(m.key())
    finally:
        consumer.close()
    assert keys == {f"p{i}".encode() for i in range(5)}


def test_kafka_python_produces_and_consumes(embedded: str) -> None:
    kafka = pytest.importorskip("kafka")
    topic = _topic(embedded)
    producer = kafka.KafkaProducer(bootstrap_servers=embedded)
    for i in range(3):
        producer.send(topic, key=f"k{i}".encode(), value=b"{}").get(timeout=30)
    producer.close()
    consumer = kafka.KafkaConsumer(topic, bootstrap_servers=embedded, auto_offset_reset="earliest",
                                   consumer_timeout_ms=20_000, group_id=None)
    keys = {m.key for m in consumer}
    consumer.close()
    assert keys == {b"k0", b"k1", b"k2"}


def _librdkafka_version(kcat: str) -> tuple[int, ...]:
    out = subprocess.run([kcat, "-V"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", out)
    assert m, out
    return tuple(int(g) for g in m.groups())


def test_kcat_works_as_the_readme_says_for_its_librdkafka_version(embedded: str) -> None:
    """librdkafka < 2.2 mis-skips the tagged fields of the broker's ApiVersions reply (fixed in
    librdkafka 2.2); with ApiVersions off, metadata still works. 2.2 and newer: produce and consume."""
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat not installed (apt-get install kcat)")
    topic = _topic(embedded)

    def run(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([kcat, "-b", embedded, *args], input=data, capture_output=True, timeout=60)

    if _librdkafka_version(kcat) < (2, 2, 0):
        r = run("-L", "-m", "5")
        assert r.returncode != 0 and b"ApiVersionRequest failed" in r.stderr and b"Read underflow" in r.stderr
        r = run("-P", "-t", topic, data=b"x\n")
        assert r.returncode != 0 and b"Read underflow" in r.stderr
        r = run("-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0", "-L", "-m", "10")
        assert r.returncode == 0 and f'topic "{topic}" with 2 partitions'.encode() in r.stdout, r.stderr
    else:
        r = run("-P", "-t", topic, "-K", ":", data=b"k1:hello\n")
        assert r.returncode == 0, r.stderr
        r = run("-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k=%s\n")
        assert r.returncode == 0 and b"k1=hello" in r.stdout, r.stderr
