"""How much more a feature's whole daily distribution varies than independent events would make it.

The trailing day's distribution tests against training (PSI of the coarse bins, L-infinity of the
category mix: :mod:`detector.core.checks.daily`) take a G-test p-value. A G-test assumes that the
day's events are independent draws from one distribution. Days are not: a Sunday has another
merchant mix than a Tuesday, a campaign or a burst of retries fills one bin for an afternoon, a
region's evening is busier one day than the next. On a slice with a few hundred events a day the
daily distribution then wanders several times as far from its long-run mix as multinomial noise
allows, and a G-test against training (which, without timestamps, is exactly that long-run mix)
pages an ordinary weekend.

This is the multinomial form of the value-share test's quasi-binomial correction
(:mod:`detector.core.checks.dispersion`). :class:`DaySums` keeps, per slice row, every numeric
feature's coarse bins and every categorical feature's category counts of each of the last
:data:`~detector.core.checks.dispersion.HISTORY_DAYS` whole days (the counts the trailing day sums:
a series held for an open incident enters as it usually is at that time of day).
:func:`multinomial_overdispersion` turns one feature's days into a dispersion factor: Pearson's
chi-square of every day's counts around **production's own pooled mix** of those days (not around
training - a shift present since the first day moves the pooled mix with it and does not widen its
own yardstick) over its degrees of freedom ``(days - 1) (bins - 1)``, shrunk toward 1 by
:data:`~detector.core.checks.dispersion.PRIOR_DF` pseudo-days of independent traffic and floored at
1 (a history steadier than multinomial never makes the test bolder). Bins too sparse for Pearson's
statistic (fewer than :data:`MIN_EXPECTED` expected events a day) are pooled into one.

Under the Dirichlet-multinomial model of clustered counts (every day's mix drawn around a long-run
mix, events drawn from the day's mix) the G statistic of a day against the long-run mix is ``phi``
times a chi-square, so the day counts as ``n / phi`` independent events (Kish's design effect) -
the trailing day's G-test is taken on the counts divided by ``phi``. A weekly pattern is part of
that spread: a Sunday is as far from the all-days mix as production's own Sundays are from
production's own all-days mix, and that is what ``phi`` measures once one weekend has passed. A
pipeline fault or a drift that moves the distribution well beyond the day-to-day spread still stands
out, and the gross faults (units, missing values, unseen categories, a default value, schema) are
judged hourly whatever the day does.

Memory: ``HISTORY_DAYS`` x slice rows x (coarse bins + category columns).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from detector.core.checks.dispersion import HISTORY_DAYS, PRIOR_DF

__all__ = ["DaySums", "multinomial_overdispersion", "MIN_EXPECTED"]

#: expected events a day a bin needs to count on its own in Pearson's statistic; sparser bins are pooled
MIN_EXPECTED = 5.0


class DaySums:
    """Whole days of named count arrays (each ``(rows, columns)``), for the last ``days`` days.

    Days are consecutive ``period``-long spans from the first window added (the spans of
    :class:`~detector.core.checks.dispersion.ShareHistory`); a day is kept once a window at or after its
    end arrives."""

    def __init__(self, period: float = 86400.0, days: int = HISTORY_DAYS) -> None:
        self.period = period
        self.keep = days
        self.start = math.nan  # start of the day being summed
        self.cur: dict[str, np.ndarray] | None = None
        self.days: deque[tuple[float, dict[str, np.ndarray]]] = deque()

    def add(self, start: float, arrays: dict[str, np.ndarray]) -> None:
        """Add one closed window starting at ``start`` (windows arrive in order)."""
        if math.isnan(self.start):
            self.start = start
        if start >= self.start + self.period:
            if self.cur is not None:
                self.days.append((self.start, self.cur))
                while len(self.days) > self.keep:
                    self.days.popleft()
            self.start += self.period * math.floor((start - self.start) / self.period)
            self.cur = None
        if self.cur is None or {k: a.shape for k, a in self.cur.items()} != {k: a.shape for k, a in arrays.items()}:
            self.cur = {k: np.asarray(a, dtype=np.float64).copy() for k, a in arrays.items()}
        else:
            self.cur = {k: self.cur[k] + a for k, a in arrays.items()}

    def before(self, end: float) -> list[dict[str, np.ndarray]]:
        """The whole days that ended at or before ``end`` (none overlapping the day under test)."""
        return [a for s, a in self.days if s + self.period <= end]

    def to_state(self) -> dict[str, Any]:
        return {"period": self.period, "keep": self.keep, "start": self.start, "cur": self.cur,
                "days": [[s, a] for s, a in self.days]}

    @classmethod
    def from_state(cls, st: Any, rows: int) -> DaySums:
        from detector.core.state.codec import check

        check(isinstance(st, dict) and isinstance(st.get("days"), list) and {"period", "keep", "start", "cur"} <= set(st),
              "daily distribution history state")

        def arrays(d: Any) -> dict[str, np.ndarray]:
            check(isinstance(d, dict) and all(isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[0] == rows
                                              and a.dtype.kind == "f" for a in d.values()), "daily distribution history counts")
            return {str(k): np.asarray(a, dtype=np.float64) for k, a in d.items()}

        h = cls(float(st["period"]), int(st["keep"]))
        h.start = float(st["start"])
        h.cur = None if st["cur"] is None else arrays(st["cur"])
        for d in st["days"]:
            check(isinstance(d, list) and len(d) == 2, "daily distribution history day")
            h.days.append((float(d[0]), arrays(d[1])))
        while len(h.days) > h.keep:
            h.days.popleft()
        return h


def multinomial_overdispersion(c: np.ndarray, prior_days: float = PRIOR_DF, min_expected: float = MIN_EXPECTED) -> np.ndarray:
    """Dispersion of daily category counts ``c`` (days x rows x bins) around each row's pooled mix:
    ``phi = X2 / ((D - 1)(K - 1))`` over the ``D`` days with data and the ``K`` bins (sparse ones pooled),
    shrunk toward 1 with ``prior_days`` pseudo-days, floored at 1; 1 for a row with under two days or one bin.

    >>> rng = np.random.default_rng(0)
    >>> steady = rng.multinomial(300, [0.4, 0.3, 0.2, 0.1], size=(12, 1)).astype(float)
    >>> float(multinomial_overdispersion(steady)[0]) < 1.3
    True
    >>> mixes = rng.dirichlet([8, 6, 4, 2], size=12)  # every day its own mix (weekends, bursts)
    >>> bursty = np.stack([rng.multinomial(300, m) for m in mixes])[:, None].astype(float)
    >>> float(multinomial_overdispersion(bursty)[0]) > 5
    True
    """
    c = np.maximum(np.asarray(c, dtype=np.float64), 0.0)
    if c.ndim != 3 or c.shape[0] < 2:
        return np.ones(c.shape[1] if c.ndim == 3 else 1)
    n = c.sum(axis=2)  # (D, P)
    has = n > 0
    d = has.sum(axis=0)
    total = c.sum(axis=0)  # (P, B)
    N = total.sum(axis=1)
    per_day = np.divide(N, d, out=np.zeros(N.shape), where=d > 0)
    p = np.divide(total, N[:, None], out=np.zeros(total.shape), where=N[:, None] > 0)
    sparse = p * per_day[:, None] < min_expected
    # sparse bins pooled into one column (zero when none)
    cc = np.concatenate([np.where(sparse[None], 0.0, c), np.where(sparse[None], c, 0.0).sum(axis=2, keepdims=True)], axis=2)
    pp = np.concatenate([np.where(sparse, 0.0, p), np.where(sparse, p, 0.0).sum(axis=1, keepdims=True)], axis=1)
    E = n[..., None] * pp[None]
    use = has[..., None] & (E > 0)
    X2 = np.where(use, (cc - E) ** 2 / np.where(use, E, 1.0), 0.0).sum(axis=(0, 2))
    k = (pp > 0).sum(axis=1)
    df = (np.maximum(d - 1, 0) * np.maximum(k - 1, 0)).astype(np.float64)
    prior = prior_days * np.maximum(k - 1, 0)
    ok = df >= 1
    phi = np.where(ok, (X2 + prior) / np.maximum(df + prior, 1e-12), 1.0)
    return np.maximum(phi, 1.0)
