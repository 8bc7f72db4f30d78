"""``take_batches`` over the embedded broker: batches cut at the byte cap, a backlog's tail handed
over without waiting ``within``, every message delivered once and acked only after its batch - also
through the worker's consumer (:mod:`detector.kafka.drain`), with a stream buffer small enough that
deliveries wait for room."""

from __future__ import annotations

import asyncio
import tempfile
import uuid

from detector.bench.kafka import _produce
from detector.kafka.broker import create_topics
from detector.kafka.clients import plaintext
from detector.kafka.drain import lean_drain
from detector.kafka.take import take_batches


async def _consume(bootstrap: str, topic: str, total: int, max_messages: int, max_bytes: int,
                   within: float, lean: bool = False, buffer: int = 4096) -> tuple[list[list[tuple[int, int, int]]], list[int]]:
    import faust

    with tempfile.TemporaryDirectory() as datadir:
        app = faust.App(f"take-{uuid.uuid4().hex[:8]}", broker=plaintext(bootstrap).faust_brokers(), web_enabled=False,
                        datadir=datadir, value_serializer="raw", key_serializer="raw", store="memory://",
                        autodiscover=False, consumer_auto_offset_reset="earliest", topic_disable_leader=True,
                        broker_session_timeout=6.0, broker_heartbeat_interval=1.0, broker_rebalance_timeout=10.0,
                        stream_buffer_maxsize=buffer)
        if lean:  # the worker's consumer class
            app.transport.Consumer = lean_drain(app.transport.Consumer)
        src = app.topic(topic, value_serializer="raw", key_serializer="raw")
        batches: list[list[tuple[int, int, int]]] = []
        unacked: list[int] = []  # messages of each batch not acked yet while the batch is handled
        done = asyncio.Event()

        @app.agent(src)
        async def agent(stream):  # noqa: ANN001 - a Faust stream
            async for events in take_batches(stream, max_messages, max_bytes, within):
                batches.append([(e.message.partition, e.message.offset, len(e.message.value)) for e in events])
                unacked.append(sum(not e.message.acked for e in events))
                if sum(map(len, batches)) >= total:
                    done.set()

        await app.start()
        try:
            await asyncio.wait_for(done.wait(), timeout=120)  # a generous bound, not a timing check
        finally:
            await app.stop()
    return batches, unacked


def test_batches_are_cut_at_the_byte_cap_and_the_tail_does_not_wait(kafka_bootstrap: str) -> None:
    topic = f"take-{uuid.uuid4().hex[:6]}"
    create_topics(kafka_bootstrap, {topic: 2})
    values = [bytes([65 + i % 26]) * 50_000 for i in range(61)]  # 61 messages of 50 KB, 3 MB in all
    asyncio.run(_produce(kafka_bootstrap, topic, values, [str(i).encode() for i in range(61)]))
    # `within` longer than the test's bound: the last batch comes only because its partitions are read to the end
    batches, unacked = asyncio.run(_consume(kafka_bootstrap, topic, 61, 1000, 400_000, within=600.0))
    got = sorted((p, o) for b in batches for p, o, _ in b)
    assert len(got) == 61 and len(set(got)) == 61  # each message once
    for b in batches:
        assert sum(n for _, _, n in b) < 400_000 + 50_000  # the cap, overshot by at most the message that hit it
        for p in {p for p, _, _ in b}:
            offs = [o for q, o, _ in b if q == p]
            assert offs == sorted(offs)  # in partition order
    assert len(batches) >= 61 * 50_000 // 450_000  # cut by bytes, not one batch of everything
    assert all(u == len(b) for u, b in zip(unacked, batches, strict=True))  # acked after the batch, not before


def test_the_message_cap_holds_for_small_messages(kafka_bootstrap: str, monkeypatch) -> None:  # noqa: ANN001
    """Through the worker's consumer, whose drain loop delivers in place and hands a delivery that has
    to wait (an 8-event stream buffer: often) to Faust's own wait: every message once, in order."""
    from detector.kafka import drain

    waited = []

    class Rest(drain._Rest):  # noqa: SLF001 - counts the deliveries that waited for room
        def __init__(self, *a: object) -> None:
            waited.append(1)
            super().__init__(*a)

    monkeypatch.setattr(drain, "_Rest", Rest)
    topic = f"take-{uuid.uuid4().hex[:6]}"
    create_topics(kafka_bootstrap, {topic: 1})
    values = [b'{"i": %d}' % i for i in range(500)]
    asyncio.run(_produce(kafka_bootstrap, topic, values, [b"k"] * 500))
    batches, unacked = asyncio.run(_consume(kafka_bootstrap, topic, 500, 64, 10**9, within=600.0, lean=True, buffer=8))
    assert max(map(len, batches)) <= 64
    assert [o for b in batches for _, o, _ in b] == list(range(500))  # each once, in order
    assert all(u == len(b) for u, b in zip(unacked, batches, strict=True))
    assert waited  # the path through Faust's wait was taken, and lost nothing
