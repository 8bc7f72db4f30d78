"""Columnar decoding of clean prediction events: a whole batch through Arrow's JSON reader.

Parsing a batch of messages into Python objects (dicts or msgspec Structs) and then pulling
columns out of them costs more than the parse alone. :class:`ArrowDecoder` joins the batch's
messages into one newline-delimited buffer and reads it with ``pyarrow.json.read_json`` against
an explicit schema made from the model's reference (numbers for numeric features, strings for
categorical ones and the contract's optional fields with their exact types): the parse and the
type checks run in C, and the output is already columns - no Python object per event except the
prediction ids.

Only what this reader can decide exactly is kept; everything else goes back, *per message*, to
the typed and general paths (:mod:`detector.core.inputs.fastdecode`, :mod:`detector.core.inputs.validate`),
which own every outcome of the bad-input table. A message goes back when it is neither one JSON
object nor a compact batch envelope (``[{...},{...}]``), or any of its events has a null or absent
required field or feature (Arrow cannot
tell an absent key from a null), a NaN/infinite number, an empty or too long id, another model,
a timestamp the engine would reject, or a string longer than the byte budget. The whole batch
goes back when Arrow refuses it (a value of another type, a duplicate key, invalid UTF-8, an
unknown feature, a slice value that is not a scalar...). The result is the same as the other
paths give (tested property); only the speed changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from detector.core.inputs.events import PredictionBatch, Schema
from detector.core.inputs.layout import CodedColumn
from detector.core.inputs.timeparse import parse_timestamps
from detector.core.inputs.wire import decision_lut

__all__ = ["ArrowDecoder"]

_OPEN, _CLOSE, _LBRACKET, _RBRACKET, _NEWLINE = ord("{"), ord("}"), ord("["), ord("]"), ord("\n")
_FLOATS = ("score", "prediction", "threshold", "latency_ms")
_STRINGS = ("model_version", "decision", "baseline_decision", "override")
_PRIMITIVE = (pa.types.is_string, pa.types.is_floating, pa.types.is_integer, pa.types.is_boolean, pa.types.is_null,
              pa.types.is_timestamp, pa.types.is_date, pa.types.is_time)


class ArrowDecoder:
    """Arrow JSON reader for one model's prediction events (see the module docstring)."""

    def __init__(self, model: str, schema: Schema, slice_dims: Sequence[str], no_action: Iterable[str]) -> None:
        self.model = model
        self.sch = schema
        self.no_action = {s.lower() for s in no_action}
        self.dims = list(slice_dims)  # slice dimensions in order; some may be features (slice_on_features)
        self.slice_dims = [d for d in slice_dims if d not in schema.known]
        feats = pa.struct([(k, pa.float64()) for k in schema.numeric] + [(k, pa.string()) for k in schema.categorical])
        self.n_feat = len(schema.numeric) + len(schema.categorical)
        self.n_slices = len(self.slice_dims)
        fields = [("prediction_id", pa.string()), ("model", pa.string()), ("features", feats),
                  *((k, pa.float64()) for k in _FLOATS), *((k, pa.string()) for k in _STRINGS),
                  ("fallback", pa.bool_()), ("slices", pa.struct([(d, pa.string()) for d in self.slice_dims]))]
        # unknown fields are inferred (top-level ones are ignored as the contract says; an unknown
        # feature or a nested slice value makes the batch take the other paths)
        self.options = [pj.ParseOptions(explicit_schema=pa.schema([*fields, ("ts", t)]), unexpected_field_behavior="infer")
                        for t in (pa.float64(), pa.string())]
        self.ts_text = 0  # which of the two: epoch numbers or RFC 3339 text (switches on a refused batch)
        self.vsets = [pa.array(list(schema.vocab[k]), type=pa.string()) for k in schema.categorical]

    # ------------------------------------------------------------------ parse
    def decode(self, raws: Sequence[Any], min_epoch: float, max_id_bytes: int,
               max_value_bytes: int) -> tuple[PredictionBatch | None, list[int]]:
        """(a batch of the clean events or None, message indexes left for the other paths). Never raises."""
        n = len(raws)
        if len(self.model.encode("utf-8", "surrogatepass")) > max_value_bytes:
            return None, list(range(n))  # the general path rejects every event of this model
        try:
            row_msg, row_item, buf = _lines(raws)
            table = self._read(buf, len(row_msg))
            if table is None and (buf.count(b"\n") > len(row_msg) - 1 or b"\r" in buf):
                row_msg, row_item, buf = _lines(_one_line(raws))  # a message spanning lines: without it
                table = self._read(buf, len(row_msg))
            if table is None:
                return None, list(range(n))
            b = self._columns(table, row_msg, row_item, min_epoch, max_id_bytes, max_value_bytes)
        except Exception:  # noqa: BLE001 - the other paths decide about every message
            return None, list(range(n))
        if b is None:
            return None, list(range(n))
        keep = set(b.origin.tolist())
        return b, [i for i in range(n) if i not in keep]

    def _read(self, buf: bytes, rows: int) -> pa.Table | None:
        if not rows:
            return None
        ro = pj.ReadOptions(use_threads=False, block_size=max(len(buf) + 64, 1 << 16))
        for attempt in range(2):
            try:
                t = pj.read_json(pa.py_buffer(buf), read_options=ro, parse_options=self.options[self.ts_text])
            except pa.ArrowInvalid as exc:
                if attempt == 0 and "Column(/ts)" in str(exc):  # the other timestamp form
                    self.ts_text ^= 1
                    continue
                return None
            return t if t.num_rows == rows else None
        return None

    # ------------------------------------------------------------------ columns
    def _columns(self, t: pa.Table, row_msg: np.ndarray, row_item: np.ndarray, min_epoch: float, max_id_bytes: int,
                 max_value_bytes: int) -> PredictionBatch | None:
        """The batch of the clean rows (a message with an unclean row is left out whole: the other
        paths take all of it)."""
        t = t.combine_chunks()
        n = t.num_rows
        col = {name: t.column(name).chunk(0) if t.column(name).num_chunks else None for name in t.column_names}
        feats, slices = col["features"], col["slices"]
        if feats is None or feats.type.num_fields != self.n_feat:
            return None  # an unknown feature: counted by the other paths
        if slices is not None and (slices.type.num_fields != self.n_slices and not all(
                any(p(slices.type.field(j).type) for p in _PRIMITIVE) for j in range(slices.type.num_fields))):
            return None  # a slice value that is an object or a list
        ok = _valid(feats)
        pid = col["prediction_id"]
        plen = pc.binary_length(pid).to_numpy(zero_copy_only=False)
        ok &= _valid(pid) & (plen > 0) & (plen <= max_id_bytes)
        ok &= _valid(col["model"]) & _np(pc.equal(col["model"], self.model), False)
        ts_raw = col["ts"]
        ts = parse_timestamps(ts_raw.to_numpy(zero_copy_only=False) if self.ts_text == 0 else ts_raw.to_pylist())
        ok &= ~np.isnan(ts) & (ts >= min_epoch)
        nn = len(self.sch.numeric)
        num = np.empty((n, nn))
        fcols = feats.flatten()  # children with the parent's nulls
        for j in range(nn):
            c = fcols[j]
            num[:, j] = c.to_numpy(zero_copy_only=False)
            ok &= _valid(c)
        ok &= np.isfinite(num).all(axis=1)  # non-finite values and nulls: the other paths count them
        cats = fcols[nn:]
        for c in cats:
            ok &= _valid(c) & _short(c, max_value_bytes)
        floats = {}
        for k in _FLOATS:
            v = col[k].to_numpy(zero_copy_only=False)
            ok &= np.isfinite(v) | ~_valid(col[k])
            floats[k] = v
        for k in _STRINGS:
            ok &= _short(col[k], max_value_bytes)
        sl = [slices.flatten()[slices.type.get_field_index(d)] for d in self.slice_dims] if slices is not None else []
        for c in sl:
            ok &= _short(c, max_value_bytes)
        if not ok.all():
            if (row_item >= 0).any():  # every item of an envelope with an unclean item goes back with it
                ok &= ~np.isin(row_msg, row_msg[~ok])
            good = np.flatnonzero(ok)
            if not good.size:
                return None
            gi = pa.array(good)
            pid, ts, num = pid.take(gi), ts[good], num[good]
            cats = [c.take(gi) for c in cats]
            col = {k: col[k].take(gi) for k in (*_STRINGS, "fallback")}
            floats = {k: v[good] for k, v in floats.items()}
            sl = [c.take(gi) for c in sl]
            row_msg, row_item = row_msg[good], row_item[good]
            n = good.size
        return self._batch(n, pid, ts, num, cats, floats, col, sl, row_msg, row_item)

    def _batch(self, n: int, pid: pa.Array, ts: np.ndarray, num: np.ndarray, cats: list[pa.Array],
               floats: dict[str, np.ndarray], col: dict[str, Any], sl: list[pa.Array], row_msg: np.ndarray,
               row_item: np.ndarray) -> PredictionBatch:
        sch = self.sch
        nn, nc = len(sch.numeric), len(sch.categorical)
        codes = np.empty((n, nc), dtype=np.int32)
        unseen: list[list[str]] = []
        for j, (c, vs) in enumerate(zip(cats, self.vsets, strict=True)):
            k = len(vs)
            ix = pc.index_in(c, value_set=vs)
            codes[:, j] = ix.fill_null(k).to_numpy(zero_copy_only=False)
            unseen.append(c.filter(ix.is_null()).to_pylist() if ix.null_count else [])
        score = floats["score"]
        if np.isnan(score).any():  # regression models send "prediction": per event, the score else the prediction
            score = np.where(np.isnan(score), floats["prediction"], score)
        acted, decisions = self._decisions(col["decision"], n)
        baseline = self._decisions(col["baseline_decision"], n)[0] if col["baseline_decision"].null_count < n else None
        versions: dict[str, int] = {}
        mv = col["model_version"]
        if mv.null_count < n:
            for d in pc.value_counts(mv).to_pylist():
                if d["values"] is not None:
                    versions[d["values"]] = d["counts"]
            if len(versions) > 16:
                versions = dict(sorted(versions.items(), key=lambda kv: -kv[1])[:16])
        fb = col["fallback"]
        fallback = fb.cast(pa.float64()).to_numpy(zero_copy_only=False) if fb.null_count < n else np.full(n, np.nan)
        ov = col["override"]
        by_dim = dict(zip(self.slice_dims, sl, strict=False))
        slices: dict[str, list[Any]] = {}
        for d in self.dims:  # the typed path's values: floats for a numeric feature, text for the rest
            if d in by_dim:
                slices[d] = _pylist(by_dim[d])
            elif d in sch.known:
                j = sch.numeric.index(d) if d in sch.numeric else -1
                slices[d] = num[:, j].tolist() if j >= 0 else _pylist(cats[sch.categorical.index(d)])
            else:
                slices[d] = [None] * n
        z = np.zeros(nn, dtype=np.int64)
        zc = np.zeros(nc, dtype=np.int64)
        return PredictionBatch(
            model=self.model, ids=pid.to_pylist(), ts=ts, num=num, num_absent=z, num_nonfinite=z.copy(),
            num_type_err=z.copy(), cat_codes=codes, cat_absent=zc, cat_type_err=zc.copy(), unseen=unseen,
            slices=slices, score=score, acted=acted, threshold=floats["threshold"], latency_ms=floats["latency_ms"],
            fallback=fallback, versions=versions, unexpected={}, override=ov.to_pylist() if ov.null_count < n else None,
            decisions=decisions, baseline=baseline, origin=row_msg, item=row_item)

    def _decisions(self, c: pa.Array, n: int) -> tuple[np.ndarray, dict[str, int]]:
        """``acted`` per event (1 action, 0 no action, NaN none) and the events per decision value."""
        decisions: dict[str, int] = {}
        if c.null_count == n:
            return np.full(n, np.nan), decisions
        enc = c.dictionary_encode()
        values = enc.dictionary.to_pylist()
        idx = enc.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
        lut, decisions = decision_lut(values, np.bincount(idx, minlength=len(values) + 1), self.no_action)
        return lut[idx], decisions


