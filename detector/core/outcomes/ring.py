"""One ring of served predictions: recent rows in numpy columns, found by ``prediction_id``.

The label join (:mod:`detector.core.outcomes.labels`), the feature-parity join
(:mod:`detector.core.outcomes.parity`) and the counterexample library
(:mod:`detector.core.outcomes.counterexamples`) each keep what a model served until its label or
its offline features arrive. They keep different columns; the ring is the same: a FIFO of at most
``max_rows`` rows (capacity doubles from ``initial`` up to it), an id -> slot index, the oldest
rows leaving first when it is full, older than a cutoff (:meth:`Ring.expire`) or over a byte
budget (:meth:`Ring.trim`). The first copy of an id stays (a retried prediction, or the same id
twice in one batch: the later copy is not indexed). Columns are declared once
(:class:`Column`: dtype, width, fill) and may be of any dtype, so a label column can hold 0/1,
class codes or regression targets alike.

Memory: ``max_rows x (bytes of the declared columns + ~100 bytes of id and index entry)``.

>>> r = Ring({"ts": Column(np.float64), "x": Column(np.float64, 2)}, max_rows=3, initial=2)
>>> r.put(["a", "b", "a"], {"ts": np.array([1.0, 2.0, 3.0]), "x": np.ones((3, 2))}).tolist()
[True, True, False]
>>> r.put(["c", "d"], {"ts": np.array([4.0, 5.0]), "x": np.zeros((2, 2))}).tolist()  # the 2 oldest leave
[True, True]
>>> sorted(r.index), r.expire(4.5), sorted(r.index)  # the dead copy of "a" held a slot until now
(['c', 'd'], 2, ['d'])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from detector.core.state.codec import check

__all__ = ["Column", "Ring"]

_CHUNK = 65536  # rows looked at per step when expiring


@dataclass(frozen=True)
class Column:
    """A declared column: dtype, width (``None``: one value per row) and the value of a new slot."""

    dtype: Any
    width: int | None = None
    fill: Any = 0


class Ring:
    """Bounded FIFO of rows in declared numpy columns plus ``ids``, indexed by id (see the module
    docstring). Columns are attributes of the ring (``ring.ts``, ``ring.label``); a slot is a row
    index into them, valid until the row leaves. The ``ts`` column (event time) is required."""

    def __init__(self, columns: dict[str, Column], max_rows: int, initial: int = 4096, max_bytes: int | None = None,
                 row_bytes: int = 0) -> None:
        check("ts" in columns, "a ring needs a ts column")
        self.columns = dict(columns)
        self._objects = [name for name, c in columns.items() if c.dtype is object]
        self.max_rows = max(1, int(max_rows))
        self.max_bytes, self.row_bytes = max_bytes, row_bytes
        self.id_bytes = 0  # characters of the indexed ids (counted only with a byte budget)
        self.index: dict[str, int] = {}
        self.head = self.size = 0
        self.initial = initial
        self._alloc(min(initial, self.max_rows))

    # ------------------------------------------------------------------ layout
    def _alloc(self, cap: int) -> None:
        self.cap = cap
        for name, c in self.columns.items():
            shape = (cap,) if c.width is None else (cap, c.width)
            setattr(self, name, np.full(shape, c.fill, dtype=c.dtype))
        self.ids = np.empty(cap, dtype=object)

    def __len__(self) -> int:
        return self.size

    @property
    def nbytes(self) -> int:
        """Estimated bytes of the rows held (columns at ``row_bytes`` a row, plus the ids' characters)."""
        return self.size * self.row_bytes + self.id_bytes

    def order(self) -> np.ndarray:
        """Slots of the rows held, oldest first."""
        return (self.head + np.arange(self.size)) % self.cap

    def widen(self, name: str, width: int) -> None:
        """Give 2-D column ``name`` at least ``width`` columns (new ones hold the column's fill)."""
        c = self.columns[name]
        if c.width is None or width <= c.width:
            return
        a = getattr(self, name)
        extra = np.full((self.cap, width - c.width), c.fill, dtype=c.dtype)
        setattr(self, name, np.concatenate([a, extra], axis=1))
        self.columns[name] = Column(c.dtype, width, c.fill)

    def _grow(self, need: int) -> None:
        cap = self.cap
        while cap < need and cap < self.max_rows:
            cap = min(cap * 2, self.max_rows)
        if cap == self.cap:
            return
        order = self.order()
        old = {name: getattr(self, name)[order] for name in self.columns}
        old_ids = self.ids[order]
        self._alloc(cap)
        for name, a in old.items():
            getattr(self, name)[: self.size] = a
        self.ids[: self.size] = old_ids
        self.head = 0
        self.index = {i: s for s, i in enumerate(old_ids.tolist()) if i is not None}  # dead slots hold no id

    # ------------------------------------------------------------------ rows in, rows out
    def drop_oldest(self, k: int) -> np.ndarray:
        """Remove the ``k`` oldest rows; returns their slots (their columns stay readable until reused)."""
        sl = (self.head + np.arange(k)) % self.cap
        idx = self.index
        counted = self.max_bytes is not None
        for i in self.ids[sl].tolist():
            if i is not None:  # every id in the ring is indexed to its slot
                del idx[i]
                if counted:
                    self.id_bytes -= len(i)
        self.ids[sl] = None
        for name in self._objects:  # let go of what the rows referred to
            getattr(self, name)[sl] = None
        self.head = (self.head + k) % self.cap
        self.size -= k
        return sl

    def put(self, ids: Sequence[str], cols: dict[str, np.ndarray], dead: dict[str, Any] | None = None,
            on_drop: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
        """Append rows (``cols``: some of the declared columns, one row per id; the others get their
        fill); returns which of them were stored. An id already held, or repeated in the batch, is
        not stored again (its later copy's slot is dead: no id, ``dead`` column values); of a batch
        longer than the ring only the newest rows are. ``on_drop(slots)`` sees the rows pushed out."""
        n = len(ids)
        stored = np.ones(n, dtype=bool)
        if n == 0:
            return stored
        if not self.index.keys().isdisjoint(ids):  # a retried prediction: the first copy stays
            stored = ~np.fromiter(map(self.index.__contains__, ids), dtype=bool, count=n)
        if n > self.max_rows:  # pathological batch: only its newest rows fit
            stored[: n - self.max_rows] = False
        pos = None
        if not stored.all():
            pos = np.flatnonzero(stored)
            ids = [ids[i] for i in pos.tolist()]
            cols = {k: v[pos] for k, v in cols.items()}
            n = len(ids)
            if n == 0:
                return stored
        if self.size + n > self.cap:
            self._grow(self.size + n)
        over = self.size + n - self.cap
        if over > 0:
            dropped = self.drop_oldest(over)
            if on_drop is not None:
                on_drop(dropped)
        sl = (self.head + self.size + np.arange(n)) % self.cap
        for name, c in self.columns.items():
            a = getattr(self, name)
            v = cols.get(name)
            if v is None:
                a[sl] = c.fill
            elif c.width is not None and v.shape[1] < c.width:  # fewer columns than the ring: fill the rest
                a[sl, : v.shape[1]] = v
                a[sl, v.shape[1]:] = c.fill
            else:
                a[sl] = v
        self.ids[sl] = ids
        before = len(self.index)
        slots = sl.tolist()
        self.index.update(zip(ids, slots, strict=True))
        self.size += n
        counted = self.max_bytes is not None
        if counted:
            self.id_bytes += sum(map(len, ids))
        if len(self.index) - before != n:  # the same id twice in this batch: the first copy stays
            first: dict[str, int] = {}
            for p, (s, i) in enumerate(zip(slots, ids, strict=True)):
                if i in first:
                    self.ids[s] = None
                    if counted:
                        self.id_bytes -= len(i)
                    for name, v in (dead or {}).items():
                        getattr(self, name)[s] = v
                    stored[p if pos is None else pos[p]] = False
                else:
                    first[i] = s
            self.index.update(first)
        if counted:
            self.trim()
        return stored

    def slots(self, ids: Sequence[str]) -> np.ndarray:
        """Slot of each id (-1 when it is not held)."""
        return np.fromiter(map(self.index.get, ids, repeat(-1, len(ids))), dtype=np.int64, count=len(ids))

    def trim(self) -> None:
        """Drop the oldest rows while over the byte budget."""
        if self.max_bytes is None:
            return
        while self.size and self.nbytes > self.max_bytes:
            avg = self.nbytes / self.size
            self.drop_oldest(min(self.size, max(1, int((self.nbytes - self.max_bytes) / avg) + 1)))

    def expire(self, cutoff: float, on_drop: Callable[[np.ndarray], None] | None = None) -> int:
        """Drop the oldest rows while their ``ts`` is before ``cutoff``; returns how many left.
        Rows leave in arrival order: a row behind a newer one waits for it."""
        gone = 0
        while self.size:
            k = min(self.size, _CHUNK)
            seg = (self.head + np.arange(k)) % self.cap
            old = self.ts[seg] < cutoff  # type: ignore[attr-defined]
            m = k if old.all() else int(np.argmin(old))
            if m == 0:
                break
            dropped = self.drop_oldest(m)
            if on_drop is not None:
                on_drop(dropped)
            gone += m
            if m < k:
                break
        return gone

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """The rows held, oldest first: one array per column plus ``ids`` (None for a dead slot)."""
        o = self.order()
        st: dict[str, Any] = {name: getattr(self, name)[o] for name in self.columns}
        st["ids"] = self.ids[o].tolist()
        return st

    def load_state(self, st: Any, what: str, defaults: dict[str, Any] | None = None, narrow: tuple[str, ...] = ()) -> None:
        """Restore :meth:`to_state` (``what`` names the ring in errors); a column missing from ``st``
        takes its value from ``defaults`` (a column newer than the state). Shapes are checked (a 2-D
        column named in ``narrow`` may have fewer columns than the ring's); a state with more rows than
        ``max_rows`` keeps the newest."""
        ids = st.get("ids") if isinstance(st, dict) else None
        check(isinstance(ids, list) and all(i is None or isinstance(i, str) for i in ids),
              f"{what} ids must be str (or None for a dead slot)")
        n = len(ids)
        cols = {}
        for name, c in self.columns.items():
            a = st.get(name)
            if a is None and defaults is not None and name in defaults:
                a = np.full((n,) if c.width is None else (n, c.width), defaults[name], dtype=c.dtype)
            ok = isinstance(a, np.ndarray) and a.ndim == (1 if c.width is None else 2) and a.shape[0] == n
            width_ok = c.width is None or a.shape[1] == c.width or (name in narrow and a.shape[1] <= c.width)
            check(ok and width_ok, f"{what} column {name} of {n} rows")
            cols[name] = a
        keep = slice(max(0, n - self.max_rows), n)
        ids = ids[keep]
        n = len(ids)
        self._alloc(max(min(self.initial, self.max_rows), n))
        for name, a in cols.items():
            dst = getattr(self, name)
            if a.ndim == 2:
                dst[:n, : a.shape[1]] = a[keep].astype(dst.dtype)
            else:
                dst[:n] = a[keep].astype(dst.dtype)
        self.ids[:n] = ids
        self.head, self.size = 0, n
        self.index = {i: s for s, i in enumerate(ids) if i is not None}
        self.id_bytes = sum(map(len, self.index)) if self.max_bytes is not None else 0
