"""Window partials: one worker's counts of one closed window, re-keyed onto another engine's rows.

Slice values are admitted first-come per engine, so two engines that fold different partitions
give the same slice value different row codes. A :class:`Partial` carries its engine's slice
vocabularies (and exact-value candidates) with the counts, and the receiving engine maps every
row and candidate onto its own (:func:`row_map_values`, :func:`remap`, :func:`remap_candidates`)
before adding: the merge is exact addition.

A partial crosses Kafka as plain state (:mod:`detector.core.state.codec`): decoding checks every array's
shape against the others, and :meth:`detector.core.engine.Engine.ingest_partial` checks them
against its own layout before merging.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.errors import EngineError
from detector.core.inputs.layout import Layout
from detector.core.inputs.window import _STATE_ARRAYS, N_CAND, RATE, WindowCounts, mv_from_state
from detector.core.state.codec import StateError, check

__all__ = ["Partial", "row_map_values", "row_map", "remap", "remap_candidates", "partial_events", "window_from_state",
           "check_window_fits"]



@dataclass
class Partial:
    """One worker's counts for one closed window, with what is needed to re-key its rows."""

    model: str
    dims: list[str]
    vocab_values: list[list[str]]
    cands: np.ndarray
    window: WindowCounts
    # features reconciled as categories ({feature: {served spelling: reference category}}, detector.core.reference.reconcile)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, ms: Any, w: WindowCounts) -> Partial:
        return cls(ms.name, list(ms.layout.dims), [list(v.values) for v in ms.layout.vocabs], ms.cands.copy(), w,
                   {k: dict(v) for k, v in ms.codes.items()})

    def to_state(self) -> dict[str, Any]:
        return {"model": self.model, "dims": list(self.dims), "vocab_values": [list(v) for v in self.vocab_values],
                "cands": self.cands, "window": self.window.to_state(), "codes": self.codes}

    @classmethod
    def from_state(cls, st: Any) -> Partial:
        check(isinstance(st, dict), "a window partial is a dict")
        dims, vv = st["dims"], st["vocab_values"]
        check(isinstance(st["model"], str) and isinstance(dims, list) and all(isinstance(d, str) for d in dims),
              "partial model and slice dimensions")
        check(isinstance(vv, list) and len(vv) == len(dims)
              and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in vv), "partial slice vocabularies")
        cands = st["cands"]
        check(isinstance(cands, np.ndarray) and cands.ndim == 2, "partial candidates")
        codes = st.get("codes") or {}
        check(isinstance(codes, dict) and all(isinstance(m, dict) and all(isinstance(a, str) and isinstance(b, str)
                                                                          for a, b in m.items()) for m in codes.values()),
              "partial reconciled features")
        return cls(st["model"], list(dims), [list(v) for v in vv], cands.astype(np.float64), window_from_state(st["window"]),
                   {str(k): dict(m) for k, m in codes.items()})


def window_from_state(st: Any) -> WindowCounts:
    """A :class:`WindowCounts` from its state without a layout: shapes are checked against each other.

    Nothing is allocated beyond the arrays the state carries; the receiving engine checks the shapes
    against its own layout (:func:`check_window_fits`).
    """
    check(isinstance(st, dict), "a window state is a dict")
    arrs = {k: st.get(k) for k in _STATE_ARRAYS}
    check(all(isinstance(a, np.ndarray) for a in arrs.values()), "window arrays")
    check(arrs["num"].ndim == 2 and arrs["cat"].ndim == 2 and arrs["nz"].ndim == 2 and arrs["lat"].ndim == 2,
          "window array dimensions")
    rows, num_total = arrs["num"].shape
    n_num, cat_total, n_lat = arrs["nz"].shape[1], arrs["cat"].shape[1], arrs["lat"].shape[1]
    n_feat = arrs["absent"].shape
    want = {"cat": (rows, cat_total), "nz": (rows, n_num), "slog": (rows, n_num), "slog2": (rows, n_num),
            "sx": (rows, n_num), "cand": (rows, n_num, N_CAND), "rates": (rows, len(RATE)), "lat": (rows, n_lat),
            "type_err": n_feat, "nonfinite": n_feat}
    for k, shape in want.items():
        check(arrs[k].shape == shape, f"window {k} has shape {arrs[k].shape}, expected {shape}")
    check(len(n_feat) == 1, "window feature tallies")
    w = WindowCounts.__new__(WindowCounts)
    w.start, w.end = float(st["start"]), float(st["end"])
    w.rows, w.num_total, w.cat_total, w.n_num, w.n_lat = rows, num_total, cat_total, n_num, n_lat
    for k, a in arrs.items():
        setattr(w, k, a.astype(np.int64 if k in ("num", "cat", "lat", "absent", "type_err", "nonfinite") else np.float64))
    unseen = st["unseen"]
    check(isinstance(unseen, list) and all(isinstance(d, dict) for d in unseen), "window unseen categories")
    w.unseen = [{str(k): int(v) for k, v in d.items()} for d in unseen]
    w.unexpected, w.versions, w.decisions, w.reasons = {}, {}, {}, {}
    for name in ("unexpected", "versions", "decisions"):
        d = st[name]
        check(isinstance(d, dict), f"window {name}")
        setattr(w, name, {str(k): int(v) for k, v in d.items()})
    th = st["thresholds"]
    check(isinstance(th, list) and all(isinstance(r, list) and len(r) == 2 for r in th), "window thresholds")
    w.thresholds = {float(k): int(v) for k, v in th}
    check(isinstance(st["reasons"], dict) and all(isinstance(d, dict) for d in st["reasons"].values()), "window reasons")
    w.reasons = {str(k): {str(a): int(b) for a, b in d.items()} for k, d in st["reasons"].items()}
    w.late, w.max_ts = int(st["late"]), float(st["max_ts"])
    w.mv = mv_from_state(st.get("mv"), rows)
    return w


