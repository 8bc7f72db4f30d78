"""Label join: predictions wait, bounded and in event time, for labels that come late, twice or never.

Predictions wait in a :class:`~detector.core.outcomes.pending.RingStore` (behind the small
:class:`~detector.core.outcomes.pending.PendingStore` protocol, :mod:`detector.core.outcomes.pending`):
bounded in number (``max_pending``, the oldest evicted) and in event time (``ttl``; a labelled
record stays until its TTL too, so a later correction still finds it).

:class:`LabelJoin` applies the label semantics of the event contract (README), whatever the arrival order:

=========================================  ===================================================
label event                                outcome
=========================================  ===================================================
first label for a held prediction          *matched*; delay = label ts - prediction ts
same value, revision <= the held one       *duplicate* (counted, never double counted)
``revision`` > held one, or same revision  *correction*: replaces the earlier label (the caller
but another value                          moves the pair in its cohort counts)
lower revision than the held one           stale: counted as a *duplicate*, ignored
a value the prediction's model does not    *rejected* (``accepts``): e.g. 7.5 for a binary
take                                       model, sent without ``model`` to a sidecar that
                                           also watches a regression model; never stored
no prediction held for the id              held up to ``early_hold`` past its own ts (the
                                           prediction may be behind in another topic), at most
                                           ``max_early`` of them; then an *orphan*
prediction never labelled                  *expired* after ``ttl`` (or *evicted*), exactly once
=========================================  ===================================================

The final label of a prediction is therefore the one with the highest revision, independent of
arrival order (ties of revision: the last value to arrive wins). Expiry walks the ring in
arrival order: a record expires once it and every record that arrived before it are older than
``ttl`` (predictions arrive nearly in time order, within the engine's lateness).

Memory: held predictions as :mod:`~detector.core.outcomes.pending` says (roughly 1 GB at the
default ``max_pending`` of 5M); early labels at ``EARLY_OVERHEAD`` (300) bytes plus their id each,
bounded both in number (``max_early``) and in bytes (``max_early_bytes``,
``detector.max_early_label_bytes``). Delays are binned on :data:`DELAY_EDGES` (log-spaced).

>>> j = LabelJoin(ttl=86400.0, max_pending=1000, early_hold=3600.0)
>>> from detector.core.inputs.events import LabelBatch
>>> def lab(i, y, rev=0): return LabelBatch([i], np.array([500.0]), np.array([float(y)]), np.array([rev]), [None])
>>> j.add_labels(lab("a", 1))[0].slots.size        # label before its prediction: held
0
>>> stored, m = j.add_predictions(0, ["a", "b"], np.array([100.0, 110.0]), np.array([0.9, 0.2]),
...                               np.array([1, 0], dtype=np.int8), np.zeros((2, 0), dtype=np.int16))
>>> m.slots.tolist(), m.delay.tolist()
([0], [400.0])
>>> j.add_labels(lab("a", 1))[0].slots.size, j.add_labels(lab("a", 0, rev=1))[0].old.tolist()
(0, [1.0])
>>> j.expire(110.0 + 86400.0 + 1), dict(j.counters)["expired"], dict(j.counters)["corrections"]
(1, 1, 1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.inputs.events import LabelBatch
from detector.core.outcomes.pending import PENDING, PendingStore, RingStore, Rows
from detector.core.stats import effects

__all__ = [
    "DELAY_EDGES", "N_DELAY", "delay_bins", "hist_quantile", "PendingStore", "RingStore", "Rows", "Matches",
    "LabelJoin", "PENDING",
]


#: Label-delay bin edges in seconds: 1 s .. 1e7 s (~116 days), 4 bins per decade; bin 0 is
#: [0, 1 s) (negative delays, i.e. label ts before prediction ts, are clamped to 0).
DELAY_EDGES = 10.0 ** np.arange(0.0, 7.01, 0.25)
N_DELAY = len(DELAY_EDGES) + 1


def delay_bins(delay: np.ndarray) -> np.ndarray:
    """Delay histogram bin of each delay (seconds)."""
    return np.searchsorted(DELAY_EDGES, np.maximum(delay, 0.0), side="right")


def hist_quantile(h: np.ndarray, q: float) -> float:
    """``q``-quantile (seconds) of a delay histogram: :func:`detector.core.stats.effects.hist_quantile`
    on :data:`DELAY_EDGES` (log-linear inside a bin), NaN if empty.

    >>> h = np.zeros(N_DELAY); h[delay_bins(np.array([100.0]))] = 10
    >>> 56 < hist_quantile(h, 0.5) < 178
    True
    """
    return float(effects.hist_quantile(h, DELAY_EDGES, q, log=True))


@dataclass
class Matches:
    """Label changes produced by one call: first labels (``old == -1``) and corrections."""

    slots: np.ndarray  # store slots whose label changed
    label: np.ndarray  # new label, float64
    old: np.ndarray  # previous label (float64), NaN (PENDING) = this is the first label (a match)
    delay: np.ndarray  # label ts - prediction ts (seconds; NaN for corrections)
    rows: Rows  # the predictions, read before the change (``rows.label`` is the old label)
    ids: list[str] = field(default_factory=list)  # prediction id per slot (for outcome listeners)

    @property
    def first(self) -> np.ndarray:
        """Per change: is it the pair's first label (a match), not a correction?"""
        return np.isnan(self.old)

    @classmethod
    def empty(cls, store: PendingStore) -> Matches:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z.astype(np.float64), z.astype(np.float64), z.astype(np.float64), store.read(z))


