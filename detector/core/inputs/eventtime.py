"""Event time: which events are "from the future", how far the stream has got, which windows closed.

One rule for every driver (``replay``, the Kafka sidecar, the Python API), kept here so they agree.

**Future.** Live, the driver passes its wall clock (``now``; the core never reads a clock): an event
more than ``max_clock_skew`` ahead of it is a bad producer clock (a local time sent as UTC, a
wrong year). Offline there is no clock, so the batch itself says where the stream is: its
*front* is the 99th percentile of its timestamps (a batch of fewer than :data:`ROBUST_N` events:
its lower median) or the stream's progress, whichever is later, and an event more than ``max_future``
beyond the front is rejected. The front moves with the data, never with where a batch started:
a 20,000-line chunk of a quiet model that spans a week is accepted in full, and a model that comes
back after a two-day outage is not rejected.

**Progress.** The stream's progress advances only on *supported* evidence: the median timestamp
of the last lines of an accepted batch (the last 1%, at least :data:`SUPPORT` lines; log order,
so jitter and out-of-order lines do not matter), and never beyond the ``SUPPORT``-th largest
timestamp ever accepted. A single far-ahead event therefore never anchors the stream (it is
rejected when it is beyond the front, and otherwise waits in its own window without closing
anyone else's), and a batch that is not in time order only delays closing, never loses data.

**Late.** The watermark is ``progress - allowed_lateness`` (or what the driver says, e.g. the
slowest Kafka partition); a window ``[start, start + window)`` closes when the watermark passes
its end, windows close in order, and an event for a closed window is *late* (counted, not
folded in). A backlog of days in one batch folds into all of its windows before any of them
closes. State is a few floats and a list of ``SUPPORT`` timestamps (plain data).

>>> import numpy as np
>>> c = EventClock(max_future=86400.0, max_clock_skew=900.0, allowed_lateness=60.0, window=3600.0)
>>> ts = np.arange(0.0, 50 * 3600, 10.0)            # one batch spanning 50 h
>>> int(c.future(ts).sum())                          # nothing is "ahead of the stream"
0
>>> c.observe(ts); round(c.progress / 3600, 2)       # the median of its last 1% of lines
49.75
>>> nxt = np.append(np.arange(50 * 3600, 51 * 3600, 10.0), 40 * 86400.0)  # + a stray event weeks ahead
>>> np.flatnonzero(c.future(nxt)).tolist()
[360]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EventClock", "SUPPORT", "ROBUST_N", "TAIL_SHARE"]

SUPPORT = 8  # events that must agree before progress moves to a time
ROBUST_N = 100  # from this batch size on, the batch's 99th percentile is its front
TAIL_SHARE = 0.01  # share of a batch's last lines whose median timestamp is its progress


class EventClock:
    """Robust event-time progress of one engine (see the module docstring)."""

    def __init__(self, max_future: float, max_clock_skew: float, allowed_lateness: float, window: float) -> None:
        self.max_future = max_future
        self.max_clock_skew = max_clock_skew
        self.allowed_lateness = allowed_lateness
        self.window = window
        self.progress = -math.inf  # robust front of the accepted events
        self.top: list[float] = []  # the SUPPORT largest accepted timestamps, ascending
        self.watermark = -math.inf
        self.closed_before = -math.inf  # windows starting before this are closed

    # ------------------------------------------------------------------ admission
    def front(self, ts: np.ndarray) -> float:
        """Where the stream is, judged from this batch and the progress so far (offline)."""
        n = ts.size
        if n == 0:
            return self.progress
        if n >= ROBUST_N:
            k = n - 1 - n // ROBUST_N
            b = float(np.partition(ts, k)[k])
        else:
            b = float(np.partition(ts, (n - 1) // 2)[(n - 1) // 2])  # lower median
        return max(self.progress, b)

    def future(self, ts: np.ndarray, now: float | None = None) -> np.ndarray:
        """True for events too far ahead: of the wall clock ``now`` (live) or of the stream (offline)."""
        if now is not None:
            return ts > now + self.max_clock_skew
        return ts > self.front(ts) + self.max_future

    def ahead_text(self, t: float, ts: np.ndarray, now: float | None) -> str:
        """Why ``t`` was rejected, for the dead-letter record."""
        if now is not None:
            return (f"ts is {(t - now) / 3600:.1f} h ahead of the worker's clock (tolerance "
                    f"{self.max_clock_skew / 60:.0f} min); check the producer's clock and time zone")
        return (f"ts is {(t - self.front(ts)) / 3600:.1f} h ahead of the stream (tolerance "
                f"{self.max_future / 3600:.0f} h); check the producer's clock and time zone")

    def late(self, starts: np.ndarray) -> np.ndarray:
        """True for events whose window already closed."""
        return starts < self.closed_before

    # ------------------------------------------------------------------ progress
    def observe(self, ts: np.ndarray) -> None:
        """Advance progress on the accepted timestamps of one batch (in arrival order)."""
        n = ts.size
        if n == 0:
            return
        m = min(n, SUPPORT)
        largest = np.partition(ts, n - m)[n - m :] if n > m else ts
        self.top = sorted(self.top + largest.tolist())[-SUPPORT:]
        if len(self.top) < SUPPORT:
            return
        tail = ts[-max(SUPPORT, math.ceil(n * TAIL_SHARE)) :]
        candidate = min(float(np.median(tail)), self.top[0])
        self.progress = max(self.progress, candidate)

    def advance_to(self, watermark: float | None) -> float | None:
        """Move the watermark (default: progress minus the allowed lateness); None if it did not move."""
        if watermark is None:
            watermark = self.progress - self.allowed_lateness
        if watermark <= self.watermark:
            return None
        self.watermark = watermark
        self.closed_before = max(self.closed_before, math.floor(watermark / self.window) * self.window)
        return watermark
