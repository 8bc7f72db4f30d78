"""Event time against stale end offsets: a caught-up labels partition holds a unit's watermark
until the broker's end offsets confirm it (the worker's case), and not at all when the end offsets
are exact (the in-process group's case). See :mod:`detector.kafka.unit`.
"""

from __future__ import annotations

import math

import orjson
import pytest

from detector.config import Config
from detector.kafka.sidecar import Sidecar
from detector.sim import get_scenario, simulate

PRED, LAB = "predictions", "labels"


@pytest.fixture(scope="module")
def events() -> dict[str, list[tuple[float, bytes]]]:
    sc = get_scenario("unit_change", rate_per_hour=200.0, hours=12.0)
    out: dict[str, list[tuple[float, bytes]]] = {PRED: [], LAB: []}
    for ts, kind, ev in simulate(sc):
        if kind in out:
            out[kind].append((ts, orjson.dumps(ev)))
    return out


def sidecar(exact: bool) -> Sidecar:
    from detector.cli.demo import demo_reference

    side = Sidecar(Config.model_validate({}), {}, demo_reference(), "w")
    side.ends_exact = exact
    side.set_partitions({PRED: 1, LAB: 1, "features": 1})
    side.add_unit(side.new_unit("p0"), [f"{PRED}:0", f"{LAB}:0"])
    return side


def feed(side: Sidecar, kind: str, vals: list[bytes], start: int) -> int:
    from detector.kafka.unit import Batch

    offsets = list(range(start, start + len(vals)))
    side.on_batch(Batch(kind, 0, offsets, list(vals), [None] * len(vals)))
    return start + len(vals)


@pytest.mark.parametrize("exact", [False, True])
def test_a_caught_up_labels_partition_holds_event_time_until_its_end_offset_is_confirmed(events, exact) -> None:
    side = sidecar(exact)
    u = side.units["p0"]
    cut = events[PRED][0][0] + 6 * 3600.0
    labels = [v for ts, v in events[LAB] if ts < cut]
    preds = [v for ts, v in events[PRED]]  # predictions of 12 h: 6 h past the labels read so far
    n_lab = feed(side, LAB, labels, 0)
    feed(side, PRED, preds, 0)
    # the fetch's end offset of the labels partition is the one it last saw: caught up, lag 0
    side.update_lags(lambda t, p: n_lab if t == LAB else len(preds))
    lateness = float(side.cfg.detector.allowed_lateness)
    top = u.marks[f"{PRED}:0"]
    if exact:  # exact end offsets: a caught-up partition never holds event time back
        assert u.watermark() == pytest.approx(top - lateness)
        return
    held = u.watermark()
    assert held is not None and math.isfinite(held)
    assert held == pytest.approx(u.marks[f"{LAB}:0"] - lateness), "held at the labels read, not at the predictions"
    assert held < top - 5 * 3600.0
    boundary = u.boundary
    # labels produced meanwhile (the broker's end is past what was read): still held, at the labels read
    side.confirm_ends({f"{LAB}:0": n_lab + 10}, side.predictions_marks())
    assert u.lags[f"{LAB}:0"] == 10 and u.watermark() == pytest.approx(held)
    # read to the end the broker gave for a question asked after the predictions were folded
    side.confirm_ends({f"{LAB}:0": n_lab}, side.predictions_marks())
    assert u.lags[f"{LAB}:0"] == 0
    assert u.watermark() == pytest.approx(top - lateness)
    side.tick(idle_after=float("inf"))
    assert u.boundary > boundary, "the windows the confirmation released were closed"


def test_a_unit_with_unread_messages_is_behind_not_idle(events) -> None:
    """Event time goes on at wall speed only when nothing is waiting: a worker too busy to take its
    input must not close the windows that input still belongs to."""
    side = sidecar(True)
    u = side.units["p0"]
    labels = [v for _, v in events[LAB]]
    preds = [v for _, v in events[PRED][:50]]
    feed(side, LAB, labels, 0)  # labels read far ahead of the predictions (a backlog)
    feed(side, PRED, preds, 0)
    now = u.last_input + 60.0
    side.update_lags(lambda t, p: len(labels) if t == LAB else len(preds) + 500)  # 500 predictions unread
    assert u.idle_watermark(10.0, now=now) is None
    side.update_lags(lambda t, p: len(labels) if t == LAB else len(preds))  # all read: idle for 60 s
    top = max(u.marks.values())
    assert u.idle_watermark(10.0, now=now) == pytest.approx(top + 60.0 - float(side.cfg.detector.allowed_lateness))
