"""Multivariate drift in the engine's window path: fold at ingest, check at close, learn from clean windows.

One :class:`JointDrift` per model whose reference holds a fitted joint structure
(``Reference.multivariate``, :func:`detector.core.reference.build.add_multivariate`):

* **ingest** - :meth:`JointDrift.fold` adds a batch's reconstruction-error sums to the window's
  :class:`~detector.core.outcomes.tasks.base.Counters` (``WindowCounts.mv``), for all traffic and every
  slice row the event belongs to. Additive, so worker partials merge exactly.
* **close** - :meth:`JointDrift.results` runs :func:`~detector.core.checks.multivariate.check.multivariate_checks`
  over the window's pseudo-rows (the same rows and complements as every other check of the
  window, so its results join the window's Benjamini-Hochberg selection and slice localisation).
* **explained** - :func:`hold_explained` holds a joint finding whose leading features moved on
  their own (a unit change of one feature also breaks its fit with the others): the per-feature
  alert names the cause.
* **learning** - :meth:`JointDrift.learn` keeps the error sums of *clean* windows (no
  multivariate finding, no open multivariate incident): the last :data:`RECENT` windows when the
  reference was standardised by hour of day, else the last :data:`DAYS` windows of each hour of
  day (the check compares a window only with the same hour on previous days).

A busy model folds a sample: at most about :data:`ROWS` events per window, chosen by a hash of
each event's timestamp (:func:`sampled`; the rate follows the last window's count, and before
the first window closes, the rate of the first batch of at least 1,000 events).

Memory: ``(3 + F) x 8`` bytes per slice row per open window; history at most ``24 x DAYS`` (or
:data:`RECENT`) windows of ``3 x 8`` bytes per slice row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.core.checks.multivariate.check import (
    MultivariateThresholds,
    add_rows,
    multivariate_checks,
    multivariate_counters,
)
from detector.core.checks.multivariate.pca import PCAModel, hours_of
from detector.core.outcomes.tasks.base import Counters
from detector.core.state.codec import StateError

__all__ = ["JointDrift", "RECENT", "DAYS", "ROWS", "sample_rate", "sampled"]

RECENT = 24  # clean windows kept as the production baseline (hourly-standardised reference)
DAYS = 7  # clean windows kept per hour of day (reference without timestamps)
ROWS = 8192  # rows a busy window folds in (a sample): the mean error's sampling error is then far below
# the window-to-window spread the check allows for, so more rows add cost, not power


def sample_rate(events: int, rows: int = ROWS) -> float:
    """Share of events to fold, from the last window's count: 1, 1/2, 1/4, ... (at least ``rows`` kept).

    >>> sample_rate(500), sample_rate(20_000), sample_rate(180_000)
    (1.0, 0.5, 0.0625)
    """
    if events <= rows:
        return 1.0
    return 0.5 ** int(np.floor(np.log2(events / rows)))


def sampled(ts: np.ndarray, rate: float) -> np.ndarray | None:
    """Rows kept at ``rate``, decided by a hash of each event's millisecond timestamp (None = all).

    The same event is kept or not whatever batch it arrives in (live and replay agree), and the
    choice has nothing to do with the features, so sums over the kept rows are an unbiased sample
    of the window; workers that sample at different rates still add up to unbiased moments.
    """
    if rate >= 1.0:
        return None
    ms = np.round(np.nan_to_num(np.asarray(ts, dtype=np.float64)) * 1000.0).astype(np.int64).view(np.uint64)
    h = (ms * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)  # Fibonacci hashing, top 24 bits
    return np.flatnonzero(h < np.uint64(int(rate * (1 << 24))))


class JointDrift:
    """The multivariate drift check of one model (see the module docstring)."""

    def __init__(self, spec: Mapping[str, Any], numeric: list[str], window: float,
                 thresholds: MultivariateThresholds | None = None) -> None:
        self.model = PCAModel(spec)
        pos = {name: j for j, name in enumerate(numeric)}
        # feature -> column of the decoded batch's numeric block (features served as text are absent: missing)
        self.columns = [(name, pos[name]) for name in self.model.features if name in pos]
        self.window = float(window)
        self.th = thresholds or MultivariateThresholds()
        self.hourly = self.model.hourly is not None
        # clean windows' err sums per real slice row: (start, (rows, 3))
        self.history: list[tuple[float, np.ndarray]] = []
        self.rate = 1.0  # share of events folded (sample_rate of the last closed window's count)
        self.paced = False  # rate set from a closed window (or a first big batch)

    # ------------------------------------------------------------------ ingest
    def counters(self, rows: int) -> Counters:
        return multivariate_counters(self.model, rows)

    def fold(self, c: Counters, num: np.ndarray, ts: np.ndarray, rows: np.ndarray | None) -> None:
        """Add a batch (decoded numeric block ``num``, timestamps, slice rows per event ``(n, D)`` or None)."""
        if not self.paced and num.shape[0] >= 1000:  # before any window closed: pace from the first big batch
            span = float(np.nanmax(ts) - np.nanmin(ts))
            self.rate = sample_rate(int(num.shape[0] * self.window / max(span, 1.0)))
            self.paced = True
        keep = sampled(ts, self.rate)
        if keep is not None:
            num, ts, rows = num[keep], ts[keep], None if rows is None else rows[keep]
        n = num.shape[0]
        if n == 0:
            return
        ridx = np.zeros((n, 1), dtype=np.int64) if rows is None else np.concatenate(
            [np.zeros((n, 1), dtype=np.int64), rows], axis=1)
        cols = {name: num[:, j] for name, j in self.columns}
        add_rows(c, ridx, self.model, cols, hours_of(ts) if self.hourly else None)

    # ------------------------------------------------------------------ close
    def _past(self, start: float) -> list[np.ndarray]:
        if self.hourly:
            return [h for _, h in self.history[-RECENT:]]
        return [h for s, h in self.history if (start - s) % 86400.0 == 0.0][-DAYS:]

    def results(self, c: Counters | None, start: float, rows: np.ndarray, comp: np.ndarray) -> list[Any]:
        """The window's results over its pseudo-rows (``rows``: real row per pseudo-row, ``comp``: complement)."""
        if c is None:
            return []
        real, srows = rows[~comp], rows[comp]
        cur = c.pseudo(real, srows)
        past = self._past(start)
        hist = np.stack([np.concatenate([h[real], h[0][None] - h[srows]], axis=0) for h in past]) if past else None
        return multivariate_checks(self.model, cur, hist, comp, self.th)

    def closed(self, events: int) -> None:
        """A window of ``events`` predictions closed: the sample rate of the windows to come."""
        self.rate, self.paced = sample_rate(events), True

    def learn(self, c: Counters | None, start: float) -> None:
        """Remember a clean window's error sums (bounded: see the module docstring)."""
        if c is None or c["err"][0, 0] <= 0:
            return
        self.history.append((float(start), c["err"].copy()))
        if self.hourly:
            del self.history[:-RECENT]
        else:
            cap = DAYS * max(1, int(round(86400.0 / self.window)))
            del self.history[:-cap]

    # ------------------------------------------------------------------ state
    def adopt(self, w: Any) -> None:
        """Check the sums of a window read from state (a checkpoint, another worker's partial) fit this model."""
        c = w.mv
        if c is not None and c["res"].shape[1] != self.model.F:
            raise StateError(f"window multivariate sums over {c['res'].shape[1]} features do not fit this reference's "
                             f"{self.model.F}: built from another reference")

    def to_state(self) -> dict[str, Any]:
        return {"rate": self.rate, "paced": self.paced, "starts": [s for s, _ in self.history],
                "err": np.stack([h for _, h in self.history]) if self.history else np.zeros((0, 0, 3))}

    def load_state(self, st: Mapping[str, Any], rows: int) -> None:
        starts, err = list(st["starts"]), np.asarray(st["err"], dtype=np.float64)
        if err.size and (err.ndim != 3 or err.shape[0] != len(starts) or err.shape[1:] != (rows, 3)):
            raise StateError(f"multivariate history of shape {err.shape} does not fit {rows} slice rows")
        self.history = [(float(s), err[i].copy()) for i, s in enumerate(starts)]
        self.rate = min(1.0, max(float(st.get("rate", 1.0)), 1.0 / (1 << 20)))
        self.paced = bool(st.get("paced", False))


