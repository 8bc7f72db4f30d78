"""The worker's clients never have a topic created by looking it up (:func:`detector.kafka.clients.refuse_auto_create`).

Over the wire, on the embedded broker, which creates any topic a Metadata request names unless the
request says not to (as Kafka does with ``auto.create.topics.enable``, its default): a client with the
worker's ``client.id`` finds no such topic and creates none; a client with another id still gets the
broker's auto-created topic with the broker's default partition count (the behaviour that, after a broker
lost its data, re-created the worker's topics with 4 partitions instead of theirs).
"""

from __future__ import annotations

import asyncio
import os
import uuid

from detector.kafka.clients import refuse_auto_create


async def _look_up(bootstrap: str, client_id: str, topic: str) -> set[int] | None:
    """A producer asks for ``topic``'s metadata by name (as on a send); returns its partitions, if any."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, request_timeout_ms=10_000)
    await producer.start()
    try:
        producer.client.add_topic(topic)
        await producer.client.force_metadata_update()
        return producer.client.cluster.partitions_for_topic(topic)
    finally:
        await producer.stop()


async def _all_topics(bootstrap: str) -> set[str]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await consumer.start()
    try:
        return set(await consumer.topics())
    finally:
        await consumer.stop()


def test_the_workers_clients_never_create_a_topic_by_looking_it_up(kafka_bootstrap: str) -> None:
    tag = uuid.uuid4().hex[:8]
    ours, other = f"sw-{tag}", f"other-{tag}"
    refuse_auto_create(ours)
    refuse_auto_create(ours)  # idempotent

    async def scenario() -> tuple[set[int] | None, set[int] | None, set[str]]:
        mine = await _look_up(kafka_bootstrap, ours, f"nope-{tag}")
        theirs = await _look_up(kafka_bootstrap, other, f"auto-{tag}")
        return mine, theirs, await _all_topics(kafka_bootstrap)

    mine, theirs, topics = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert not mine and f"nope-{tag}" not in topics, "a lookup by the worker's client created the topic"
    if not os.environ.get("SKEWWATCH_TEST_BOOTSTRAP"):  # the embedded broker: auto-creation always on
        # another client of the same process is left as it was: the broker auto-created its topic
        assert theirs and f"auto-{tag}" in topics
