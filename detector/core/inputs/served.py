"""Lifetime distributions of what a model served: latency and score per slice row.

Windows come and go; a Prometheus histogram must only ever grow. :class:`ServedTotals` adds up
the latency and score histograms of every window a model has handed on (closed, or sent to the
aggregator as a partial), so ``totals + open windows`` is a monotonic count since the process
started: exported as ``skewwatch_latency_seconds`` and ``skewwatch_score`` histograms that
``histogram_quantile`` can aggregate across replicas.

Bins are the window's own: latency on :data:`~detector.core.inputs.layout.Layout.lat_edges`
(milliseconds), the score on the reference's score edges. Counts are exact; a value equal to
an edge falls in the bin above it (bins are ``[lo, hi)``). Memory: ``rows x (n_lat + score bins)``
floats per model, fixed by the layout.

>>> import numpy as np
>>> from detector.core.inputs.layout import Layout
>>> from detector.core.reference.build import build_reference
>>> from detector.core.inputs.window import WindowCounts
>>> ref = build_reference({"x": np.arange(100.0), "s": np.linspace(0, 1, 100)}, score_column="s")
>>> lay = Layout(ref, [], 10, 100)
>>> w = WindowCounts.empty(lay, 0.0, 3600.0)
>>> w.lat[0, 5] = 3
>>> t = ServedTotals(lay)
>>> t.add(w)                      # a window handed on ...
>>> float(t.with_open([w])[0][0, 5])  # ... plus the same counts still open
6.0
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["ServedTotals", "all_traffic_row"]


def all_traffic_row(a: np.ndarray, lay: Any) -> np.ndarray:
    """Row 0 (all traffic) of a window array: the core fills it only when the window closes,
    until then it is the sum over the first slice dimension's rows (every event has one code)."""
    if not lay.dims:
        return a[0]
    off = lay.row_offset(0)
    return a[off : off + lay.top_k + 1].sum(axis=0)


class ServedTotals:
    """Latency and score histograms (+ score sums) of the windows a model has handed on."""

    def __init__(self, lay: Any) -> None:
        self.layout = lay
        nb = lay.n_num_blocks
        self._score = slice(int(lay.num_offsets[nb - 1]), int(lay.num_offsets[nb - 1] + lay.num_sizes[nb - 1] - 1))
        self.lat = np.zeros((lay.n_rows, len(lay.lat_edges) + 1))
        self.score = np.zeros((lay.n_rows, self._score.stop - self._score.start))
        self.score_sum = np.zeros(lay.n_rows)

    def add(self, w: Any) -> None:
        """Fold a window that leaves the engine (call before it is finalised or merged away)."""
        lat, score, ssum = self._of(w)
        self.lat += lat
        self.score += score
        self.score_sum += ssum

    def to_state(self) -> dict[str, Any]:
        return {"lat": self.lat, "score": self.score, "score_sum": self.score_sum}

    def load_state(self, st: dict[str, Any]) -> None:
        from detector.core.state.codec import load_arrays

        load_arrays(self, st, ("lat", "score", "score_sum"), "served totals")

    def add_rows(self, other: ServedTotals, rowmap: np.ndarray) -> None:
        """Add another layout's totals, its rows mapped onto ours (``rowmap[src row] = dst row``)."""
        np.add.at(self.lat, rowmap, other.lat)
        np.add.at(self.score, rowmap, other.score)
        np.add.at(self.score_sum, rowmap, other.score_sum)

    def with_open(self, windows: Iterable[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Totals plus the open windows: ``(lat, score, score_sum)`` per slice row."""
        lat, score, ssum = self.lat.copy(), self.score.copy(), self.score_sum.copy()
        for w in windows:
            a, b, c = self._of(w)
            lat += a
            score += b
            ssum += c
        return lat, score, ssum

    def _of(self, w: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lay = self.layout
        nb = lay.n_num_blocks
        lat = w.lat.astype(np.float64)  # astype copies: row 0 below never touches the window
        score = w.num[:, self._score].astype(np.float64)
        ssum = w.sx[:, nb - 1].astype(np.float64)
        if lay.dims:  # same as WindowCounts.finalize_global, whether or not it ran
            lat[0] = all_traffic_row(lat, lay)
            score[0] = all_traffic_row(score, lay)
            ssum[0] = all_traffic_row(ssum, lay)
        return lat, score, ssum