def _lines(raws: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, bytes]:
    """The messages that are one JSON object, or a compact batch envelope ``[{...},{...}]``, as
    newline-delimited rows: (message index per row, envelope item per row or -1, the rows joined).

    An envelope's items are split at ``},{``. Should that sequence be inside a string, the split
    puts a raw line break into the string, which JSON forbids: Arrow refuses the batch, and the
    other paths take it. Messages in any other form are left out (the other paths take them)."""
    n = len(raws)
    if None in raws:
        idx = [i for i in range(n) if raws[i] is not None]
        sub = [raws[i] for i in idx]
    else:
        idx, sub = list(range(n)), raws
    buf = b"\n".join(sub)
    lens = np.fromiter(map(len, sub), dtype=np.int64, count=len(sub))
    ends = np.cumsum(lens + 1) - 1  # position of each message's trailing separator
    starts = ends - lens
    a = np.frombuffer(buf, dtype=np.uint8)
    ok = lens >= 2
    first = np.where(ok, a[np.minimum(starts, max(a.size - 1, 0))] if a.size else 0, 0)
    last = np.where(ok, a[np.maximum(ends - 1, 0)] if a.size else 0, 0)
    single = ok & (first == _OPEN) & (last == _CLOSE)
    if single.all():
        return np.asarray(idx, dtype=np.int64), np.full(len(idx), -1, dtype=np.int64), buf
    env = ok & (first == _LBRACKET) & (last == _RBRACKET)
    if env.all():
        got = _envelopes(sub, np.asarray(idx, dtype=np.int64), lens, starts, a, buf)
        if got is not None:
            return got
    parts: list[bytes] = []
    row_msg: list[int] = []
    row_item: list[int] = []
    for j in np.flatnonzero(single | env).tolist():
        r = sub[j]
        if single[j]:
            parts.append(r)
            row_msg.append(idx[j])
            row_item.append(-1)
        elif r[:2] == b"[{" and r[-2:] == b"}]":
            body = r[1:-1]
            k = body.count(b"},{") + 1
            parts.append(body.replace(b"},{", b"}\n{") if k > 1 else body)
            row_msg.extend([idx[j]] * k)
            row_item.extend(range(k) if k > 1 else [-1])
    return np.asarray(row_msg, dtype=np.int64), np.asarray(row_item, dtype=np.int64), b"\n".join(parts)


