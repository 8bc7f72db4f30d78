"""Fine-bin indexes of many numeric columns at once, exactly as ``np.searchsorted`` gives them.

Binning values against each feature's reference edges is the largest single cost of folding a
batch in: ``np.searchsorted`` on values in random order spends most of its ~40 ns per value on
mispredicted branches. :class:`Bins` looks each value up in a table over a uniform grid of
a few thousand cells per feature (one multiply, one gather: no branches), then checks the guess with
two exact comparisons against the edges, after stepping over the one edge a cell may hold; the few
values a cell cannot decide (a cell that holds two edges or more, values off the grid) take
``np.searchsorted``. The result is identical to
``np.searchsorted(edges, x, side="right")`` per column, NaN included (it gets ``len(edges)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Bins"]


class Bins:
    """Lookup tables for the edges of every column (see the module docstring)."""

    def __init__(self, edges: Sequence[np.ndarray], cells: int = 1 << 19) -> None:
        self.edges = [np.asarray(e, dtype=np.float64) for e in edges]
        k = len(self.edges)
        # 16,384 cells per column leave ~2% of values to the exact search for 100 quantile edges
        # (fewer cells: more searches; more: the table falls out of cache); at most ``cells`` in all
        grid = int(min(16384, max(1024, cells // max(k, 1))))
        self.grid = grid
        self.lo = np.zeros(k)
        self.scale = np.zeros(k)
        tables = []
        ext = []  # per column: [-inf, edges..., +inf], so bin i holds ext[i] <= x < ext[i + 1]
        self.ext_off = np.zeros(k, dtype=np.int64)
        off = 0
        for j, e in enumerate(self.edges):
            with np.errstate(over="ignore", invalid="ignore"):
                span = float(e[-1] - e[0]) if e.size >= 2 else 0.0
            if np.isfinite(span) and span > 0:
                self.lo[j] = e[0]
                self.scale[j] = grid / span
                starts = e[0] + np.arange(grid) / self.scale[j]
                tables.append(np.searchsorted(e, starts, side="right"))
            else:  # too few or infinite edges: every value takes the exact search
                tables.append(np.full(grid, -1))
            self.ext_off[j] = off
            ext.append(np.concatenate([[-np.inf], e, [np.inf]]))
            off += e.size + 2
        self.table = np.concatenate(tables).astype(np.int32) if tables else np.zeros(0, dtype=np.int32)
        self.table_off = (np.arange(k) * grid).astype(np.int64)
        self.ext = np.concatenate(ext) if ext else np.zeros(0)
        self.exact_only = np.array([t[0] < 0 for t in tables], dtype=bool)

    def index(self, XT: np.ndarray) -> np.ndarray:
        """``(k, n)`` values (one row per column) -> ``(k, n)`` int64 ``searchsorted(edges, x, "right")``."""
        with np.errstate(over="ignore", invalid="ignore"):  # huge values: clipped to the last cell
            u = (XT - self.lo[:, None]) * self.scale[:, None]
            np.clip(u, 0, self.grid - 1, out=u)
            u[np.isnan(u)] = 0  # NaN: any cell (the check below fails)
            cell = u.astype(np.int64)
        cell += self.table_off[:, None]
        guess = self.table[cell].astype(np.int64)
        pos = guess + self.ext_off[:, None]
        # a cell that holds one edge: at or past it, the next bin (integer-valued features put
        # most values exactly on an edge, so most would otherwise take the exact search)
        step = self.ext[pos + 1] <= XT
        guess += step
        pos += step
        exact = (self.ext[pos] <= XT) & (XT < self.ext[pos + 1])
        if self.exact_only.any():
            exact[self.exact_only] = False
        if not exact.all():
            for j in np.flatnonzero(~exact.all(axis=1)).tolist():
                miss = np.flatnonzero(~exact[j])
                guess[j, miss] = np.searchsorted(self.edges[j], XT[j, miss], side="right")
        return guess
