"""One model's counts for one event-time window: dense, additive, mergeable.

A :class:`WindowCounts` is a bag of numpy arrays whose first axis is the layout's slice rows
(see :mod:`detector.core.layout`). ``add_batch`` folds a decoded batch in with one sparse
matrix product for every weighted sum of every slice row and one ``np.bincount`` per slice
dimension per histogram block (not per feature, not per event, not per slice value); ``merge`` is
element-wise addition, so windows from workers owning different partitions combine exactly.
Memory: ``Layout.cells() * 8`` bytes per open window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from detector.core.events import PredictionBatch
from detector.core.layout import Layout
from detector.core.state import check, load_arrays, pairs, unpairs

__all__ = ["WindowCounts", "N_CAND"]

N_CAND = 3  # exact-value candidates tracked per numeric feature (default / fallback spikes)
_RATE_FIELDS = ("events", "acted", "decided", "fallback", "fallback_known", "latency_known",
                "overridden", "flag_overridden")  # human overrides: any / of a model action (adoption)
MAX_REASONS = 16  # override reason codes tracked per window (the rest fold into __other__)


@dataclass
class WindowCounts:
    start: float
    end: float
    rows: int
    num_total: int
    cat_total: int
    n_num: int  # numeric blocks incl. the score
    n_lat: int
    num: np.ndarray = field(init=False)  # (rows, num_total) fine bins + missing bin per block
    cat: np.ndarray = field(init=False)  # (rows, cat_total) codes + unseen + missing per feature
    nz: np.ndarray = field(init=False)  # (rows, n_num) count of non-zero finite values
    slog: np.ndarray = field(init=False)  # (rows, n_num) sum of log|x| over non-zero values
    slog2: np.ndarray = field(init=False)  # (rows, n_num) sum of log|x|^2
    sx: np.ndarray = field(init=False)  # (rows, n_num) sum of x over finite values
    cand: np.ndarray = field(init=False)  # (rows, n_num, N_CAND) exact-value hits
    rates: np.ndarray = field(init=False)  # (rows, len(_RATE_FIELDS))
    lat: np.ndarray = field(init=False)  # (rows, n_lat) latency histogram
    # global-only bookkeeping (bounded dicts)
    absent: np.ndarray = field(init=False)  # (n_feat_total,) key absent
    type_err: np.ndarray = field(init=False)
    nonfinite: np.ndarray = field(init=False)
    unseen: list[dict[str, int]] = field(default_factory=list)  # per categorical feature
    unexpected: dict[str, int] = field(default_factory=dict)
    thresholds: dict[float, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    # override reason mix per slice row, keyed by the row's slice label ("" = all traffic,
    # "dim=value"), so partials of workers with other slice codes merge by key (bounded)
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    late: int = 0
    max_ts: float = float("-inf")

    def __post_init__(self) -> None:
        r, nn = self.rows, self.n_num
        self.num = np.zeros((r, self.num_total), dtype=np.int64)
        self.cat = np.zeros((r, self.cat_total), dtype=np.int64)
        self.nz = np.zeros((r, nn))
        self.slog = np.zeros((r, nn))
        self.slog2 = np.zeros((r, nn))
        self.sx = np.zeros((r, nn))
        self.cand = np.zeros((r, nn, N_CAND))
        self.rates = np.zeros((r, len(_RATE_FIELDS)))
        self.lat = np.zeros((r, self.n_lat), dtype=np.int64)
        n_feat = nn - 1
        self.absent = np.zeros(n_feat + 1 + 0, dtype=np.int64)
        self.type_err = np.zeros_like(self.absent)
        self.nonfinite = np.zeros_like(self.absent)

    @classmethod
    def empty(cls, layout: Layout, start: float, end: float) -> WindowCounts:
        w = cls(start, end, layout.n_rows, layout.num_total, layout.cat_total, layout.n_num_blocks,
                len(layout.lat_edges) + 1)
        n_feat = len(layout.numeric) + len(layout.categorical)
        w.absent = np.zeros(n_feat, dtype=np.int64)
        w.type_err = np.zeros(n_feat, dtype=np.int64)
        w.nonfinite = np.zeros(n_feat, dtype=np.int64)
        w.unseen = [{} for _ in layout.categorical]
        return w

    # ------------------------------------------------------------------ fold a batch in
    def add_batch(self, lay: Layout, b: PredictionBatch, row_codes: list[np.ndarray], cands: np.ndarray) -> None:
        """Add a batch (already restricted to this window). ``row_codes[d]`` = code per event."""
        n = b.n
        if n == 0:
            return
        X = np.concatenate([b.num, b.score[:, None]], axis=1) if b.num.size or n else b.score[:, None]
        nb = X.shape[1]
        # fine-bin index per value, offset into the flat numeric block space
        idx = np.empty((n, nb), dtype=np.int64)
        XT = np.ascontiguousarray(X.T)  # one contiguous row per block: searchsorted reads it linearly
        finite = ~np.isnan(X)
        missing_any = (~finite).any(axis=0)
        for j in range(nb):
            edges = lay.num_edges[j] if j < nb - 1 else lay.score_edges
            bj = np.searchsorted(edges, XT[j], side="right")
            if missing_any[j]:
                bj[np.isnan(XT[j])] = len(edges) + 1
            idx[:, j] = bj + lay.num_offsets[j]
        ax = np.abs(X)
        nzm = finite & (ax > 0)
        logs = np.log(np.where(nzm, ax, 1.0))
        x0 = np.where(finite, X, 0.0)
        # exact-value candidate hits
        hits = [(X == cands[:, c][None, :]) for c in range(N_CAND)]
        cidx = np.empty((n, self.cat_total and b.cat_codes.shape[1]), dtype=np.int64)
        if self.cat_total:
            cidx = b.cat_codes.astype(np.int64) + lay.cat_offsets[None, :]
        acted_known = ~np.isnan(b.acted)
        fb_known = ~np.isnan(b.fallback)
        lat_known = ~np.isnan(b.latency_ms)
        overridden = _overridden(b.override, n)
        rate_cols = np.stack([
            np.ones(n), np.where(acted_known, b.acted, 0.0), acted_known.astype(np.float64),
            np.where(fb_known, b.fallback, 0.0), fb_known.astype(np.float64), lat_known.astype(np.float64),
            overridden, overridden * (b.acted == 1.0),
        ], axis=1)
        lat_bin = np.searchsorted(lay.lat_edges, np.where(lat_known, b.latency_ms, 0.0), side="right")
        # Slice rows of every event: one column per slice dimension (row 0 = all traffic is the
        # sum of the first dimension's rows, filled at close), or row 0 alone without slices.
        if row_codes:
            rows = np.stack([codes + lay.row_offset(d) for d, codes in enumerate(row_codes)], axis=1)
        else:
            rows = np.zeros((n, 1), dtype=np.int64)
        D = rows.shape[1]
        # Every weighted sum (non-zero counts, log sums, sums, exact-value hits, rates) of every
        # row at once: a sparse (rows x events) membership matrix times an (events x stats)
        # matrix - one pass over D x n x stats values, whatever the number of slices.
        member = csr_matrix((np.ones(n * D), rows.ravel(), np.arange(0, n * D + 1, D)), shape=(n, self.rows)).T
        nzf = nzm.astype(np.float64)
        lz = logs * nzf
        stats = np.concatenate([nzf, lz, lz * logs, x0, *[h.astype(np.float64) for h in hits], rate_cols], axis=1)
        agg = member @ stats
        self.nz += agg[:, :nb]
        self.slog += agg[:, nb : 2 * nb]
        self.slog2 += agg[:, 2 * nb : 3 * nb]
        self.sx += agg[:, 3 * nb : 4 * nb]
        for c in range(N_CAND):
            self.cand[:, :, c] += agg[:, (4 + c) * nb : (5 + c) * nb]
        self.rates += agg[:, (4 + N_CAND) * nb :]
        # Histograms (integer counts): one bincount per dimension over its (event, bin) pairs.
        lat_rows = rows[lat_known] if lat_known.any() and not lat_known.all() else (rows if lat_known.all() else None)
        for d in range(D):
            r = rows[:, d]
            self.num += np.bincount((r[:, None] * self.num_total + idx).ravel(),
                                    minlength=self.rows * self.num_total).reshape(self.rows, self.num_total)
            if self.cat_total:
                self.cat += np.bincount((r[:, None] * self.cat_total + cidx).ravel(),
                                        minlength=self.rows * self.cat_total).reshape(self.rows, self.cat_total)
            if lat_rows is not None:
                lb = lat_bin if lat_rows is rows else lat_bin[lat_known]
                self.lat += np.bincount(lat_rows[:, d] * self.n_lat + lb,
                                        minlength=self.rows * self.n_lat).reshape(self.rows, self.n_lat)
        # global-only bookkeeping
        nn = len(lay.numeric)
        self.absent[:nn] += b.num_absent
        self.absent[nn:] += b.cat_absent
        self.type_err[:nn] += b.num_type_err
        self.type_err[nn:] += b.cat_type_err
        self.nonfinite[:nn] += b.num_nonfinite
        for j, vals in enumerate(b.unseen):
            _count_bounded(self.unseen[j], vals, 64)
        for k2, v in b.unexpected.items():
            if k2 in self.unexpected or len(self.unexpected) < 64:
                self.unexpected[k2] = self.unexpected.get(k2, 0) + v
        thr = b.threshold[~np.isnan(b.threshold)]
        if thr.size:
            vals, cnt = np.unique(thr, return_counts=True)
            for v, c in zip(vals.tolist(), cnt.tolist(), strict=True):
                if v in self.thresholds or len(self.thresholds) < 16:
                    self.thresholds[v] = self.thresholds.get(v, 0) + c
        for k2, v in b.versions.items():
            if k2 in self.versions or len(self.versions) < 16:
                self.versions[k2] = self.versions.get(k2, 0) + v
        for k2, v in b.decisions.items():
            if k2 in self.decisions or len(self.decisions) < 32:
                self.decisions[k2] = self.decisions.get(k2, 0) + v
        if b.override is not None and overridden.any():
            self._count_reasons(lay, b.override, np.flatnonzero(overridden), row_codes)
        self.max_ts = max(self.max_ts, float(b.ts.max()))

    def _count_reasons(self, lay: Layout, override: list, rows: np.ndarray, row_codes: list[np.ndarray]) -> None:
        """Reason codes of the overridden events, per slice row (all traffic and each dimension)."""
        keys = [""] * len(rows)
        per_dim = [[f"{dim}={voc.label(int(c))}" for c in codes[rows].tolist()]
                   for dim, voc, codes in zip(lay.dims, lay.vocabs, row_codes, strict=False)]
        for i, r in enumerate(rows.tolist()):
            reason = str(override[r])[:80]
            for key in [keys[i], *(p[i] for p in per_dim)]:
                d = self.reasons.setdefault(key, {})
                if reason not in d and len(d) >= MAX_REASONS:
                    reason_key = "__other__"
                else:
                    reason_key = reason
                d[reason_key] = d.get(reason_key, 0) + 1

    def finalize_global(self, lay: Layout) -> None:
        """Row 0 (all traffic) = the sum over the first dimension's rows, when there are slices."""
        if not lay.dims:
            return
        sl = slice(lay.row_offset(0), lay.row_offset(0) + lay.top_k + 1)
        for name in ("num", "cat", "nz", "slog", "slog2", "sx", "cand", "rates", "lat"):
            arr = getattr(self, name)
            arr[0] = arr[sl].sum(axis=0)

    # ------------------------------------------------------------------ merge
    def merge(self, other: WindowCounts) -> None:
        """Add another worker's partial of the same window (same layout and row codes)."""
        if (self.start, self.end) != (other.start, other.end) or self.num.shape != other.num.shape:
            raise ValueError(
                f"cannot merge window [{other.start}, {other.end}) shape {other.num.shape} into "
                f"[{self.start}, {self.end}) shape {self.num.shape}: windows and layouts must match"
            )
        for name in ("num", "cat", "nz", "slog", "slog2", "sx", "cand", "rates", "lat", "absent", "type_err", "nonfinite"):
            getattr(self, name)[...] += getattr(other, name)
        for j, d in enumerate(other.unseen):
            for k, v in d.items():
                if k in self.unseen[j] or len(self.unseen[j]) < 64:
                    self.unseen[j][k] = self.unseen[j].get(k, 0) + v
        for mine, theirs, cap in ((self.unexpected, other.unexpected, 64), (self.thresholds, other.thresholds, 16),
                                  (self.versions, other.versions, 16), (self.decisions, other.decisions, 32)):
            for k, v in theirs.items():
                if k in mine or len(mine) < cap:
                    mine[k] = mine.get(k, 0) + v
        for key, theirs in other.reasons.items():
            mine = self.reasons.setdefault(key, {})
            for k, v in theirs.items():
                k = k if k in mine or len(mine) < MAX_REASONS else "__other__"
                mine[k] = mine.get(k, 0) + v
        self.late += other.late
        self.max_ts = max(self.max_ts, other.max_ts)

    @property
    def events(self) -> int:
        return int(self.rates[0, 0])

    # ------------------------------------------------------------------ state (plain data)
    def to_state(self) -> dict[str, Any]:
        st: dict[str, Any] = {k: getattr(self, k) for k in _STATE_ARRAYS}
        st.update(start=self.start, end=self.end, unseen=[dict(d) for d in self.unseen], unexpected=dict(self.unexpected),
                  thresholds=pairs(self.thresholds), versions=dict(self.versions), decisions=dict(self.decisions),
                  reasons={k: dict(d) for k, d in self.reasons.items()}, late=self.late, max_ts=self.max_ts)
        return st

    @classmethod
    def from_state(cls, st: dict[str, Any], layout: Layout) -> WindowCounts:
        """A window of ``layout`` from :meth:`to_state` (arrays must have this layout's shapes)."""
        check(isinstance(st, dict), "window state must be a dict")
        w = cls.empty(layout, float(st["start"]), float(st["end"]))
        load_arrays(w, st, _STATE_ARRAYS, "window")
        check(isinstance(st["unseen"], list) and len(st["unseen"]) == len(w.unseen), "window unseen per categorical feature")
        w.unseen = [_counts(d) for d in st["unseen"]]
        w.unexpected, w.versions, w.decisions = _counts(st["unexpected"]), _counts(st["versions"]), _counts(st["decisions"])
        w.thresholds = {float(k): int(v) for k, v in unpairs(st["thresholds"]).items()}
        check(isinstance(st["reasons"], dict), "window reasons")
        w.reasons = {str(k): _counts(d) for k, d in st["reasons"].items()}
        w.late, w.max_ts = int(st["late"]), float(st["max_ts"])
        return w


#: ``override`` values that mean "not overridden" (compared lower-cased)
NO_OVERRIDE = frozenset({"", "none", "no", "false", "0", "null", "no_override", "not_overridden"})


def _overridden(override: list | None, n: int) -> np.ndarray:
    """1.0 where the event carries a human override (an ``override`` value not in :data:`NO_OVERRIDE`)."""
    if override is None:
        return np.zeros(n)
    return np.fromiter((o is not None and o is not False and o != 0 and str(o).strip().lower() not in NO_OVERRIDE
                        for o in override), dtype=np.float64, count=n)


def _count_bounded(d: dict[str, int], values: list[str], cap: int) -> None:
    for v in values:
        if v in d:
            d[v] += 1
        elif len(d) < cap:
            d[v] = 1


def _counts(d: Any) -> dict[str, int]:
    check(isinstance(d, dict), "a dict of counts")
    return {str(k): int(v) for k, v in d.items()}


_STATE_ARRAYS = ("num", "cat", "nz", "slog", "slog2", "sx", "cand", "rates", "lat", "absent", "type_err", "nonfinite")
RATE = {name: i for i, name in enumerate(_RATE_FIELDS)}
