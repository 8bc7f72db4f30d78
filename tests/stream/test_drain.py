"""The worker's drain loop (:mod:`detector.kafka.drain`) without a broker: a delivery stepped once in
place and finished in a task gets its result, and a cancellation reaches it; the loop is only
replaced where Faust's is the one it copies. Over the wire: ``tests/stream/test_take.py``."""

from __future__ import annotations

import asyncio

import pytest

from detector.kafka.drain import FETCH_WAIT, _Rest, lean_drain


async def _delivery(room: asyncio.Future[int], log: list[str]) -> int:
    log.append("started")
    try:
        n = await room
    finally:
        log.append("finished")
    return n + 1


def test_a_delivery_that_waits_is_finished_in_a_task_with_its_result() -> None:
    async def main() -> tuple[int, list[str]]:
        log: list[str] = []
        room = asyncio.get_running_loop().create_future()
        coro = _delivery(room, log)
        first = coro.send(None)  # what the drain loop does: the first step in place
        assert first is room and log == ["started"]
        task = asyncio.ensure_future(_Rest(coro, first))
        await asyncio.sleep(0)
        assert not task.done()
        room.set_result(41)
        return await task, log

    assert asyncio.run(main()) == (42, ["started", "finished"])


def test_a_waiting_delivery_is_cancelled_as_faust_cancels_it() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        room = asyncio.get_running_loop().create_future()
        coro = _delivery(room, log)
        task = asyncio.ensure_future(_Rest(coro, coro.send(None)))
        await asyncio.sleep(0)
        task.cancel()  # what wait_first does when the flow is suspended first (a rebalance)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert room.cancelled()  # the cancellation reached the future the delivery waited for
        return log

    assert asyncio.run(main()) == ["started", "finished"]


def test_only_faust_s_own_loop_is_replaced() -> None:
    from faust.transport.drivers.aiokafka import Consumer

    class Other:
        async def _drain_messages(self, fetcher: object) -> None:
            return None

    assert lean_drain(Other) is Other
    lean = lean_drain(Consumer)
    assert lean is not Consumer and issubclass(lean, Consumer)
    assert 0 < FETCH_WAIT < 1.5  # shorter than Faust's long-poll


def test_the_worker_s_monitor_keeps_what_faust_asks_of_it_without_per_message_statistics() -> None:
    import faust
    from faust.types import TP

    from detector.kafka.drain import quiet_monitor

    app = faust.App("quiet-monitor", autodiscover=False, Monitor=quiet_monitor())
    mon, tp = app.monitor, TP("t", 0)
    mon.on_message_in(tp, 5, object())
    assert mon.on_stream_event_in(tp, 5, object(), object()) is None
    assert mon.messages_received_total == 0 and mon.events_total == 0  # nothing counted per message
    mon.track_tp_end_offset(tp, 9)  # what Faust's consumer calls on the monitor itself
    mon.on_tp_commit({tp: 5})
    assert mon.tp_end_offsets[tp] == 9 and mon.tp_committed_offsets[tp] == 5