def hold_explained(findings: list[Any], moved: set[str], suppressed: list[Any], top: int = 2) -> list[Any]:
    """Hold ``multivariate_drift`` findings whose leading features (``top`` of the evidence) moved on their own.

    ``moved``: features with a finding of their own this window or an open alert. A feature whose
    marginal moved (a unit change, a default value, drift) also stops fitting the joint structure;
    that alert already names it, so the joint one waits (in ``suppressed``: it neither fires nor
    counts as clean, and the history does not learn the window). A joint change among features
    whose marginals hold is still reported.
    """
    out = []
    for f in findings:
        lead = {x.get("feature") for x in (f.evidence or {}).get("features", [])[:top]}
        if f.kind == "multivariate_drift" and lead & moved:
            suppressed.append(f)
        else:
            out.append(f)
    return out


def remap_counters(c: Counters, rowmap: np.ndarray, rows: int) -> Counters:
    """``c``'s rows added into a layout of ``rows`` rows (``rowmap[src_row] = dst_row``)."""
    out = Counters(c.task, {k: np.zeros((rows, *a.shape[1:])) for k, a in c.arrays.items()})
    for k, a in c.arrays.items():
        np.add.at(out.arrays[k], rowmap, a)
    return out


__all__ += ["remap_counters", "hold_explained"]
