"""The group's event time from the units' claims, in memory, with a simulated wall clock.

A unit that has claimed nothing yet is slow, not empty: the aggregator waits for it however long
that takes (a worker starting under load once missed the end of a unit's first window by more than
``source_timeout``, and the windows it closed without that unit counted its events late). Only a
unit that has nothing - no prediction, read to its end, quiet - says so, and stops holding the
group back once it has said so for ``source_timeout``. Over the wire: ``test_state_wire.py``.
"""

from __future__ import annotations

import math
import time
import zlib
from functools import lru_cache
from typing import Any

import orjson

from detector.config import Config
from detector.kafka.aggregator import Aggregator
from detector.kafka.local import LocalGroup
from detector.kafka.unit import Unit
from detector.sim import get_scenario, simulate

H = 3600.0


@lru_cache(maxsize=1)
def reference() -> Any:
    from detector.cli.demo import demo_reference

    return demo_reference()


def config() -> Config:
    return Config.model_validate({"labels": {"early_label_hold": "30d"}})


@lru_cache(maxsize=1)
def traffic() -> tuple[tuple[float, str, int, bytes], ...]:
    """(ts, kind, partition of 2, message) in event-time order: 6 h at 200/h."""
    sc = get_scenario("unit_change", rate_per_hour=200.0, hours=6.0)
    return tuple((ts, kind, zlib.crc32(str(ev["prediction_id"]).encode()) % 2, orjson.dumps(ev)) for ts, kind, ev in simulate(sc))


def feed(g: LocalGroup, partition: int) -> None:
    """``partition``'s traffic, in half-hour slices (each topic's messages of a slice in one batch)."""
    slices: dict[float, dict[str, list[bytes]]] = {}
    for ts, kind, p, msg in traffic():
        if p == partition:
            slices.setdefault(ts // 1800, {}).setdefault(kind, []).append(msg)
    for by_kind in slices.values():  # in event-time order
        for kind in ("predictions", "labels", "features"):
            if by_kind.get(kind):
                g.feed(kind, partition, by_kind[kind])


def test_a_unit_that_has_not_claimed_yet_holds_event_time_back_however_long_it_takes() -> None:
    g = LocalGroup(config(), {}, reference(), partitions=2, workers=2)  # w0: p0 and the aggregator; w1: p1
    agg = g.aggregator
    feed(g, 0)
    g.checkpoint()
    assert math.isfinite(agg.sources["p0"]["claim"]) and agg.sources["p1"]["claim"] == -math.inf
    g.time += 5 * agg.source_timeout  # w1 is slow: its input comes minutes later; it claims (nothing) all along
    g.checkpoint()
    assert agg.boundary == -math.inf  # no window closed without p1
    feed(g, 1)
    g.finish(quiet=2 * H)
    assert agg.boundary > -math.inf and agg.engine.counters.windows_closed >= 5
    assert agg.engine.counters.late == 0  # before: p1's first five hours were closed without it, all counted late


def test_only_a_unit_with_nothing_stops_holding_event_time_back_and_only_once_it_said_so_long_enough() -> None:
    agg = Aggregator(config(), {}, reference())
    t, offset = [0.0], iter(range(1000))
    agg.clock = lambda: t[0]
    agg.started = 0.0
    agg.expected = {"p0", "p1"}
    agg.set_local("p0", 10 * H, 0)  # this worker's unit has shown everything before hour 10

    def claim(value: str, seq: int = 0, life: str = "l1") -> None:
        agg.on_message("partials", 0, next(offset), {"skewwatch-kind": "claim", "skewwatch-unit": "p1",
                                                       "skewwatch-seq": str(seq), "skewwatch-life": life,
                                                       "skewwatch-watermark": value}, b"")

    claim("-inf")
    t[0] = 10 * agg.source_timeout
    claim("-inf")
    assert agg.watermark() is None  # claiming nothing for ever so long: slow, still held for
    claim("inf")  # "I have nothing" (Unit.claim): believed after source_timeout of saying so
    t[0] += agg.source_timeout / 2
    claim("inf")
    assert agg.watermark() is None
    claim("-inf")  # any other claim in between starts it again (a forged +inf is undone by the next real claim)
    t[0] += agg.source_timeout / 2 + 1
    claim("inf")
    assert agg.watermark() is None
    t[0] += agg.source_timeout + 1
    claim("inf", life="l2")  # a unit that never stepped has no life here yet: whichever it has
    assert agg.watermark() == 10 * H
    assert agg.capped == 0 and agg.rejected == 0

    agg.set_local("p0", math.inf, 0)  # the same holds for this worker's own units
    assert agg.watermark() == 10 * H
    t[0] += agg.source_timeout + 1
    claim("inf")
    assert agg.watermark() is None  # nothing is held back by anyone, nothing to evaluate


def test_a_unit_claims_to_have_nothing_only_when_it_has_read_its_predictions_to_the_end_and_is_quiet() -> None:
    u = Unit("p0", config(), {}, reference())
    now = time.monotonic()
    u.assigned({"preds:0": "predictions", "labels:0": "labels"}, now)
    later = now + 11.0
    assert u.claim(10.0, later) == -math.inf  # the predictions partition's end is not known yet
    u.lags["preds:0"] = 3
    assert u.claim(10.0, later) == -math.inf  # unread messages
    u.lags["preds:0"] = 0
    assert u.claim(10.0, now + 5.0) == -math.inf  # read to the end, but not quiet for long enough
    assert u.claim(None, later) == -math.inf  # not asked
    assert u.claim(10.0, later) == math.inf
    preds = [m for _, kind, _, m in traffic() if kind == "predictions"]
    u.on_messages("predictions", [_msg("preds", 0, i, m) for i, m in enumerate(preds[:5])])
    assert not u.marks  # too few for an event time (robust progress) ...
    assert u.claim(10.0, time.monotonic() + 11.0) == -math.inf  # ... but a window is open: not nothing
    u.on_messages("predictions", [_msg("preds", 0, i, m) for i, m in enumerate(preds[:50])])
    assert u.marks and u.claim(10.0, time.monotonic() + 11.0) == -math.inf  # its first window has not ended yet


def _msg(topic: str, partition: int, offset: int, value: bytes) -> Any:
    from detector.kafka.unit import Message

    return Message(topic, partition, offset, value)
