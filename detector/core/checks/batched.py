"""Calls of a row-wise statistic from many features, made as one call over all their rows.

A window's checks call the same statistics (proportion tests, PSI, G-tests...) once per feature on
a few dozen pseudo-rows each; the numpy overhead of each call then costs more than its arithmetic.
:class:`Batched` takes the calls first - each gets output arrays to be filled, of its own shape -
and :meth:`Batched.run` makes one call per statistic and argument shape on the rows of every
feature stacked, then copies each caller's rows into its outputs. The statistics here are row-wise
(every output row depends on the same input row only), so the values are the ones separate calls
give.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Batched"]


class Batched:
    def __init__(self) -> None:
        self._groups: dict[tuple[Any, ...], list[tuple[list[np.ndarray], list[np.ndarray]]]] = {}

    def call(self, fn: Callable[..., Any], n_out: int, *args: Any, **kw: Any) -> list[np.ndarray]:
        """``fn(*args, **kw)`` later (at :meth:`run`); returns its ``n_out`` outputs, filled then.

        ``args`` are arrays whose first axis is the pseudo-rows (they broadcast to one row count);
        ``kw`` are plain settings (they, with the argument shapes, decide which calls go together)."""
        arrs = [a if type(a) is np.ndarray and a.dtype == np.float64 else np.asarray(a, dtype=np.float64) for a in args]
        rows = max(a.shape[0] for a in arrs if a.ndim)
        arrs = [a if a.ndim and a.shape[0] == rows else np.broadcast_to(a, (rows, *a.shape[1:])) for a in arrs]
        key = (fn, n_out, tuple(sorted(kw.items())), tuple(a.shape[1:] for a in arrs))
        outs = [np.empty(rows) for _ in range(n_out)]
        self._groups.setdefault(key, []).append((arrs, outs))
        return outs

    def run(self) -> None:
        """Make every call taken (one per statistic and shape) and fill their outputs."""
        for (fn, n_out, kw, _), calls in self._groups.items():
            stacked = [np.concatenate([c[0][k] for c in calls]) for k in range(len(calls[0][0]))]
            res = fn(*stacked, **dict(kw))
            res = [res] if n_out == 1 else list(res)
            at = 0
            for _, outs in calls:
                m = len(outs[0])
                for o, r in zip(outs, res, strict=True):
                    o[...] = np.asarray(r)[at : at + m]
                at += m
        self._groups.clear()