#: CPython bytes of one held early label besides its id's characters: the id str header (49),
#: the [label, revision, ts] list (56 + 3 x 8) and its floats (3 x 24), and the dict slot (~100)
EARLY_OVERHEAD = 300


def early_cost(pid: str) -> int:
    """Estimated bytes an early label with this id holds (the unit of ``max_early_bytes``)."""
    return EARLY_OVERHEAD + len(pid)


_COUNTERS = ("matched", "duplicates", "corrections", "expired", "evicted", "orphans", "rejected")


class LabelJoin:
    """Match label events to held predictions (see the module docstring for the semantics)."""

    def __init__(self, ttl: float, max_pending: int, early_hold: float, max_early: int = 100_000,
                 store: PendingStore | None = None, max_early_bytes: int = 64 << 20) -> None:
        self.store: PendingStore = store if store is not None else RingStore(ttl, max_pending)
        self.early_hold = float(early_hold)
        self.max_early = int(max_early)
        self.max_early_bytes = int(max_early_bytes)
        self.early: dict[str, list[float]] = {}  # id -> [label, revision, label ts]
        self.early_bytes = 0  # estimated memory of ``early`` (see early_cost)
        self.counters = dict.fromkeys(_COUNTERS, 0)
        #: ``accepts(model_idx, y)``: which labels the models of their predictions take (None: all); the
        #: others are *rejected* when they meet their prediction, so a cohort never counts them
        self.accepts: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    # ------------------------------------------------------------------ predictions
    def add_predictions(self, model: int, ids: list[str], ts: np.ndarray, score: np.ndarray, pred: np.ndarray,
                        codes: np.ndarray, aux: np.ndarray | None = None) -> tuple[np.ndarray, Matches | None]:
        """Hold predictions; returns (stored mask, matches with labels that were waiting for them)."""
        stored = (self.store.put_many(model, ids, ts, score, pred, codes, aux) if aux is not None
                  else self.store.put_many(model, ids, ts, score, pred, codes))
        if not self.early:
            return stored, None
        hits = [i for i in ids if i in self.early]
        if not hits:
            return stored, None
        recs = [self.early.pop(i) for i in dict.fromkeys(hits)]
        self.early_bytes -= sum(map(early_cost, dict.fromkeys(hits)))
        arr = np.array(recs, dtype=np.float64).reshape(-1, 3)
        return stored, self._apply(list(dict.fromkeys(hits)), arr[:, 0], arr[:, 1].astype(np.int64), arr[:, 2], hold=False)

    # ------------------------------------------------------------------ labels
    def add_labels(self, batch: LabelBatch, sink: Callable[[Matches], None] | None = None) -> list[Matches]:
        """Apply label events; one :class:`Matches` per round (the k-th label of each id in the batch).

        ``sink`` is called with each round before the next one is computed, so a caller that
        folds pairs (and marks them counted) sees round 1's pair when round 2 corrects it.
        """
        ids = batch.ids
        if len(set(ids)) == len(ids):
            rounds = [np.arange(len(ids))]
        else:
            seen: dict[str, int] = {}
            occ = np.empty(len(ids), dtype=np.int64)
            for k, i in enumerate(ids):
                seen[i] = occ[k] = seen.get(i, -1) + 1
            rounds = [np.flatnonzero(occ == k) for k in range(int(occ.max()) + 1)]
        out = []
        for sel in rounds:
            m = self._apply([ids[i] for i in sel.tolist()], batch.label[sel], batch.revision[sel], batch.ts[sel], hold=True)
            if sink is not None:
                sink(m)
            out.append(m)
        return out

    def _apply(self, ids: list[str], y: np.ndarray, rev: np.ndarray, lts: np.ndarray, hold: bool) -> Matches:
        st = self.store
        slots = st.get_many(ids)
        found = slots >= 0
        if not found.all():
            if hold:
                for i in np.flatnonzero(~found).tolist():
                    self._hold(ids[i], float(y[i]), int(rev[i]), float(lts[i]))
            else:  # its prediction was not kept after all (e.g. a batch beyond max_pending)
                self.counters["orphans"] += int((~found).sum())
        if not found.any():
            return Matches.empty(st)
        if self.accepts is not None:  # a label its prediction's model does not take is never stored
            fits = np.ones(len(ids), bool)
            fits[found] = self.accepts(st.read(slots[found]).model, y[found].astype(np.float64))
            if not fits.all():
                self.counters["rejected"] += int((~fits).sum())
                found &= fits
                if not found.any():
                    return Matches.empty(st)
        s = slots[found]
        sid = [ids[i] for i in np.flatnonzero(found).tolist()]
        yy = y[found].astype(np.float64)
        rr = rev[found].astype(np.int64)
        rows = st.read(s)
        first = np.isnan(rows.label)
        newer = ~first & ((rr > rows.rev) | ((rr == rows.rev) & (yy != rows.label)))
        self.counters["matched"] += int(first.sum())
        self.counters["corrections"] += int(newer.sum())
        self.counters["duplicates"] += int((~first & ~newer).sum())
        ch = first | newer
        if not ch.all():
            s, yy, rr, lts_f = s[ch], yy[ch], rr[ch], lts[found][ch]
            sid = [i for i, keep in zip(sid, ch.tolist(), strict=True) if keep]
            rows = st.read(s)
            first = first[ch]
        else:
            lts_f = lts[found]
        old = rows.label.copy()
        st.write(s, yy, rr)
        delay = np.where(first, lts_f - rows.ts, np.nan)
        return Matches(s, yy, old, delay, rows, sid)

    def _hold(self, pid: str, y: float, rev: int, ts: float) -> None:
        cur = self.early.get(pid)
        if cur is None:
            self.early[pid] = [y, float(rev), ts]
            self.early_bytes += early_cost(pid)
            # bounds, in items and in bytes: the oldest held labels become orphans
            while self.early and (len(self.early) > self.max_early or self.early_bytes > self.max_early_bytes):
                old = next(iter(self.early))
                del self.early[old]
                self.early_bytes -= early_cost(old)
                self.counters["orphans"] += 1
        elif rev > cur[1] or (rev == cur[1] and y != cur[0]):
            cur[0], cur[1] = y, float(rev)
            self.counters["corrections"] += 1
        else:
            self.counters["duplicates"] += 1

    # ------------------------------------------------------------------ time
    def expire(self, now: float) -> int:
        """TTL expiry of predictions and of held labels (orphans); returns newly expired predictions."""
        n = self.store.expire(now)
        self.counters["expired"] += n
        self.counters["evicted"] = self.store.evicted
        cutoff = now - self.early_hold
        gone = []
        for k, rec in self.early.items():  # arrival order, which is nearly label-time order
            if rec[2] >= cutoff:
                break
            gone.append(k)
        for k in gone:
            del self.early[k]
            self.early_bytes -= early_cost(k)
        self.counters["orphans"] += len(gone)
        return n

    @property
    def coverage(self) -> float:
        """Share of predictions that left the store with a label (NaN before any left)."""
        c = self.counters
        done = c["matched"] + c["expired"] + c["evicted"]
        return c["matched"] / done if done else float("nan")

    @property
    def match_rate(self) -> float:
        """Share of label events (first labels) that found their prediction."""
        c = self.counters
        tot = c["matched"] + c["orphans"]
        return c["matched"] / tot if tot else float("nan")

    def to_state(self) -> dict[str, Any]:
        return {"store": self.store.to_state(), "early": {k: list(v) for k, v in self.early.items()},
                "counters": dict(self.counters), "early_hold": self.early_hold, "max_early": self.max_early}

    def load_state(self, st: dict[str, Any]) -> None:
        """Restore from :meth:`to_state` (hold time and bounds stay this join's, from the config)."""
        from detector.core.state.codec import check

        check(isinstance(st, dict) and isinstance(st.get("early"), dict) and isinstance(st.get("counters"), dict),
              "label join state")
        early = {}
        for k, v in st["early"].items():
            check(isinstance(v, list) and len(v) == 3, "held early label")
            early[str(k)] = [float(x) for x in v]
        while len(early) > self.max_early:
            del early[next(iter(early))]
        total = sum(map(early_cost, early))
        while early and total > self.max_early_bytes:
            total -= early_cost(old := next(iter(early)))
            del early[old]
        self.store.load_state(st["store"])
        self.early = early
        self.counters = {**dict.fromkeys(_COUNTERS, 0), **{k: int(st["counters"][k]) for k in _COUNTERS if k in st["counters"]}}
        self.early_bytes = sum(map(early_cost, self.early))
