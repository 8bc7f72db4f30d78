"""One model's counts for one event-time window: dense, additive, mergeable.

A :class:`WindowCounts` is a bag of numpy arrays whose first axis is the layout's slice rows
(see :mod:`detector.core.inputs.layout`). ``add_batch`` folds a decoded batch in with one sparse
matrix product for every weighted sum of every slice row and one ``np.bincount`` for every
histogram of every slice row (not per feature, not per event, not per slice value); ``merge`` is
element-wise addition, so windows from workers owning different partitions combine exactly.
Memory: ``Layout.cells() * 8`` bytes per open window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.sparse import csr_matrix

from detector.core.inputs.events import PredictionBatch
from detector.core.inputs.layout import Layout
from detector.core.state.codec import check, load_arrays, pairs, unpairs

if TYPE_CHECKING:
    from detector.core.outcomes.tasks.base import Counters

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
    # multivariate drift sums per slice row (detector.core.checks.multivariate.window), None = not watched
    mv: Counters | None = None
    # performance-estimate counters per slice row (detector.core.outcomes.estimate.monitor), None = not estimated
    est: Counters | None = None

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
        nn = b.num.shape[1]
        nb = nn + 1
        XT = np.empty((nb, n))  # one contiguous row per numeric block (the score last)
        XT[:nn] = b.num.T
        XT[nn] = b.score
        miss = np.isnan(XT)  # non-finite feature values were made NaN when decoded; scores are finite or absent
        # fine bin of every value, offset into the flat numeric block space (missing: the block's last bin)
        idx = lay.bins.index(XT)
        if miss.any():
            idx[miss] = np.broadcast_to(lay.num_sizes[:, None] - 1, idx.shape)[miss]
        idx += lay.num_offsets[:, None]
        # Slice rows of every event: one column per slice dimension (row 0 = all traffic is the
        # sum of the first dimension's rows, filled at close), or row 0 alone without slices.
        if row_codes:
            rows = np.stack([codes + lay.row_offset(d) for d, codes in enumerate(row_codes)])
        else:
            rows = np.zeros((1, n), dtype=np.int64)
        D = rows.shape[0]
        # Every weighted sum (non-zero counts, log sums, sums, exact-value hits, rates) of every
        # row at once: a sparse (rows x events) membership matrix times an (events x stats)
        # matrix - one pass over D x n x stats values, whatever the number of slices. Exact-value
        # hits only for the candidates there are.
        cj, cc = np.nonzero(~np.isnan(cands))
        k4 = 4 * nb
        S = np.empty((n, k4 + cj.size + len(_RATE_FIELDS)))
        X = XT.T
        ax = np.abs(X)
        nzm = ax > 0  # False for NaN
        S[:, :nb] = nzm
        lz = S[:, nb : 2 * nb]
        lz[...] = 0.0
        np.log(ax, out=lz, where=nzm)
        np.multiply(lz, lz, out=S[:, 2 * nb : 3 * nb])
        sx = S[:, 3 * nb : k4]
        sx[...] = X
        if miss.any():
            sx[miss.T] = 0.0
        for i, (j, c) in enumerate(zip(cj.tolist(), cc.tolist(), strict=True)):
            S[:, k4 + i] = XT[j] == cands[j, c]
        rate = S[:, k4 + cj.size :]
        acted_known = ~np.isnan(b.acted)
        fb_known = ~np.isnan(b.fallback)
        lat_known = ~np.isnan(b.latency_ms)
        overridden = _overridden(b.override, n)
        rate[:, 0] = 1.0
        rate[:, 1] = np.where(acted_known, b.acted, 0.0)
        rate[:, 2] = acted_known
        rate[:, 3] = np.where(fb_known, b.fallback, 0.0)
        rate[:, 4] = fb_known
        rate[:, 5] = lat_known
        rate[:, 6] = overridden
        rate[:, 7] = overridden * (b.acted == 1.0)
        member = csr_matrix((np.ones(n * D), rows.T.ravel(), np.arange(0, n * D + 1, D)), shape=(n, self.rows)).T
        agg = member @ S
        self.nz += agg[:, :nb]
        self.slog += agg[:, nb : 2 * nb]
        self.slog2 += agg[:, 2 * nb : 3 * nb]
        self.sx += agg[:, 3 * nb : k4]
        if cj.size:
            self.cand[:, cj, cc] += agg[:, k4 : k4 + cj.size]
        self.rates += agg[:, k4 + cj.size :]
        # Histograms (integer counts): numeric bins, category codes and latency bins of every
        # (slice row, event) pair in one bincount over a flat (row, column) space; an unknown
        # latency goes to a spare last column that is dropped.
        nt, ct, lt = self.num_total, self.cat_total, self.n_lat
        width = nt + ct + lt + 1
        cols = np.empty((n, nb + b.cat_codes.shape[1] + 1), dtype=np.int64)
        cols[:, :nb] = idx.T
        if ct:
            cols[:, nb:-1] = b.cat_codes
            cols[:, nb:-1] += lay.cat_offsets + nt
        lat_bin = np.searchsorted(lay.lat_edges, np.where(lat_known, b.latency_ms, 0.0), side="right")
        cols[:, -1] = np.where(lat_known, lat_bin + nt + ct, width - 1)
        keys = (rows * width)[:, :, None] + cols[None, :, :]
        hist = np.bincount(keys.ravel(), minlength=self.rows * width).reshape(self.rows, width)
        self.num += hist[:, :nt]
        if ct:
            self.cat += hist[:, nt : nt + ct]
        self.lat += hist[:, nt + ct : nt + ct + lt]
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
        if other.mv is not None:
            if self.mv is None:
                self.mv = other.mv.copy()
            else:
                self.mv.merge(other.mv)
        if other.est is not None:
            if self.est is None:
                self.est = other.est.copy()
            else:
                self.est.merge(other.est)
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
                  reasons={k: dict(d) for k, d in self.reasons.items()}, late=self.late, max_ts=self.max_ts,
                  mv=None if self.mv is None else {"err": self.mv["err"], "res": self.mv["res"]},
                  est=None if self.est is None else dict(self.est.arrays))
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
        w.mv = mv_from_state(st.get("mv"), w.rows)
        w.est = est_from_state(st.get("est"), w.rows)
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


def mv_from_state(st: Any, rows: int) -> Counters | None:
    """The multivariate sums of a window state (``None``: not watched), checked against ``rows`` slice rows."""
    if st is None:
        return None
    from detector.core.outcomes.tasks.base import Counters

    check(isinstance(st, dict) and isinstance(st.get("err"), np.ndarray) and isinstance(st.get("res"), np.ndarray),
          "window multivariate sums")
    err, res = st["err"], st["res"]
    check(err.shape == (rows, 3) and res.ndim == 2 and res.shape[0] == rows and 2 <= res.shape[1] <= 1000,
          f"window multivariate sums of shapes {err.shape} / {res.shape} for {rows} slice rows")
    return Counters("multivariate", {"err": err.astype(np.float64), "res": res.astype(np.float64)})


def est_from_state(st: Any, rows: int) -> Counters | None:
    """The performance-estimate counters of a window state (``None``: not estimated), checked against ``rows``
    slice rows; the estimator checks the rest of their shape (``PerformanceEstimates.adopt``)."""
    if st is None:
        return None
    from detector.core.outcomes.tasks.base import Counters

    check(isinstance(st, dict) and 0 < len(st) <= 8, "window estimate counters")
    for k, a in st.items():
        check(isinstance(k, str) and isinstance(a, np.ndarray) and a.ndim in (2, 3) and a.shape[0] == rows
              and a.size <= rows * 4096, f"window estimate counters {k!r} for {rows} slice rows")
    return Counters("estimate", {k: a.astype(np.float64) for k, a in st.items()})
