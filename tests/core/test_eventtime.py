"""Event time at any rate and any backlog: nothing valid is rejected or late, bad clocks are.

The same rule serves replay (no wall clock: "ahead" means ahead of the stream's robust front)
and the live sidecar (``now`` = its wall clock). Logs here are in log order with seconds of
jitter and ~10% of the lines out of order, as producers write them.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.inputs.eventtime import SUPPORT, EventClock
from detector.core.settings import DetectorSettings
from detector.replay import CHUNK
from tests.core.test_engine import T0, training
from tests.engine_replay import replay_log

DAY = 86400.0


@pytest.fixture(scope="module")
def ref():
    return training(5000)


def log(days: float, per_hour: float, seed: int = 0, start: float = T0, jitter_s: float = 5.0,
        disorder: float = 0.1) -> tuple[list[bytes], np.ndarray]:
    """Messages of a diurnal log in *log order*: write time = event time + jitter; some lines swapped."""
    rng = np.random.default_rng(seed)
    hours = int(days * 24)
    ts: list[np.ndarray] = []
    for h in range(hours):
        n = rng.poisson(per_hour * (1 + 0.8 * np.sin(2 * np.pi * (h % 24) / 24)))  # nights near empty
        ts.append(start + h * 3600 + np.sort(rng.random(n)) * 3600)
    t = np.concatenate(ts)
    order = np.argsort(t + rng.exponential(jitter_s, t.size), kind="stable")  # written with jitter
    t = t[order]
    swap = np.flatnonzero(rng.random(t.size - 1) < disorder / 2)  # neighbours swapped: ~disorder out of order
    t[swap], t[swap + 1] = t[swap + 1].copy(), t[swap].copy()
    msgs = [orjson.dumps({"prediction_id": f"p{i}", "model": "fraud", "ts": float(x),
                          "features": {"amount": 20.0, "n_tx": 2, "country": "DE"}, "score": 0.1,
                          "slices": {"region": "eu"}}) for i, x in enumerate(t.tolist())]
    return msgs, t


def replay(eng: Engine, msgs: list[bytes], chunk: int = CHUNK) -> list:
    return replay_log(eng, msgs, chunk).errors["predictions"]


@pytest.mark.parametrize("per_hour", [100, 5000])
def test_replay_of_a_log_accepts_every_line_at_low_and_high_rate(ref, per_hour):
    days = 14 if per_hour <= 500 else 2
    msgs, t = log(days, per_hour, seed=per_hour)
    assert (np.diff(t) < 0).mean() > 0.05  # the log really is out of order
    eng = Engine(DetectorSettings(), default_reference=ref)
    errors = replay(eng, msgs)
    assert errors == []
    assert eng.counters.late == 0 and eng.counters.predictions == len(msgs)
    assert eng.counters.windows_closed == days * 24


def test_a_backlog_of_days_in_one_batch_folds_into_all_windows_and_closes_them_in_order(ref):
    msgs, t = log(5, 200, seed=3)
    eng = Engine(DetectorSettings(), default_reference=ref)
    assert eng.ingest_predictions(msgs) == []
    closed = []
    orig = eng._close

    def spy(ms, w):
        out = orig(ms, w)
        closed.append((w.start, w.events))
        return out

    eng._close = spy
    eng.advance()
    starts = [s for s, _ in closed]
    assert starts == sorted(starts) and len(starts) >= 5 * 24 - 2  # all but the newest, still open
    expected = np.bincount(((t - T0) // 3600).astype(int))
    assert [n for _, n in closed] == expected[: len(closed)].tolist()


def test_a_stray_far_future_event_is_rejected_and_anchors_nothing(ref):
    msgs, _ = log(3, 300, seed=4)
    bad = orjson.dumps({"prediction_id": "x", "model": "fraud", "ts": T0 + 400 * DAY, "features": {"amount": 1.0}})
    eng = Engine(DetectorSettings(), default_reference=ref)
    half = len(msgs) // 2
    errors = eng.ingest_predictions(msgs[:half] + [bad])
    assert [e.reason for e in errors] == ["future_timestamp"]
    assert "ahead of the stream" in errors[0].detail and "clock" in errors[0].detail
    eng.advance()
    assert eng.ingest_predictions(msgs[half:]) == []
    assert eng.counters.late == 0


def test_single_event_batches_cannot_be_anchored_by_one_bad_clock(ref):
    """Without a wall clock and without a batch to judge by, a lone event is accepted but never
    moves the stream's progress on its own: the events after it are not late."""
    msgs, _ = log(1, 200, seed=5)
    eng = Engine(DetectorSettings(), default_reference=ref)
    for m in msgs[:300]:
        eng.ingest_predictions([m])
        eng.advance()
    eng.ingest_predictions([orjson.dumps({"prediction_id": "x", "model": "fraud", "ts": T0 + 30 * DAY,
                                          "features": {"amount": 1.0}})])
    eng.advance()
    for m in msgs[300:]:
        assert eng.ingest_predictions([m]) == []
        eng.advance()
    assert eng.counters.late == 0
    assert eng.high_water < T0 + DAY


def test_a_model_that_comes_back_after_an_outage_is_not_rejected(ref):
    a, _ = log(1, 300, seed=6)
    b, _ = log(1, 300, seed=7, start=T0 + 4 * DAY)  # three silent days, then traffic again
    eng = Engine(DetectorSettings(), default_reference=ref)
    assert replay(eng, a + b) == []
    assert eng.counters.predictions == len(a) + len(b) and eng.counters.late == 0


def test_live_future_means_ahead_of_the_wall_clock(ref):
    """A worker catching up days of backlog keeps everything; a producer sending local time as
    UTC (hours ahead of the worker's clock) is rejected, naming the clock."""
    now = T0 + 10 * DAY
    backlog, _ = log(3, 300, seed=8, start=now - 3 * DAY)
    eng = Engine(DetectorSettings(), default_reference=ref)
    for i in range(0, len(backlog), 50):  # small fetches, as a consumer reads them
        assert eng.ingest_predictions(backlog[i : i + 50], now=now) == []
        eng.advance()
    assert eng.counters.late == 0
    skewed = orjson.dumps({"prediction_id": "tz", "model": "fraud", "ts": now + 5 * 3600, "features": {"amount": 1.0}})
    ok = orjson.dumps({"prediction_id": "ok", "model": "fraud", "ts": now + 60, "features": {"amount": 1.0}})
    errors = eng.ingest_predictions([skewed, ok], now=now)
    assert [e.reason for e in errors] == ["future_timestamp"]
    assert "5.0 h ahead of the worker's clock" in errors[0].detail


def test_progress_needs_support_and_follows_the_tail_of_the_log():
    c = EventClock(max_future=DAY, max_clock_skew=900.0, allowed_lateness=60.0, window=3600.0)
    c.observe(np.arange(SUPPORT - 1, dtype=float))
    assert c.progress == -np.inf  # fewer than SUPPORT events: no evidence of progress yet
    c.observe(np.array([10.0, 11.0, 1e9]))  # one stray event does not carry progress
    assert c.progress < 100
    # a batch that is not in time order (sorted descending) only delays closing
    c.observe(np.arange(50_000.0, 1000.0, -1.0))
    assert c.progress < 2000 and c.advance_to(None) is not None and c.closed_before <= c.progress
