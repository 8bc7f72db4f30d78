"""Batches of a Faust stream capped by messages *and bytes*: Faust's ``take_events`` with a byte cap.

``stream.take_events(n, within)`` hands over a batch when ``n`` messages wait, or else ``within``
seconds after the last one: with large messages (batch envelopes of 100 events, ~60 KB each) ``n``
is never reached, so a worker reading a backlog idled ``within`` seconds after every batch while
its next one waited in Faust's buffer (0.2 s after every batch of ``skewwatch bench --kafka``'s
envelopes, whose runs took 2-3 batches). :func:`take_batches` hands a batch over as soon as ``max_bytes`` of message values
wait too - the size the worker folds at - or, looked at every :data:`TAIL_POLL` seconds, once every
partition with messages waiting was read to the end the broker gave at the last fetch (a backlog's
tail: more cannot come before the next fetch, so waiting ``within`` only delays it; checked per
poll, not per message, so live traffic that keeps up is still taken in batches of up to
``TAIL_POLL`` seconds; there is no polling while nothing waits). Otherwise it is
``take_events`` line for line (the same processor, passive consumption, acks after the batch is
handled, strict cap), so delivery and commit behaviour do not change.

It uses Faust's stream internals as ``take_events`` does (``add_processor``, ``_enable_passive``,
``current_event``); tests/stream exercise it against the real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

__all__ = ["take_batches", "TAIL_POLL"]

# seconds between looks at whether what waits was read to its partitions' ends; each look is a wait of mode's (a
# few asyncio tasks): with looks every 20 ms the counting agent of the bench used ~3% more CPU per message than
# with Faust's take_events (one 5-run measurement at load 10-13)
TAIL_POLL = 0.05


def _read_to_end(app: Any, last: dict[Any, int]) -> bool:
    """Every partition with messages waiting was read to the end the broker gave at the last fetch
    (``last``: partition -> offset of its newest waiting message): more will not come before the
    next fetch, so waiting ``within`` only delays the batch (a backlog's tail)."""
    try:
        hw = app.consumer.highwater
        return all((h := hw(tp)) is not None and off + 1 >= h for tp, off in last.items())
    except Exception:  # noqa: BLE001 - not assigned (any more), no fetch yet: wait as usual
        return False


def take_batches(stream: Any, max_messages: int, max_bytes: int, within: float) -> AsyncGenerator[list[Any], None]:
    """Lists of Faust events of ``stream``: at most ``max_messages``, handed over once that many or
    ``max_bytes`` of values wait, once every partition they came from is read to its end, or
    ``within`` seconds after the last hand-over (what waits then)."""
    agen = _take(stream, max_messages, max_bytes, within)
    stream._active_agens.add(agen)  # closed by the stream on stop, as Faust's own take generators are
    return agen


async def _take(stream: Any, max_messages: int, max_bytes: int, within: float) -> AsyncGenerator[list[Any], None]:
    from mode.utils.aiter import aiter
    from mode.utils.futures import notify

    events: list[Any] = []
    last: dict[Any, int] = {}  # partition -> offset of its newest waiting message
    size = [0]
    full = asyncio.Event()
    arrived = asyncio.Event()  # the first message of a batch came
    consumed = asyncio.Event()
    consuming: list[asyncio.Future[Any] | None] = [None]
    acks = stream.enable_acks
    channel_it = aiter(stream.channel)
    app = stream.app

    async def add(value: Any) -> Any:
        try:
            if consuming[0] is not None:  # the batch handed over is being handled: wait for it
                try:
                    await consuming[0]
                finally:
                    consuming[0] = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take buffer found current_event is None")
            events.append(event)
            if len(events) == 1:
                arrived.set()
            m = event.message
            last[m.tp] = m.offset
            v = m.value
            size[0] += len(v) if v is not None else 0
            if len(events) >= max_messages or size[0] >= max_bytes:
                full.set()
                consumed.clear()
                await stream.wait(consumed)  # strict: never more than max_messages in a batch
        except asyncio.CancelledError:  # pragma: no cover
            raise
        except Exception as exc:  # noqa: BLE001 - as take_events: the stream crashes, loudly
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # acked here, after the batch is handled
    stream.add_processor(add)
    stream._enable_passive(channel_it)
    try:
        loop = stream.loop
        while not stream.should_stop:
            deadline = loop.time() + within
            while (left := deadline - loop.time()) > 0 and not stream.should_stop:
                if not events:  # nothing waits: sleep until something does (no polling while idle)
                    arrived.clear()
                    await stream.wait_for_stopped(arrived, timeout=left)
                    continue
                await stream.wait_for_stopped(full, timeout=min(left, TAIL_POLL))
                if full.is_set() or _read_to_end(app, last):
                    break
            if events:
                consuming[0] = stream.loop.create_future()
                try:
                    yield list(events)
                finally:
                    taken = list(events)
                    events.clear()
                    last.clear()
                    size[0] = 0
                    for event in taken:
                        await stream.ack(event)
                    notify(consuming[0])
                    full.clear()
                    consumed.set()
    finally:
        stream.enable_acks = acks
        stream._processors.remove(add)
