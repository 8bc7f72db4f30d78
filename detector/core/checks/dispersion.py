"""How much more a value's daily share varies than independent events would make it (over-dispersion).

The trailing day's value-share test (:mod:`detector.core.checks.daily`) asks whether one exact value
holds more of a slice's events than training says. A binomial test assumes the events are
independent. Real traffic is not: a customer calls three times in the same lunch hour, a merchant
retries a batch, a region's morning is busier one day than the next - so on a slice with a hundred
events a day, a value's daily share wanders two or three times as far as the binomial variance
allows, and the test pages a perfectly ordinary day.

:class:`ShareHistory` keeps, per slice row, numeric feature and tracked candidate value, the hits and
the non-missing events of each of the last :data:`HISTORY_DAYS` whole days (the same counts the
trailing day sums, so a series held for an open incident enters as it usually is at that time of
day, not as the fault made it). :func:`overdispersion` turns them into a quasi-binomial dispersion
factor, Pearson's chi-square of the daily counts around their pooled share over its degrees of
freedom (``phi = X2 / (D - 1)``), shrunk toward 1 by :data:`PRIOR_DF` pseudo-days of independent
traffic (a short history cannot claim much dispersion) and floored at 1 (a history quieter than
binomial never makes the test bolder). Until a series has :data:`MIN_DAYS` whole days, the same
estimate over the trailing day's hourly windows stands in when it is larger: it also counts the share's swing over
the hours of the day (and, mid-fault, the fault's own onset) as dispersion, so it is conservative -
the price of not knowing yet how bursty the traffic is. The test then counts the day as ``n / phi`` independent
events (Kish's design effect) and takes the binomial tail itself, not its normal approximation
(:func:`quasi_binomial_sf`): a day of a few dozen effective events made of a handful of bursts has
a long right tail. A pipeline default that moves a value from 8% to 40% still stands far out; a
bursty day at twice the usual share of a clustered value does not.

Memory: ``HISTORY_DAYS`` x (slice rows x numeric blocks x candidates + slice rows x numeric blocks).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from scipy.special import betainc

__all__ = ["ShareHistory", "overdispersion", "quasi_binomial_sf", "spread", "HISTORY_DAYS", "PRIOR_DF", "MIN_DAYS"]

#: whole days of daily counts kept (two weeks: every weekday twice)
HISTORY_DAYS = 14
#: the prior's weight, in days, on "events are independent" (phi = 1): a history of d days moves the factor
#: d / (d + PRIOR_DF) of the way to what it shows
PRIOR_DF = 4.0
#: whole days a series needs before its day-to-day dispersion is used alone; before that (a new deployment,
#: a newly tracked value) the hour-to-hour dispersion within the trailing day, when larger, stands in
MIN_DAYS = 4


class ShareHistory:
    """Daily (hits, events) of the tracked candidate values, for the last :data:`HISTORY_DAYS` whole days.

    Days are consecutive ``period``-long spans from the first window added; a day is kept once a window
    at or after its end arrives. ``hits`` has shape (rows, blocks, candidates), ``events`` (rows, blocks).
    """

    def __init__(self, period: float = 86400.0, days: int = HISTORY_DAYS) -> None:
        self.period = period
        self.keep = days
        self.start = math.nan  # start of the day being summed
        self.hits: np.ndarray | None = None
        self.events: np.ndarray | None = None
        self.days: deque[tuple[float, np.ndarray, np.ndarray]] = deque()

    def add(self, start: float, hits: np.ndarray, events: np.ndarray) -> None:
        """Add one closed window starting at ``start`` (windows arrive in order)."""
        if math.isnan(self.start):
            self.start = start
        if start >= self.start + self.period:
            if self.hits is not None and self.events is not None:
                self.days.append((self.start, self.hits, self.events))
                while len(self.days) > self.keep:
                    self.days.popleft()
            self.start += self.period * math.floor((start - self.start) / self.period)
            self.hits = self.events = None
        if self.hits is None or self.events is None or self.hits.shape != hits.shape or self.events.shape != events.shape:
            self.hits, self.events = hits.astype(np.float64), events.astype(np.float64)
        else:
            self.hits = self.hits + hits
            self.events = self.events + events

    def to_state(self) -> dict[str, Any]:
        return {"period": self.period, "keep": self.keep, "start": self.start, "hits": self.hits, "events": self.events,
                "days": [[s, h, e] for s, h, e in self.days]}

    @classmethod
    def from_state(cls, st: Any, rows: int) -> ShareHistory:
        from detector.core.state.codec import check

        check(isinstance(st, dict) and isinstance(st.get("days"), list) and {"period", "keep", "start", "hits", "events"} <= set(st),
              "daily value-share history state")

        def arr(a: Any, ndim: int) -> np.ndarray:
            check(isinstance(a, np.ndarray) and a.ndim == ndim and a.shape[0] == rows and a.dtype.kind == "f",
                  "daily value-share history counts")
            return np.asarray(a, dtype=np.float64)

        h = cls(float(st["period"]), int(st["keep"]))
        h.start = float(st["start"])
        if st["hits"] is not None or st["events"] is not None:
            h.hits, h.events = arr(st["hits"], 3), arr(st["events"], 2)
        for d in st["days"]:
            check(isinstance(d, list) and len(d) == 3, "daily value-share history day")
            h.days.append((float(d[0]), arr(d[1], 3), arr(d[2], 2)))
        while len(h.days) > h.keep:
            h.days.popleft()
        return h

    def dispersion(self, since: np.ndarray, before: float, ext: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """(dispersion factor, days it rests on) per (pseudo-row, block, candidate), from the whole days
        that ended at or before ``before`` (not overlapping the day under test) and started at or after
        ``since[block, candidate]`` (the candidate was tracked all day); None without such days. ``ext``
        maps a (rows, ...) array to the view's pseudo-rows."""
        use = [(s, ext(h), ext(e)) for s, h, e in self.days if s + self.period <= before]
        if not use:
            return None
        return spread([s for s, _, _ in use], [h for _, h, _ in use], [e for _, _, e in use], since)


