"""Feature parity, the pieces: what was served, the offline values in the same encoding, one
comparison per joined pair and the per-window counts (:mod:`detector.core.outcomes.parity` joins
and evaluates them).

- :class:`ServedFeatures`: one model's served features (numeric matrix, categorical codes, slice
  codes, joined flag) in the shared ring of served predictions (:mod:`detector.core.outcomes.ring`),
  bounded in rows and in bytes.
- :func:`offline_columns` encodes offline values as the served ones are (an unseen category by a
  hash of its text, so a renamed category mismatches); :func:`compare` counts, per pair and
  feature, compared / mismatch / missing on one side / both present / relative difference.
- :class:`ParityWindow`: those counts per slice row and feature in one join-time window, with a
  few served-vs-offline examples.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from detector.core.inputs.events import PredictionBatch
from detector.core.inputs.wire import float_or_nan, text_of
from detector.core.outcomes.ring import Column, Ring
from detector.core.state.codec import check, load_arrays
from detector.core.stats.effects import rnd

__all__ = ["ServedFeatures", "ParityWindow", "Compared", "compare", "offline_columns", "held_cost", "json_size",
           "scalars", "FIELDS", "MAX_EXAMPLES", "RTOL", "ATOL"]

MAX_EXAMPLES = 3
RTOL, ATOL = 1e-6, 1e-9
FIELDS = ("compared", "mismatch", "one_missing", "both", "reldiff")
_UNSEEN = 1 << 40  # categorical code of an unseen value: _UNSEEN + crc32(text)
_ABSENT = object()
_NUMERIC = {int, float, bool, type(None)}


def _hash(v: str) -> int:
    return _UNSEEN + zlib.crc32(v.encode("utf-8", "replace"))


class ServedFeatures(Ring):
    """One model's served features in a ring (columns + id -> slot), bounded in rows and in bytes.

    A row costs :attr:`row_bytes` (its columns, the id's str header and dict slot) plus the
    id's characters; ``max_bytes`` bounds the sum (oldest rows leave first).
    """

    def __init__(self, layout: Any, retain_max: int, max_bytes: int = 1 << 62) -> None:
        self.layout = layout
        self.fn, self.fc, self.D = len(layout.numeric), len(layout.categorical), len(layout.dims)
        row_bytes = 8 + 8 * (self.fn + self.fc) + 2 * self.D + 1 + 8 + 49 + 100
        cols = {"ts": Column(np.float64), "num": Column(np.float64, self.fn), "cat": Column(np.int64, self.fc),
                "codes": Column(np.int16, self.D), "joined": Column(np.int8)}
        super().__init__(cols, max(1, min(retain_max, max_bytes // row_bytes)), 4096, max_bytes, row_bytes)

    def put_batch(self, b: PredictionBatch, codes: np.ndarray) -> None:
        """Retain a batch's served features (an unseen category as the hash of its text)."""
        if b.n == 0:
            return
        lay = self.layout
        cat = b.cat_codes.astype(np.int64)
        for j, name in enumerate(lay.categorical):
            k = len(lay.cat_vocab[name])
            rows = np.flatnonzero(cat[:, j] == k)
            if rows.size and len(b.unseen[j]) == rows.size:  # unseen values line up with their rows
                cat[rows, j] = [_hash(v) for v in b.unseen[j]]
        self.put(b.ids, {"ts": b.ts, "num": b.num, "cat": cat, "codes": codes})

    def load(self, st: dict[str, Any]) -> None:
        self.load_state(st, "served feature ring")


def held_cost(pid: str, nbytes: int) -> int:
    """Estimated bytes of one held offline event: its decoded features as Python objects (about
    4x their JSON), the id and the dict slot."""
    return 300 + len(pid) + 4 * int(nbytes)


def json_size(v: Any) -> int:
    try:
        return len(orjson.dumps(v))
    except Exception:  # noqa: BLE001 - an estimate; values we cannot encode count as small
        return 64


def scalars(feats: dict[str, Any]) -> dict[str, Any]:
    """A held offline event's features as plain scalars: a nested value compares like a missing one."""
    return {str(k): v if v is None or isinstance(v, bool | int | float | str) else None for k, v in feats.items()}


def offline_columns(layout: Any, feats: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[list[Any]]]:
    """Offline values in the served encoding: (num, num_absent, cat, cat_absent, raw categorical values)."""
    n = len(feats)
    num = np.full((n, len(layout.numeric)), np.nan)
    num_abs = np.zeros(num.shape, dtype=bool)
    for j, name in enumerate(layout.numeric):
        col = list(map(dict.get, feats, repeat(name, n), repeat(_ABSENT, n)))
        ab = np.fromiter((v is _ABSENT for v in col), dtype=bool, count=n)
        num_abs[:, j] = ab
        vals = [None if v is _ABSENT else v for v in col] if ab.any() else col
        try:
            if not set(map(type, vals)) <= _NUMERIC:
                raise TypeError
            num[:, j] = np.array(vals, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):  # wrong types, or integers beyond float range
            num[:, j] = [float_or_nan(v) for v in vals]
    num[np.isinf(num)] = np.nan
    cat = np.zeros((n, len(layout.categorical)), dtype=np.int64)
    cat_abs = np.zeros(cat.shape, dtype=bool)
    raws: list[list[Any]] = []
    for j, name in enumerate(layout.categorical):
        vocab = layout.cat_vocab[name]
        missing = len(vocab) + 1
        col = list(map(dict.get, feats, repeat(name, n), repeat(_ABSENT, n)))
        raws.append(col)
        for i, v in enumerate(col):
            if v is _ABSENT:
                cat_abs[i, j] = True
                cat[i, j] = missing
            elif isinstance(v, bool) or (sv := text_of(v)) is None:  # null, lists, objects, non-finite
                cat[i, j] = missing
            else:
                code = vocab.get(sv)
                cat[i, j] = code if code is not None else _hash(sv)
    return num, num_abs, cat, cat_abs, raws


@dataclass
class Compared:
    """Joined pairs compared: one column per :data:`FIELDS` entry, (pairs, numeric + categorical features)."""

    cols: list[np.ndarray]
    ridx: np.ndarray  # (pairs, dims + 1): the slice rows each pair counts in (all traffic first)
    served_num: np.ndarray
    offline_num: np.ndarray
    served_cat: np.ndarray
    raws: list[list[Any]]  # offline categorical values as sent

    def example(self, lay: Any, i: int, j: int, pid: str) -> dict[str, Any]:
        """Pair ``i``'s values of feature ``j`` (numeric first, then categorical), for an alert's evidence."""
        fn = self.served_num.shape[1]
        if j < fn:
            sv, ov = rnd(self.served_num[i, j], 6), rnd(self.offline_num[i, j], 6)
        else:
            jc = j - fn
            sv, ov = _cat_label(lay, jc, int(self.served_cat[i, jc])), self.raws[jc][i]
        return {"prediction_id": pid, "served": sv, "offline": ov}


def compare(s: ServedFeatures, sl: np.ndarray, feats: list[dict[str, Any]]) -> Compared:
    """Compare the served rows at slots ``sl`` with their offline features ``feats``.

    Numeric: a mismatch is ``|served - offline| > atol + rtol * |offline|`` or a value missing on
    exactly one side; categorical: another category, or missing on one side. A feature absent from
    the offline event is not compared."""
    lay = s.layout
    onum, onum_abs, ocat, ocat_abs, raws = offline_columns(lay, feats)
    a = s.num[sl]  # type: ignore[attr-defined]
    an, bn = np.isnan(a), np.isnan(onum)
    cmp_n = ~onum_abs
    both_n = ~an & ~bn & cmp_n
    one_n = (an ^ bn) & cmp_n
    diff = np.abs(np.where(both_n, a - onum, 0.0))
    mism_n = (both_n & (diff > ATOL + RTOL * np.abs(np.nan_to_num(onum)))) | one_n
    rel = np.minimum(diff / np.maximum(np.abs(np.nan_to_num(onum)), ATOL), 1e6)
    ac = s.cat[sl]  # type: ignore[attr-defined]
    miss_codes = np.array([len(lay.cat_vocab[c]) + 1 for c in lay.categorical], dtype=np.int64)
    am, bm = ac == miss_codes, ocat == miss_codes
    cmp_c = ~ocat_abs
    both_c = ~am & ~bm & cmp_c
    one_c = (am ^ bm) & cmp_c
    mism_c = (both_c & (ac != ocat)) | one_c
    cols = [np.concatenate(x, axis=1).astype(np.float64) for x in
            ((cmp_n, cmp_c), (mism_n, mism_c), (one_n, one_c), (both_n, both_c), (rel, np.zeros(ac.shape)))]
    codes = s.codes[sl].astype(np.int64)  # type: ignore[attr-defined]
    ridx = np.zeros((sl.size, s.D + 1), dtype=np.int64)
    for d in range(s.D):
        ridx[:, d + 1] = lay.row_offset(d) + codes[:, d]
    return Compared(cols, ridx, a, onum, ac, raws)


class ParityWindow:
    """Joined pairs of one model in one join-time window (``first``: start of the earliest window
    whose pairs were carried into it because they were too few to judge on their own)."""

    def __init__(self, start: float, end: float, rows: int, nf: int) -> None:
        self.start, self.end = start, end
        self.first = start
        self.acc = np.zeros((len(FIELDS), rows, nf))
        self.examples: list[list[tuple[tuple[int, ...], dict[str, Any]]]] = [[] for _ in range(nf)]
        self.pairs = 0

    def absorb(self, other: ParityWindow) -> None:
        self.first = min(self.first, other.first)
        self.acc += other.acc
        self.pairs += other.pairs
        for mine, theirs in zip(self.examples, other.examples, strict=True):
            mine[:0] = theirs[: MAX_EXAMPLES]
            del mine[MAX_EXAMPLES:]

    def to_state(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "first": self.first, "acc": self.acc, "pairs": self.pairs,
                "examples": [[[list(r), e] for r, e in ex] for ex in self.examples]}

    @classmethod
    def from_state(cls, st: dict[str, Any], rows: int, nf: int) -> ParityWindow:
        check(isinstance(st, dict), "parity window state must be a dict")
        w = cls(float(st["start"]), float(st["end"]), rows, nf)
        load_arrays(w, st, ("acc",), "parity window")
        w.pairs = int(st["pairs"])
        w.first = float(st.get("first", w.start))
        ex = st["examples"]
        check(isinstance(ex, list) and len(ex) == nf, "parity examples per feature")
        for j, lst in enumerate(ex):
            check(isinstance(lst, list), "parity examples")
            for row in lst[:MAX_EXAMPLES]:
                check(isinstance(row, list) and len(row) == 2 and isinstance(row[0], list) and isinstance(row[1], dict),
                      "parity example")
                w.examples[j].append((tuple(int(r) for r in row[0]), row[1]))
        return w


def _cat_label(lay: Any, j: int, code: int) -> str | None:
    name = lay.categorical[j]
    vocab = lay.cat_vocab[name]
    if code >= _UNSEEN or code == len(vocab):
        return "<unseen value>"
    if code == len(vocab) + 1:
        return None
    for k, v in vocab.items():
        if v == code:
            return k
    return None
