"""A broker that stops answering never freezes the worker, and never loses its dead letters or alerts.

The worker holds one lock around folds, checkpoints and sends. A send that waits on a broker
which stopped answering (here: the embedded broker frozen with SIGSTOP) must time out, keep what
it could not send, in order, and send it once the broker answers again; a checkpoint must not
complete (and commit offsets) while dead letters are still waiting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from detector.core.inputs.wire import EventError
from detector.kafka.sidecar import Outbox
from detector.kafka.unit import Message

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


class _Topic:
    """What the worker calls on a Faust topic (``send``), on a real aiokafka producer to the embedded broker."""

    def __init__(self, producer: Any, name: str) -> None:
        self.producer, self.name = producer, name

    async def send(self, key: bytes | None = None, value: bytes | None = None, headers: Any = None) -> Any:
        return await self.producer.send_and_wait(self.name, value=value, key=key, headers=headers)


def _read_all(bootstrap: str, topic: str, want: int, timeout: float = 30.0) -> list[Any]:
    from aiokafka import AIOKafkaConsumer

    async def go() -> list[Any]:
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        out: list[Any] = []
        try:
            deadline = time.monotonic() + timeout
            while len(out) < want and time.monotonic() < deadline:
                for recs in (await c.getmany(timeout_ms=500)).values():
                    out.extend(recs)
        finally:
            await c.stop()
        return out

    return asyncio.run(go())


def test_sends_to_a_frozen_broker_time_out_wait_in_order_and_go_out_when_it_answers(monkeypatch) -> None:
    from aiokafka import AIOKafkaProducer

    from detector.cli.demo import demo_reference
    from detector.config import load_config
    from detector.kafka import worker as worker_mod
    from detector.kafka.broker import BrokerUnavailable, EmbeddedBroker

    try:
        broker = EmbeddedBroker().start()
    except BrokerUnavailable as exc:
        pytest.skip(str(exc))
    from detector.kafka import sending

    monkeypatch.setattr(worker_mod, "SEND_TIMEOUT", 1.5)  # the producer's request timeout
    monkeypatch.setattr(sending, "SEND_TIMEOUT", 1.5)  # each send's wait for its acknowledgement
    monkeypatch.setattr(sending, "SEND_RETRY", 0.5)
    try:
        broker.create_topics({"sr-dlq": 1, "sr-alerts": 1, "sr-counterexamples": 1})
        cfg = load_config(None, environ={}, overrides={"kafka": {"brokers": [broker.bootstrap], "topics": {
            "dlq": "sr-dlq", "alerts": "sr-alerts"}}})
        w = worker_mod.Worker(cfg, {}, demo_reference(), worker_id="sr")

        def letters(first: int, n: int) -> Outbox:
            return Outbox(dlq=[(Message("preds", 0, off, b"{not json", f"k{off}".encode()),
                                EventError("invalid_json", "not JSON: send events as JSON objects"))
                               for off in range(first, first + n)])

        async def scenario() -> dict[str, Any]:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=60_000)
            await producer.start()
            try:
                w._topics = {n: _Topic(producer, f"sr-{n}") for n in ("dlq", "alerts", "counterexamples")}
                await w._send(letters(0, 2))  # the broker answers
                assert not w.unsent and w.send_failures == 0
                broker.pause()
                await asyncio.sleep(0.5)  # the signal reaches every process of the broker
                t0 = time.monotonic()
                await w._send(letters(2, 3))  # frozen: the first send times out, all three wait
                blocked = time.monotonic() - t0
                after_first = (len(w.unsent), w.send_failures)
                await w._send(letters(5, 1))  # within the retry pause: queued behind, no new wait
                quick = time.monotonic() - t0 - blocked
                await w._checkpoint(only=[])  # must not complete while dead letters wait
                failed_ckpt = (w.checkpoints, w.checkpoint_failures)
                broker.resume()
                await asyncio.sleep(SEND_SETTLE)
                w.send_retry_at = 0.0
                await w._send(Outbox())
                return {"blocked": blocked, "after_first": after_first, "quick": quick, "failed_ckpt": failed_ckpt,
                        "left": len(w.unsent), "failures": w.send_failures}
            finally:
                await producer.stop()

        r = asyncio.run(scenario())

        assert r["after_first"] == (3, 1), r
        assert r["blocked"] < 30.0, r  # bounded by SEND_TIMEOUT, not Faust's 20-minute default
        assert r["quick"] < r["blocked"], r
        assert r["failed_ckpt"] == (0, 1), r
        assert r["left"] == 0 and r["failures"] == 2, r  # the first timeout, then the checkpoint's attempt
        got = _read_all(broker.bootstrap, "sr-dlq", 6)
        offsets = [int(dict(m.headers)["source-offset"]) for m in got]
        assert offsets[:2] == [0, 1] and sorted(set(offsets)) == list(range(6)), offsets
        # in order after the outage; a send that reached the frozen broker may arrive twice (at least once)
        tail = [o for o in offsets[2:] if o >= 2]
        assert tail == sorted(tail), offsets
    finally:
        broker.resume()
        broker.stop()


SEND_SETTLE = 1.0  # seconds for the producer to reconnect after SIGCONT
