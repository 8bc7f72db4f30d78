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
own yardstick), per degree of freedom ``(days - 1) (bins - 1) / days`` of a day, taken as the
**median** day's (over the median of a chi-square: a minority of far days - a drift's first days,
an incident, a weekend - does not set every day's yardstick), shrunk toward 1 by
:data:`~detector.core.checks.dispersion.PRIOR_DF` pseudo-degrees of freedom of independent traffic
(the value-share test's prior; a day of ``K`` bins brings ``K - 1`` degrees of freedom, so two days
already say much) and floored at 1 (a history steadier than multinomial never makes the test
bolder). Bins too sparse for Pearson's statistic (under :data:`MIN_EXPECTED` expected events a day)
are pooled into one.

Under the Dirichlet-multinomial model of clustered counts (every day's mix drawn around a long-run
mix, events drawn from the day's mix) the G statistic of a day against the long-run mix is ``phi``
times a chi-square, so the day counts as ``n / phi`` independent events (Kish's design effect) -
the trailing day's G-test is taken on the counts divided by ``phi``. A pipeline fault or a drift
that moves the distribution well beyond the day-to-day spread still stands out, and the gross
faults (units, missing values, unseen categories, a default value, schema) are judged hourly
whatever the day does.

**The week.** Training without timestamps is the all-days mix, and a Sunday is not an average day:
it is a systematic difference, not noise, so it is handled as the slice mix is
(:mod:`detector.core.checks.remix`), by re-weighting the reference rather than by widening the
yardstick for every day. Once a week of whole days exists, the trailing day is also compared with
training **re-weighted by production's time-of-week profile** (:func:`tilted`: per bin, the share
in the days at the same time of earlier weeks - :func:`same_week`, weighted by overlap, since the
history's days begin when the stream began - over the share in all the days), and the more
charitable of the two comparisons is kept. A Sunday is then compared with training as a Sunday
looks; a shift present since the first day cancels in the ratio and still shows; a new shift that
the weekly pattern does not explain stands out in both. The re-weighted reference is itself
estimated from one or two witness days, so its G-test counts their sampling noise
(``1 / n' = 1 / n_training + phi / n_same + phi / n_all``). The price: a new mix that leans the
way this time of the week always does is explained by it on that day and found on the next
ordinary one. In the first week there is no witness: a weekend is judged by the weekdays' spread
alone (the hourly checks and the critical effect sizes do not depend on it).

Memory: ``HISTORY_DAYS`` x slice rows x (coarse bins + category columns).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from typing import Any

import numpy as np
from scipy.stats import chi2

from detector.core.checks.dispersion import HISTORY_DAYS, PRIOR_DF

__all__ = ["DaySums", "multinomial_overdispersion", "same_week", "tilted", "MIN_EXPECTED"]

#: expected events a day a bin needs to count on its own in Pearson's statistic; sparser bins are pooled
MIN_EXPECTED = 1.0
WEEK = 7 * 86400.0


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

    def before(self, end: float) -> list[tuple[float, dict[str, np.ndarray]]]:
        """(start, arrays) of the whole days that ended at or before ``end`` (none overlapping the day under test)."""
        return [(s, a) for s, a in self.days if s + self.period <= end]

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


def multinomial_overdispersion(c: np.ndarray, prior_df: float = PRIOR_DF, min_expected: float = MIN_EXPECTED,
                               weights: np.ndarray | None = None, robust: bool = False) -> np.ndarray:
    """Dispersion of daily category counts ``c`` (days x rows x bins) around each row's pooled mix of all the
    days: ``phi = X2 / ((D - 1)(K - 1))`` over the ``D`` days with data and the ``K`` bins (sparse ones pooled),
    shrunk toward 1 with ``prior_df`` pseudo-degrees of freedom, floored at 1; 1 for a row with under two days
    or one bin. ``weights`` (one per day, default 1): how much each day's own scatter counts (the center is
    always the pooled mix of every day); a day's share of the degrees of freedom is ``(K - 1)(D - 1) / D``.
    ``robust``: the median day's ``X2`` per degree of freedom (over the median of a chi-square's) instead of
    the mean - a minority of far days (a drift's first days, a weekend) does not set every day's yardstick.

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
    x2, k, has = _pearson_days(c, min_expected)
    w = np.ones(c.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    wd = np.where(has, w[:, None], 0.0)  # (D, P)
    d = has.sum(axis=0)
    per_day = np.maximum(k - 1, 0) * np.divide(np.maximum(d - 1, 0), d, out=np.zeros(d.shape), where=d > 0)
    df = wd.sum(axis=0) * per_day
    if robust:
        ratio = np.where(has & (per_day > 0), x2 / np.where(per_day > 0, per_day, 1.0), np.nan)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # rows without days: NaN, handled below
            med = np.nanmedian(ratio, axis=0)
        unit = np.where(per_day > 0, chi2.median(np.maximum(per_day, 1e-12)) / np.maximum(per_day, 1e-12), 1.0)
        X2 = np.nan_to_num(med / unit) * df
    else:
        X2 = (wd * x2).sum(axis=0)
    ok = (d >= 2) & (k >= 2) & (df > 0)
    phi = np.where(ok, (X2 + prior_df) / np.maximum(df + prior_df, 1e-12), 1.0)
    return np.maximum(phi, 1.0)


def same_week(starts: np.ndarray, day_start: float, period: float = 86400.0) -> np.ndarray:
    """Weight of each earlier whole day (starting at ``starts``) as a witness of the day starting at ``day_start``
    at the same time of an earlier week: its overlap with that time, as a share of a day (0 for days within the
    last week, and for every day when the days are a week or longer). The history's days begin when the stream
    began, not at midnight, so a Sunday is witnessed by the two days around last Sunday, in proportion."""
    st = np.asarray(starts, dtype=np.float64)
    if period >= WEEK or st.size == 0:
        return np.zeros(st.shape)
    lag = day_start - st
    weeks = np.round(lag / WEEK)
    return np.where(weeks >= 1, np.maximum(0.0, 1.0 - np.abs(lag - weeks * WEEK) / period), 0.0)


def tilted(ref_p: np.ndarray, same: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """Training's mix ``ref_p`` (rows x bins) re-weighted by production's time-of-week profile: per bin, the share
    at the same time of earlier weeks (``same``: counts) over the share of all the history (``pooled``), half an
    event added to every bin of both (a bin the witnesses happen to miss is not impossible). Where production
    has no weekly pattern the ratio is about 1 and this is training; where Sundays differ it is training as a
    Sunday would look; a shift present since the first day cancels in the ratio and still shows.

    >>> r = tilted(np.array([[0.5, 0.5]]), np.array([[300.0, 100.0]]), np.array([[2000.0, 2000.0]]))
    >>> np.round(r, 2).tolist()
    [[0.75, 0.25]]
    """
    s = np.asarray(same, dtype=np.float64) + 0.5
    q = np.asarray(pooled, dtype=np.float64) + 0.5
    ratio = (s / s.sum(axis=-1, keepdims=True)) / (q / q.sum(axis=-1, keepdims=True))
    out = np.asarray(ref_p, dtype=np.float64) * ratio
    return out / np.maximum(out.sum(axis=-1, keepdims=True), 1e-12)


def _pearson_days(c: np.ndarray, min_expected: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Pearson X2 of each day around the pooled mix (D, P), bins per row after pooling the sparse ones (P,),
    days with data (D, P))."""
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
    x2 = np.where(use, (cc - E) ** 2 / np.where(use, E, 1.0), 0.0).sum(axis=2)
    return x2, (pp > 0).sum(axis=1), has
