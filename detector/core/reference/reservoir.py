"""A bounded, uniform, seeded sample of the rows of a table that arrives in column chunks.

Priority sampling (bottom-k): every row gets an independent uniform key from a seeded
generator, drawn in row order, and the sample is the ``size`` rows with the smallest keys. That
is a uniform random sample without replacement of every prefix of the table, and it does not
depend on how the rows were cut into chunks (the keys are one stream), so two readers of the
same file (Arrow or the pure-Python one) give the same sample.

Memory: the kept rows plus a pending buffer of at most ``size // 8`` candidate rows (``max_cells``
lowers ``size`` to ``max_cells // columns`` for wide tables; fewer rows of the smallest keys are
still a uniform sample); text values are shared between rows (one ``str`` per distinct value of
a column, up to 200,000 of them), so a categorical cell costs a pointer. Once the
sample is full a row is a candidate only when its key is below the current cut, so after ``n``
rows about ``size * ln(n / size)`` rows have been candidates in all and compactions are rare.
The sample is returned in table order (sorted by row number), so a table no larger than the
budget comes back exactly as it was read.

>>> s = RowSample(3, seed=1)
>>> s.add(0, {"x": np.arange(5.0), "c": np.array(list("abcde"), dtype=object)})
>>> s.add(5, {"x": np.arange(5.0, 8.0)})          # "c" absent here: missing in these rows
>>> cols = s.columns(); s.rows_seen, len(cols["x"]), cols["x"].tolist() == sorted(cols["x"].tolist())
(8, 3, True)
>>> RowSample(10).add(0, {"x": np.arange(4.0)}) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from detector.core.reference.build import to_text

__all__ = ["RowSample"]

_INTERN_MAX = 200_000  # distinct strings per text column shared between sampled rows


class RowSample:
    """The ``size`` rows with the smallest seeded uniform keys (a uniform sample of the rows)."""

    def __init__(self, size: int, seed: int = 0, max_cells: int | None = None) -> None:
        if size < 1:
            raise ValueError(f"sample size must be >= 1 (got {size})")
        self.size = size
        self.max_cells = max_cells  # rows x columns; a wide table gets fewer rows
        self.seed = seed
        self.rows_seen = 0
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._cut = np.inf  # rows with a key >= the cut can no longer enter the sample
        self._keys = np.empty(0)
        self._rows = np.empty(0, dtype=np.int64)
        self._cols: dict[str, np.ndarray] = {}
        self._pending: list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
        self._pending_n = 0
        self._interned: dict[str, dict[str, str] | None] = {}

    # ------------------------------------------------------------------ feeding
    def add(self, start: int, columns: Mapping[str, np.ndarray], n: int | None = None) -> None:
        """Rows ``start .. start + n - 1`` as columns (float64 or object arrays, all of length n)."""
        if n is None:
            n = len(next(iter(columns.values()))) if columns else 0
        if start != self.rows_seen:
            raise ValueError(f"rows must arrive in order: expected row {self.rows_seen}, got {start}")
        keys = self._rng.random(n)
        self.rows_seen += n
        if self._cut < np.inf:
            pick = np.flatnonzero(keys < self._cut)
            if len(pick) == 0:
                return
            cols = {k: a[pick] for k, a in columns.items()}
            keys, rows = keys[pick], start + pick
        else:
            cols = dict(columns)
            rows = np.arange(start, start + n, dtype=np.int64)
        cols = {k: self._intern(k, a) if a.dtype.kind == "O" else a for k, a in cols.items()}
        self._pending.append((keys, rows, cols))
        self._pending_n += len(keys)
        if self._pending_n >= max(self.size // 8, 1) or (
            self._cut == np.inf and len(self._keys) + self._pending_n > self.size
        ):
            self._compact()

    def replace(self, name: str, start: int, values: np.ndarray) -> None:
        """Overwrite column ``name`` for the sampled rows among ``start .. start + len(values) - 1``
        (a column read again, e.g. as text after it turned out not to be numeric)."""
        self._compact()
        self._order()
        lo, hi = np.searchsorted(self._rows, [start, start + len(values)])
        col = self._cols.get(name)
        if col is None or (col.dtype != values.dtype and values.dtype.kind == "O"):
            col = self._cols[name] = _empty_like(values.dtype, len(self._keys)) if col is None else _as_object(col)
        picked = values[self._rows[lo:hi] - start]
        col[lo:hi] = self._intern(name, picked) if picked.dtype.kind == "O" else picked

    # ------------------------------------------------------------------ results
    def columns(self) -> dict[str, np.ndarray]:
        """The sampled rows in table order, one array per column seen."""
        self._compact()
        self._order()
        return dict(self._cols)

    @property
    def n(self) -> int:
        """Rows in the sample (``min(size, rows_seen)``)."""
        return min(self.size, self.rows_seen)

    def row_numbers(self) -> np.ndarray:
        """Row numbers (0-based, in table order) of the sampled rows."""
        self._compact()
        self._order()
        return self._rows.copy()

    # ------------------------------------------------------------------ internals
    def _sorted(self) -> bool:
        return bool(len(self._rows) < 2 or np.all(self._rows[1:] > self._rows[:-1]))

    def _order(self) -> None:
        if self._sorted():
            return
        o = np.argsort(self._rows, kind="stable")
        self._rows, self._keys = self._rows[o], self._keys[o]
        self._cols = {k: a[o] for k, a in self._cols.items()}

    def _compact(self) -> None:
        if not self._pending:
            return
        parts = [(self._keys, self._rows, self._cols)] + self._pending
        self._pending, self._pending_n, self._cols = [], 0, {}
        keys = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        names = list(dict.fromkeys(k for p in parts for k in p[2]))
        if self.max_cells is not None and names:
            self.size = max(1, min(self.size, self.max_cells // len(names)))
        keep = None
        if len(keys) > self.size:
            keep = np.sort(np.argpartition(keys, self.size - 1)[: self.size])
            keys, rows = keys[keep], rows[keep]
            self._cut = float(keys.max())
        cols: dict[str, np.ndarray] = {}
        for name in names:  # one column at a time: the transient copy is one column, not the sample
            col = _join([(len(p[0]), p[2].pop(name, None)) for p in parts])
            if keep is not None:
                col = col[keep]
            cols[name] = col
        self._keys, self._rows, self._cols = keys, rows, cols

    def _intern(self, name: str, a: np.ndarray) -> np.ndarray:
        """One string object per distinct value (categorical text costs a pointer per row)."""
        table = self._interned.setdefault(name, {})
        if table is None:
            return a
        vals = a.tolist()
        out = np.empty(len(vals), dtype=object)
        out[:] = [v if type(v) is not str else table.setdefault(v, v) for v in vals]
        if len(table) > _INTERN_MAX:  # free text / ids: sharing does not pay, stop trying
            self._interned[name] = None
        return out


def _empty_like(dtype: np.dtype, n: int) -> np.ndarray:
    return np.full(n, None, dtype=object) if dtype.kind == "O" else np.full(n, np.nan)


def _as_object(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "O":
        return a
    out = np.empty(len(a), dtype=object)
    out[:] = [to_text(v) for v in a.tolist()]
    return out


def _join(parts: list[tuple[int, np.ndarray | None]]) -> np.ndarray:
    """Concatenate one column's parts; absent parts are missing, numbers in a text column become text."""
    text = any(a is not None and a.dtype.kind == "O" for _, a in parts)
    filled = []
    for n, a in parts:
        if a is None:
            filled.append(_empty_like(np.dtype(object) if text else np.dtype(np.float64), n))
        elif text:
            filled.append(_as_object(a))
        else:
            filled.append(a.astype(np.float64, copy=False))
    return np.concatenate(filled) if filled else np.empty(0)