def spread(starts: list[float], hits: list[np.ndarray], events: list[np.ndarray], since: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dispersion, spans with data) of candidate hits (P, J, C) over events (P, J) across spans (days or
    windows) starting at ``starts``; a span counts for a candidate only if tracked from its start (``since``)."""
    x = np.stack(hits)  # (D, P, J, C)
    n = np.broadcast_to(np.stack(events)[..., None], x.shape)
    tracked = np.stack([np.asarray(since) <= s for s in starts])[:, None]  # (D, 1, J, C)
    n = np.where(tracked, n, 0.0)
    return overdispersion(np.where(tracked, x, 0.0), n), (n > 0).sum(axis=0)


def overdispersion(x: np.ndarray, n: np.ndarray, prior_df: float = PRIOR_DF) -> np.ndarray:
    """Quasi-binomial dispersion of ``x`` successes in ``n`` trials along axis 0 (the days; ``n == 0``
    marks a day without data): ``phi = X2 / (D - 1)`` with Pearson's ``X2`` around the pooled share,
    shrunk toward 1 with ``prior_df`` pseudo-degrees of freedom, floored at 1. 1 where fewer than two
    days have data or the pooled share is 0 or 1.

    >>> n = np.full(10, 100.0)
    >>> float(overdispersion(np.array([8, 9, 7, 8, 10, 6, 8, 9, 7, 8.0]), n))  # steadier than binomial
    1.0
    >>> round(float(overdispersion(np.array([3, 17, 14, 4, 10, 5, 21, 6, 3, 9.0]), n)), 2)  # bursty
    3.58
    """
    x = np.asarray(x, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    has = n > 0
    d = has.sum(axis=0)
    X, N = x.sum(axis=0), n.sum(axis=0)
    p = np.divide(X, N, out=np.zeros(X.shape), where=N > 0)
    var = n * p * (1 - p)
    chi = np.where(has & (var > 0), (x - n * p) ** 2 / np.where(var > 0, var, 1.0), 0.0).sum(axis=0)
    df = np.maximum(d - 1, 0).astype(np.float64)
    ok = (df >= 1) & (p > 0) & (p < 1)
    phi = np.where(ok, (chi + prior_df) / np.maximum(df + prior_df, 1e-12), 1.0)
    return np.maximum(phi, 1.0)


def quasi_binomial_sf(x: np.ndarray, n: np.ndarray, p0: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """P(X >= x) for ``x`` hits in ``n`` events under share ``p0`` when the events count as ``n / phi``
    independent ones: the binomial upper tail at the effective counts, continued to real counts through
    the regularised incomplete beta function (``P(X >= k) = I_p0(k, n - k + 1)`` for integers). 1 where
    there is nothing to test, 0 for hits above a share of 0.

    >>> float(quasi_binomial_sf(np.array(3.0), np.array(10.0), np.array(0.1), np.array(1.0)))  # = binom.sf(2, 10, .1)
    0.07019...
    >>> a, b = quasi_binomial_sf(np.array([21.0, 21.0]), np.array([101.0, 101.0]), np.array([0.08, 0.08]), np.array([1.0, 3.0]))
    >>> bool(a < 1e-3 < b)
    True
    """
    x, n, p0, phi = (np.asarray(a, dtype=np.float64) for a in (x, n, p0, phi))
    ph = np.maximum(phi, 1.0)
    xe, ne = x / ph, n / ph
    ok = (xe > 0) & (ne > 0) & (ne - xe > -1)
    pv = np.where(ok, betainc(np.where(ok, np.maximum(xe, 1e-12), 1.0), np.where(ok, np.maximum(ne - xe + 1, 1e-12), 1.0),
                              np.clip(p0, 0.0, 1.0)), 1.0)
    return np.where(ok & (p0 <= 0), 0.0, pv)
