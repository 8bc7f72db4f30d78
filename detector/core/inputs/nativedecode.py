"""Columnar decoding of clean prediction events in one C pass over the batch's bytes.

Arrow's JSON reader (:mod:`detector.core.inputs.arrowdecode`) and msgspec
(:mod:`detector.core.inputs.fastdecode`) each cost about as much as ``orjson.loads`` building
the dicts, before a column is made. The optional C extension ``detector.core.inputs._scan``
(built with the package when a C compiler is present) reads a message - one JSON object or a
batch envelope ``[{...},{...}]`` - straight into columns: the features and the contract's numbers
as doubles, every text field as a code into the batch's own dictionary of distinct values, the
prediction ids as ``str``. No Python object per event but the id; no fixed cost per call, so
small batches (one Kafka fetch, one message) take it too.

It accepts only what it can decide exactly and sends everything else back, *per message*, to the
typed and general paths, which own every outcome of the bad-input table: a null, absent, repeated
or unknown feature, a value of another type, a string with an escape sequence or over the byte
budget, invalid UTF-8, a number that is not finite or an integer of more than 18 digits, an empty
or too long id, another model, a slice value that is not a string, a timestamp the engine would
reject, nesting deeper than 32, trailing bytes. Numbers are correctly rounded, as orjson and
msgspec round them, so the columns are those the other paths give (tested property over hostile
batches in tests/core/test_events_native.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from detector.core.inputs._scan import N_FLOATS, N_STRS, Scanner
from detector.core.inputs.batch import PredictionBatch, Schema
from detector.core.inputs.layout import CodedColumn
from detector.core.inputs.timeparse import parse_timestamps
from detector.core.inputs.wire import decision_lut

__all__ = ["NativeDecoder"]

_SCORE, _PREDICTION, _THRESHOLD, _LATENCY, _FALLBACK, _TS = range(N_FLOATS)
_VERSION, _DECISION, _BASELINE, _OVERRIDE = range(N_STRS)


class NativeDecoder:
    """The C scanner for one model's prediction events (see the module docstring); the same
    ``decode`` as :class:`~detector.core.inputs.arrowdecode.ArrowDecoder`."""

    min_bytes = 0  # no fixed cost per call worth skipping

    def __init__(self, model: str, schema: Schema, slice_dims: Sequence[str], no_action: Iterable[str]) -> None:
        self.model = model
        self.sch = schema
        self.no_action = {s.lower() for s in no_action}
        self.dims = list(slice_dims)
        self.slice_dims = [d for d in slice_dims if d not in schema.known]
        enc = [k.encode("utf-8", "surrogatepass") for k in (*schema.numeric, *schema.categorical, *self.slice_dims)]
        self.nn, self.nc, self.ns = len(schema.numeric), len(schema.categorical), len(self.slice_dims)
        self.scanner = Scanner(model.encode("utf-8", "surrogatepass"), tuple(enc), self.nn, self.nc, self.ns)
        self.vocabs = [schema.vocab[k] for k in schema.categorical]

    def decode(self, raws: Sequence[Any], min_epoch: float, max_id_bytes: int,
               max_value_bytes: int) -> tuple[PredictionBatch | None, list[int]]:
        """(a batch of the clean events or None, message indexes left for the other paths). Never raises."""
        n = len(raws)
        if len(self.model.encode("utf-8", "surrogatepass")) > max_value_bytes:
            return None, list(range(n))  # the general path rejects every event of this model
        try:
            rows, dbl, ints, msg, item, ids, dicts, ts_rows, ts_text, rest = self.scanner.scan(
                raws, max_id_bytes, max_value_bytes)
            if not rows:
                return None, list(range(n))
            d = np.frombuffer(dbl, dtype=np.float64).reshape(rows, self.nn + N_FLOATS)
            codes = np.frombuffer(ints, dtype=np.int32).reshape(rows, self.nc + N_STRS + self.ns)
            row_msg = np.frombuffer(msg, dtype=np.int64)
            row_item = np.frombuffer(item, dtype=np.int64)
            ts = parse_timestamps(d[:, self.nn + _TS])
            if ts_text:
                ts[np.frombuffer(ts_rows, dtype=np.int64)] = parse_timestamps(ts_text)
            ok = ts >= min_epoch  # False for NaN too
            if not ok.all():  # every item of an envelope with an unclean item goes back with it
                ok &= ~np.isin(row_msg, row_msg[~ok])
                good = np.flatnonzero(ok)
                d, codes, ts, row_msg, row_item = d[good], codes[good], ts[good], row_msg[good], row_item[good]
                ids = [ids[i] for i in good.tolist()]
                rest = sorted(set(rest) | set(range(n)) - set(row_msg.tolist()))
                if not good.size:
                    return None, list(range(n))
                dicts = [_Sparse(v) for v in dicts]  # they hold values of rows left out
            return self._batch(d, codes, ts, row_msg, row_item, ids,
                               [_Sparse(v) for v in dicts] if rest else dicts), rest
        except Exception:  # noqa: BLE001 - the other paths decide about every message
            return None, list(range(n))

    def _batch(self, d: np.ndarray, codes: np.ndarray, ts: np.ndarray, row_msg: np.ndarray, row_item: np.ndarray,
               ids: list[str], dicts: list[list[str]]) -> PredictionBatch:
        sch, nn, nc = self.sch, self.nn, self.nc
        n = len(ids)
        num = np.ascontiguousarray(d[:, :nn])
        f = d[:, nn:]
        cat = np.empty((n, nc), dtype=np.int32)
        unseen: list[list[str]] = []
        for j, vocab in enumerate(self.vocabs):
            k = len(vocab)
            values = dicts[j]
            lut = np.fromiter((vocab.get(v, k) for v in values), dtype=np.int32, count=len(values))
            c = lut[codes[:, j]]
            cat[:, j] = c
            new = c == k
            unseen.append([values[i] for i in codes[new, j].tolist()] if new.any() else [])
        score = f[:, _SCORE].copy()
        if np.isnan(score).any():  # regression models send "prediction": per event, the score else the prediction
            score = np.where(np.isnan(score), f[:, _PREDICTION], score)
        acted, decisions = self._decisions(*_first_order(codes[:, nc + _DECISION], dicts[nc + _DECISION]))
        bcol = codes[:, nc + _BASELINE]
        baseline = self._decisions(*_first_order(bcol, dicts[nc + _BASELINE]))[0] if (bcol >= 0).any() else None
        versions: dict[str, int] = {}
        vals, vcodes = _first_order(codes[:, nc + _VERSION], dicts[nc + _VERSION])
        if vals:
            cnt = np.bincount(vcodes[vcodes >= 0], minlength=len(vals))
            versions = {v: int(c) for v, c in zip(vals, cnt.tolist(), strict=True)}
            if len(versions) > 16:
                versions = dict(sorted(versions.items(), key=lambda kv: -kv[1])[:16])
        ocol = codes[:, nc + _OVERRIDE]
        override = None
        if (ocol >= 0).any():
            ov = [*dicts[nc + _OVERRIDE], None]
            override = [ov[i] for i in ocol.tolist()]  # -1: the None at the end
        by_dim = {dim: nc + N_STRS + j for j, dim in enumerate(self.slice_dims)}
        slices: dict[str, list[Any]] = {}
        for dim in self.dims:  # the typed path's values: floats for a numeric feature, text for the rest
            if dim in by_dim:
                slices[dim] = _coded(codes[:, by_dim[dim]], dicts[by_dim[dim]])
            elif dim in sch.known:
                if dim in sch.numeric:
                    slices[dim] = num[:, sch.numeric.index(dim)].tolist()
                else:
                    j = sch.categorical.index(dim)
                    slices[dim] = _coded(codes[:, j], dicts[j])
            else:
                slices[dim] = [None] * n
        z = np.zeros(nn, dtype=np.int64)
        zc = np.zeros(nc, dtype=np.int64)
        return PredictionBatch(
            model=self.model, ids=ids, ts=ts, num=num, num_absent=z, num_nonfinite=z.copy(),
            num_type_err=z.copy(), cat_codes=cat, cat_absent=zc, cat_type_err=zc.copy(), unseen=unseen,
            slices=slices, score=score, acted=acted, threshold=f[:, _THRESHOLD].copy(),
            latency_ms=f[:, _LATENCY].copy(), fallback=f[:, _FALLBACK].copy(), versions=versions, unexpected={},
            override=override, decisions=decisions, baseline=baseline, origin=row_msg.copy(), item=row_item.copy())

    def _decisions(self, values: list[str], idx: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """``acted`` per event (1 action, 0 no action, NaN none) and the events per decision value."""
        decisions: dict[str, int] = {}
        if not values:
            return np.full(len(idx), np.nan), decisions
        lut, decisions = decision_lut(values, np.bincount(idx[idx >= 0], minlength=len(values)), self.no_action)
        return lut[idx], decisions  # idx -1 (null) reads the last entry, NaN


class _Sparse(list):  # type: ignore[type-arg]
    """A dictionary of the scanner's that may hold values of messages it sent back (then its order
    is not that of first appearance among the rows kept, and some values may be used by none)."""


def _first_order(col: np.ndarray, values: list[str]) -> tuple[list[str], np.ndarray]:
    """The values the rows use, in order of first appearance among them, and the rows' codes
    into that list (-1 = null). The scanner's dictionary may hold values of messages it sent back."""
    if type(values) is not _Sparse:  # already so: the scanner adds values in the order it meets them
        return values, col.astype(np.int64)
    present = col >= 0
    if not present.any():
        return [], col.astype(np.int64)
    uniq, first = np.unique(col[present], return_index=True)
    order = uniq[np.argsort(first, kind="stable")]
    remap = np.full(len(values) + 1, -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    return [values[i] for i in order.tolist()], remap[col]  # col -1 -> remap[-1] = -1


def _coded(col: np.ndarray, values: list[str]) -> list[Any]:
    """A low-cardinality text column as a list that carries its dictionary encoding (distinct
    values in order of first appearance, null included), as Arrow's reader gives it."""
    if not (col >= 0).any():
        return [None] * len(col)
    c = col.astype(np.int64)
    if type(values) is not _Sparse and c.min() >= 0:  # no null, and already in order of first appearance
        return CodedColumn(list(values), c)
    vals = [*values, None]
    c[c < 0] = len(values)
    uniq, first = np.unique(c, return_index=True)
    order = uniq[np.argsort(first, kind="stable")]
    remap = np.empty(len(vals), dtype=np.int64)
    remap[order] = np.arange(len(order))
    return CodedColumn([vals[i] for i in order.tolist()], remap[c])