def _envelopes(sub: Sequence[bytes], idx: np.ndarray, lens: np.ndarray, starts: np.ndarray, a: np.ndarray,
               buf: bytes) -> tuple[np.ndarray, np.ndarray, bytes] | None:
    """:func:`_lines` of a batch of compact envelopes only (``[{...},{...}]``, no line break inside),
    in two C passes over the bytes (join without the brackets, split at ``},{``) and one numpy
    pass (the rows' message from where the line breaks fall) instead of four per message; None
    for any other batch."""
    n = len(sub)
    if not ((lens >= 4).all() and (a[starts + 1] == _OPEN).all() and (a[starts + lens - 2] == _CLOSE).all()
            and buf.count(b"\n") == n - 1 and b"\r" not in buf):
        return None
    body = b"\n".join([memoryview(r)[1:-1] for r in sub]).replace(b"},{", b"}\n{")
    row_start = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == _NEWLINE)
    row_start = np.concatenate((np.zeros(1, dtype=np.int64), row_start + 1))
    msg = np.searchsorted(np.cumsum(lens - 1) - 1, row_start, side="right")  # each message's last byte + 1
    per = np.bincount(msg, minlength=n)
    item = np.arange(msg.size, dtype=np.int64) - (np.cumsum(per) - per)[msg]
    item[per[msg] == 1] = -1
    return idx[msg], item, body


