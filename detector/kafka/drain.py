"""The worker's Faust consumer: its drain loop without four asyncio tasks per message, and a short long-poll.

Faust hands every fetched message to the streams through
``await self.wait_first(callback(message), self.suspend_flow.wait())``
(``Consumer._drain_messages``): ``wait_first`` wraps the delivery, the wait for a suspended flow and
the consumer's stopped and crashed events in four tasks, waits for the first, and cancels the other
three - ~40-60 us of a single-event message's ~78 us of Faust, paid even though the delivery almost
never waits (it puts the event in the stream's buffer, and Faust pauses a partition's fetching well
before that buffer is full).

:func:`lean_drain` runs the delivery's first step in place: when it finishes without waiting - the
usual case - no task is made. When it has to wait (the buffer full, the app's flow control
suspended for a rebalance, the producer's buffer full), the rest of the same delivery goes through
Faust's own ``wait_first`` with ``suspend_flow``, exactly as before: a delivery stuck when a rebalance
begins is abandoned the same way, and the read offsets, gaps, acks and commits are Faust's - the
loop below is Faust's (faust-streaming 0.15) with only that call changed. The loop yields the
event loop every 100 messages as Faust's does. The class is only replaced when Faust's loop is the
one this was written against (:func:`lean_drain` checks); otherwise Faust's own is kept.

The fetch long-poll is :data:`FETCH_WAIT` instead of Faust's 1.5 s. A consumer has one fetch in
flight per broker, and partitions whose fetched records still wait in its buffer (or that Faust
paused while its stream buffer was under pressure) are left out of the next fetch: while a worker
reads a backlog of predictions, that fetch often asks only for the quiet partitions (labels,
features, partials), and the broker holds it for the whole long-poll - the backlog's next records
could not be asked for until it returned (a worker reading 60k single-event messages on the
embedded broker waited 1.5 s two or three times per run). An idle worker now asks every
:data:`FETCH_WAIT` seconds instead of every 1.5 s (Kafka's own consumers default to 0.5 s).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["lean_drain", "quiet_monitor", "FETCH_WAIT"]

FETCH_WAIT = 0.1  # seconds the broker may hold a fetch while the partitions asked for have nothing new

# what Faust's _drain_messages refers to: when these change, the copy below is not Faust's loop any more
_FAUST_NAMES = {"callback", "getmany", "_stopped", "is_set", "_read_offset", "diag", "set_flag", "unset_flag",
                "_commit_every", "topics", "acks_enabled_for", "sleep", "should_stop", "offset", "_add_gap",
                "_n_acked", "commit", "wait_first", "suspend_flow", "wait", "consumer_stopped_errors"}


class _Rest:
    """The rest of a coroutine already stepped once (``first``: what it yielded), awaitable in a task."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - cancellation and errors go on to the delivery
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                continue
            try:
                value = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def lean_drain(base: type) -> type:
    """``base`` (a Faust consumer class) with :mod:`this module <detector.kafka.drain>`'s drain loop, or
    ``base`` itself when its ``_drain_messages`` is not the loop this one copies."""
    code = getattr(getattr(base, "_drain_messages", None), "__code__", None)
    if code is None or not _FAUST_NAMES <= set(code.co_names):
        return base
    from faust.transport.consumer import CONSUMER_FETCHING

    class LeanDrainConsumer(base):  # type: ignore[valid-type, misc]
        def _new_consumer_thread(self) -> Any:
            thread = super()._new_consumer_thread()
            create = getattr(thread, "_create_worker_consumer", None)
            if create is not None:
                def _create_worker_consumer(*args: Any, **kw: Any) -> Any:
                    consumer = create(*args, **kw)
                    if hasattr(consumer, "_fetch_max_wait_ms"):  # read by the fetcher made at its start
                        consumer._fetch_max_wait_ms = int(FETCH_WAIT * 1000)  # noqa: SLF001 - no setting for it
                    return consumer

                thread._create_worker_consumer = _create_worker_consumer
            return thread

        async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised over the wire
            callback = self.callback
            getmany = self.getmany
            consumer_should_stop = self._stopped.is_set
            fetcher_should_stop = fetcher._stopped.is_set
            get_read_offset = self._read_offset.__getitem__
            set_read_offset = self._read_offset.__setitem__
            set_flag = self.diag.set_flag
            unset_flag = self.diag.unset_flag
            commit_every = self._commit_every
            acks_enabled_for = self.app.topics.acks_enabled_for
            yield_every = 100
            num_since_yield = 0
            sleep = asyncio.sleep
            try:
                while not (consumer_should_stop() or fetcher_should_stop()):
                    set_flag(CONSUMER_FETCHING)
                    ait = getmany(timeout=1.0)
                    await self.sleep(0)
                    if not self.should_stop:
                        async for tp, message in ait:
                            num_since_yield += 1
                            if num_since_yield > yield_every:
                                await sleep(0)
                                num_since_yield = 0
                            offset = message.offset
                            r_offset = get_read_offset(tp)
                            if r_offset is None or offset >= r_offset:
                                gap = offset - (r_offset or 0)
                                if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                                if commit_every is not None and self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                                delivery = callback(message)
                                try:
                                    first = delivery.send(None)  # the delivery's first step, here
                                except StopIteration:
                                    pass  # delivered without waiting: no task
                                else:  # it waits: the rest as Faust does it, abandoned if the flow is suspended
                                    await self.wait_first(_Rest(delivery, first), self.suspend_flow.wait())
                                set_read_offset(tp, offset)
                            else:
                                self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)
                        unset_flag(CONSUMER_FETCHING)
            except self.consumer_stopped_errors:
                if self.transport.app.should_stop:
                    self.log.info("Broker stopped consumer, shutting down...")
                    return
                raise
            except asyncio.CancelledError:
                if self.transport.app.should_stop:
                    self.log.info("Consumer shutting down for user cancel.")
                    return
                raise
            except Exception as exc:
                self.log.exception("Drain messages raised: %r", exc)
                raise
            finally:
                unset_flag(CONSUMER_FETCHING)

    return LeanDrainConsumer


def quiet_monitor() -> type:
    """Faust's ``Monitor`` sensor without its four per-message hooks (message in, stream event in and
    out, message out: counters, clock reads and a dict per event that nothing of the worker reads - its
    Faust web server is off, its metrics are its own). What Faust itself asks of the monitor (end and
    committed offsets, assignment and rebalance timings) is kept."""
    from faust.sensors import Monitor

    class QuietMonitor(Monitor):
        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            return None

        def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
            return None

        def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
            return None

        def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
            return None

    return QuietMonitor