def check_window_fits(w: WindowCounts, dims: list[str], lay: Layout, cands: np.ndarray, ms_cands: np.ndarray) -> None:
    """Refuse a partial whose arrays do not fit ``lay`` (another reference, top-K or layout)."""
    want_rows = 1 + len(dims) * (lay.top_k + 1)
    fits = (w.rows == want_rows and w.num.shape == (want_rows, lay.num_total) and w.cat_total == lay.cat_total
            and w.n_num == lay.n_num_blocks and w.n_lat == len(lay.lat_edges) + 1
            and w.absent.shape == (len(lay.numeric) + len(lay.categorical),) and len(w.unseen) == len(lay.categorical)
            and cands.shape == ms_cands.shape)
    if not fits:
        raise StateError(f"window partial of shape {w.num.shape} does not fit this engine's layout "
                         f"({want_rows} rows x {lay.num_total} bins): built from another reference or settings")


def partial_events(w: WindowCounts, lay: Layout) -> int:
    """Events in a window that has not been finalised (row 0 is filled at close)."""
    if not lay.dims:
        return int(w.rates[0, 0])
    off = lay.row_offset(0)
    return int(w.rates[off : off + lay.top_k + 1, 0].sum())


def row_map_values(dims: list[str], vocab_values: list[list[str]], dst: Layout) -> np.ndarray:
    """Row index in ``dst`` for every row of a partial laid out with ``dims``/``vocab_values``."""

    top_k = dst.top_k
    m = np.zeros(1 + len(dims) * (top_k + 1), dtype=np.int64)
    for d, dim in enumerate(dims):
        if dim not in dst.dims:
            raise EngineError(f"cannot merge: slice dimension {dim!r} is not in the destination layout {dst.dims}")
        dd = dst.dims.index(dim)
        values = vocab_values[d]
        for code in range(top_k + 1):
            if code < len(values):
                tgt = int(dst.vocabs[dd].codes([values[code]])[0])
            else:
                tgt = top_k
            m[1 + d * (top_k + 1) + code] = dst.row_offset(dd) + tgt
    return m


def remap_candidates(w: WindowCounts, cands: np.ndarray, ms: Any) -> None:
    """Re-key exact-value candidate counts by value (workers discover candidates independently)."""
    if np.array_equal(cands, ms.cands, equal_nan=True):
        return
    out = np.zeros_like(w.cand)
    for j in range(cands.shape[0]):
        for c in range(cands.shape[1]):
            v = cands[j, c]
            if np.isnan(v):
                continue
            hit = np.flatnonzero(ms.cands[j] == v)
            if hit.size == 0:
                free = np.flatnonzero(np.isnan(ms.cands[j]))
                if free.size == 0:
                    continue
                k = int(free[0])
                ms.assign_candidate(j, k, float(v), w.start)
            else:
                k = int(hit[0])
            out[:, j, k] += w.cand[:, j, c]
    w.cand = out


def row_map(src: Layout, dst: Layout) -> np.ndarray:
    """Row index in ``dst`` for every row of ``src`` (admitting values into dst's vocab)."""

    m = np.zeros(src.n_rows, dtype=np.int64)
    for d, dim in enumerate(src.dims):
        if dim not in dst.dims:
            raise EngineError(f"cannot merge: slice dimension {dim!r} is not in the destination layout {dst.dims}")
        dd = dst.dims.index(dim)
        dvoc = dst.vocabs[dd]
        for code in range(src.top_k + 1):
            label = src.vocabs[d].label(code)
            if label == "__other__" or code >= len(src.vocabs[d].values):
                tgt = dst.top_k
            else:
                tgt = int(dvoc.codes([label])[0])
            m[src.row_offset(d) + code] = dst.row_offset(dd) + tgt
    return m


def remap(w: WindowCounts, rowmap: np.ndarray, lay: Layout) -> WindowCounts:
    out = WindowCounts.empty(lay, w.start, w.end)
    for name in ("num", "cat", "nz", "slog", "slog2", "sx", "cand", "rates", "lat"):
        np.add.at(getattr(out, name), rowmap, getattr(w, name))
    out.absent, out.type_err, out.nonfinite = w.absent.copy(), w.type_err.copy(), w.nonfinite.copy()
    out.unseen = [dict(d) for d in w.unseen]
    out.unexpected, out.thresholds = dict(w.unexpected), dict(w.thresholds)
    out.versions, out.decisions = dict(w.versions), dict(w.decisions)
    out.reasons = {k: dict(d) for k, d in w.reasons.items()}
    out.late, out.max_ts = w.late, w.max_ts
    if w.mv is not None:
        from detector.core.checks.multivariate.window import remap_counters

        out.mv = remap_counters(w.mv, rowmap, lay.n_rows)
    return out