def _one_line(raws: Sequence[Any]) -> list[Any]:
    """The messages, those with a line break inside replaced by None (left to the other paths)."""
    return [None if r is None or b"\n" in r or b"\r" in r else r for r in raws]


def _valid(a: pa.Array) -> np.ndarray:
    """True where the value is not null."""
    if a.null_count == 0:
        return np.ones(len(a), dtype=bool)
    return a.is_valid().to_numpy(zero_copy_only=False)


def _np(a: pa.Array, null: bool) -> np.ndarray:
    return a.fill_null(null).to_numpy(zero_copy_only=False)


def _short(a: pa.Array, max_bytes: int) -> np.ndarray | bool:
    """True where a string is null or within ``max_bytes`` (longer ones are cut by the other paths)."""
    if len(a) == 0 or a.null_count == len(a):
        return True
    if len(a.buffers()[2] or b"") <= max_bytes:  # all the text together fits
        return True
    return _np(pc.less_equal(pc.binary_length(a), max_bytes), True)


def _pylist(a: pa.Array) -> list[Any]:
    """A low-cardinality string column as a list that carries its dictionary encoding (distinct
    values in order of first appearance, null included)."""
    if a.null_count == len(a):
        return [None] * len(a)
    enc = a.dictionary_encode(null_encoding="encode")
    return CodedColumn(enc.dictionary.to_pylist(), enc.indices.to_numpy(zero_copy_only=False).astype(np.int64))
