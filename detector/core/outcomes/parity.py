"""Feature parity: served feature values vs the offline pipeline's values for the same prediction.

Once the first offline feature event has been seen (a model without an offline feed pays
nothing on its prediction path; offline events for predictions served before that are counted
as unjoined), the served features of recent predictions are retained per model - numeric
matrix, categorical codes, slice codes - for at most :data:`RETAIN_SECONDS` (2 h) of event time
and at most
:data:`RETAIN_MAX` (200,000) predictions, whichever is smaller (memory: about
``(8 x features + 40) bytes`` of columns plus ~150 bytes of id and dict entry per prediction,
~70 MB for 25 features at the bound) and at most three quarters of ``detector.max_parity_bytes``
(shared by the models; the oldest rows leave first). An offline feature event (``source: offline``) joins to
them by ``prediction_id`` in either arrival order: one that comes before its prediction is held
(at most :data:`MAX_HELD`) until the stream is :data:`OFFLINE_HOLD` (10 min) past its ts, then
counted as *unjoined* - as is the oldest held event when more than :data:`MAX_HELD` of them, or
more than a quarter of ``detector.max_parity_bytes`` (about 4x their JSON size each), wait.
A second offline event for the same prediction is a *duplicate*.

Per feature and slice row, each join counts: compared (the offline event carried the key),
mismatch (numeric: ``|served - offline| > atol + rtol * |offline|``, rtol 1e-6, atol 1e-9;
categorical: not the same category; or missing on exactly one side), missing on one side only,
and the relative difference ``|served - offline| / max(|offline|, atol)`` (capped at 1e6).
Unseen categories are compared by a hash of their text, so a renamed category mismatches.

Pairs are evaluated per window of *join time* - the event time of the later of the prediction and
its offline event, on the engine's window grid - as soon as the watermark passes the window, so an
alert comes within two windows of the offline events' arrival whatever the batch sizes and never
waits for labels. A window with fewer than ``min_count_rate`` joined pairs (a quiet model with a
small offline subset) is judged together with the next ones, for up to :data:`MAX_CARRY`. A mismatch rate of at
least 1% (effect; critical 10%) that is significantly above 1% (one-sided proportion test,
Benjamini-Hochberg across features x slices) is a ``feature_parity`` finding, with at most
:data:`MAX_EXAMPLES` served-vs-offline value examples (no payloads).
"""

from __future__ import annotations

import math
import zlib
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from detector.core.checks.window import Result
from detector.core.decisions.alerts import PARITY_KINDS, Alert
from detector.core.decisions.select import select_findings
from detector.core.inputs.events import FeatureBatch, PredictionBatch
from detector.core.inputs.timeparse import format_ts
from detector.core.inputs.wire import float_or_nan, text_of
from detector.core.outcomes.cohort import fold
from detector.core.state.codec import check, load_arrays
from detector.core.stats import distributions as stats

__all__ = ["ParityMonitor", "RETAIN_SECONDS", "RETAIN_MAX", "OFFLINE_HOLD", "MAX_HELD", "MAX_EXAMPLES", "RTOL", "ATOL",
           "MISMATCH_WARNING", "MISMATCH_CRITICAL"]

RETAIN_SECONDS = 7200.0
RETAIN_MAX = 200_000
OFFLINE_HOLD = 600.0
MAX_HELD = 20_000
MAX_EXAMPLES = 3
RTOL, ATOL = 1e-6, 1e-9
MISMATCH_WARNING, MISMATCH_CRITICAL = 0.01, 0.1
MAX_CARRY = 86400.0  # a window with too few joined pairs is judged together with the next ones, up to a day
_UNSEEN = 1 << 40  # categorical code of an unseen value: _UNSEEN + crc32(text)
_ABSENT = object()
_NUMERIC = {int, float, bool, type(None)}
_FIELDS = ("compared", "mismatch", "one_missing", "both", "reldiff")


def _hash(v: str) -> int:
    return _UNSEEN + zlib.crc32(v.encode("utf-8", "replace"))


class _Served:
    """Ring of one model's served features (columns + id -> slot), bounded in rows and in bytes.

    A row costs :attr:`row_bytes` (its columns, the id's str header and dict slot) plus the
    id's characters; ``max_bytes`` bounds the sum (oldest rows leave first).
    """

    def __init__(self, layout: Any, retain_max: int, max_bytes: int = 1 << 62) -> None:
        self.layout = layout
        self.fn, self.fc, self.D = len(layout.numeric), len(layout.categorical), len(layout.dims)
        self.row_bytes = 8 + 8 * (self.fn + self.fc) + 2 * self.D + 1 + 8 + 49 + 100
        self.max_bytes = max_bytes
        self.retain_max = max(1, min(retain_max, max_bytes // self.row_bytes))
        self.id_bytes = 0
        self.index: dict[str, int] = {}
        self.head = self.size = 0
        self._alloc(min(4096, self.retain_max))

    @property
    def nbytes(self) -> int:
        return self.size * self.row_bytes + self.id_bytes

    def _alloc(self, cap: int) -> None:
        self.cap = cap
        self.ts = np.zeros(cap)
        self.num = np.zeros((cap, self.fn))
        self.cat = np.zeros((cap, self.fc), dtype=np.int64)
        self.codes = np.zeros((cap, self.D), dtype=np.int16)
        self.joined = np.zeros(cap, dtype=np.int8)
        self.ids = np.empty(cap, dtype=object)

    def _order(self) -> np.ndarray:
        return (self.head + np.arange(self.size)) % self.cap

    def _drop(self, k: int) -> None:
        sl = (self.head + np.arange(k)) % self.cap
        idx = self.index
        for i in self.ids[sl].tolist():
            if i is not None:  # every id in the ring is indexed to its slot
                del idx[i]
                self.id_bytes -= len(i)
        self.ids[sl] = None
        self.head = (self.head + k) % self.cap
        self.size -= k

    def put(self, b: PredictionBatch, codes: np.ndarray) -> None:
        n = b.n
        if n == 0:
            return
        lay = self.layout
        cat = b.cat_codes.astype(np.int64)
        for j, name in enumerate(lay.categorical):
            k = len(lay.cat_vocab[name])
            rows = np.flatnonzero(cat[:, j] == k)
            if rows.size and len(b.unseen[j]) == rows.size:  # unseen values line up with their rows
                cat[rows, j] = [_hash(v) for v in b.unseen[j]]
        ids, ts, num = b.ids, b.ts, b.num
        keep = None
        if not self.index.keys().isdisjoint(ids):  # a retried prediction: the first copy stays
            keep = np.flatnonzero(~np.fromiter(map(self.index.__contains__, ids), dtype=bool, count=n))
        if n > self.retain_max:
            keep = (np.arange(n) if keep is None else keep)[-self.retain_max:]
        if keep is not None:
            ids = [ids[i] for i in keep.tolist()]
            ts, num, cat, codes, n = ts[keep], num[keep], cat[keep], codes[keep], len(ids)
            if n == 0:
                return
        if self.size + n > self.cap and self.cap < self.retain_max:
            cap = self.cap
            while cap < self.size + n and cap < self.retain_max:
                cap = min(2 * cap, self.retain_max)
            order = self._order()
            old = (self.ts[order], self.num[order], self.cat[order], self.codes[order], self.joined[order], self.ids[order])
            self._alloc(cap)
            m = self.size
            self.ts[:m], self.num[:m], self.cat[:m], self.codes[:m], self.joined[:m], self.ids[:m] = old
            self.head = 0
            self.index = {i: s for s, i in enumerate(old[5].tolist()) if i is not None}
        over = self.size + n - self.cap
        if over > 0:
            self._drop(over)
        sl = (self.head + self.size + np.arange(n)) % self.cap
        self.ts[sl], self.num[sl], self.cat[sl], self.joined[sl] = ts, num, cat, 0
        self.codes[sl] = codes
        self.ids[sl] = ids
        before = len(self.index)
        slots = sl.tolist()
        self.index.update(zip(ids, slots, strict=True))
        self.size += n
        self.id_bytes += sum(map(len, ids))
        if len(self.index) - before != n:  # the same id twice in this batch: the first copy stays
            first: dict[str, int] = {}
            for s, i in zip(slots, ids, strict=True):
                if i in first:
                    self.ids[s] = None
                    self.id_bytes -= len(i)
                else:
                    first[i] = s
            self.index.update(first)
        self.trim()

    def trim(self) -> None:
        """Drop the oldest rows while over the byte budget."""
        while self.size and self.nbytes > self.max_bytes:
            avg = self.nbytes / self.size
            self._drop(min(self.size, max(1, int((self.nbytes - self.max_bytes) / avg) + 1)))

    def evict(self, before: float) -> None:
        while self.size:
            k = min(self.size, 65536)
            seg = (self.head + np.arange(k)) % self.cap
            old = self.ts[seg] < before
            m = k if old.all() else int(np.argmin(old))
            if m == 0:
                return
            self._drop(m)
            if m < k:
                return

    def state(self) -> dict[str, Any]:
        o = self._order()
        return {"ts": self.ts[o], "num": self.num[o], "cat": self.cat[o], "codes": self.codes[o], "joined": self.joined[o],
                "ids": self.ids[o].tolist()}

    def load(self, st: dict[str, Any]) -> None:
        ids = st.get("ids") if isinstance(st, dict) else None
        check(isinstance(ids, list) and all(i is None or isinstance(i, str) for i in ids), "served feature ring ids")
        n = len(ids)
        want = {"ts": (n,), "num": (n, self.fn), "cat": (n, self.fc), "codes": (n, self.D), "joined": (n,)}
        for k, shape in want.items():
            check(isinstance(st.get(k), np.ndarray) and st[k].shape == shape, f"served feature ring {k} of shape {shape}")
        keep = slice(max(0, n - self.retain_max), n)
        ids = ids[keep]
        n = len(ids)
        self._alloc(max(min(4096, self.retain_max), n))
        self.ts[:n], self.num[:n], self.cat[:n] = st["ts"][keep], st["num"][keep], st["cat"][keep]
        self.codes[:n], self.joined[:n] = st["codes"][keep], st["joined"][keep]
        self.ids[:n] = ids
        self.head, self.size = 0, n
        self.index = {i: s for s, i in enumerate(ids) if i is not None}
        self.id_bytes = sum(map(len, self.index))


def held_cost(pid: str, nbytes: int) -> int:
    """Estimated bytes of one held offline event: its decoded features as Python objects (about
    4x their JSON), the id and the dict slot."""
    return 300 + len(pid) + 4 * int(nbytes)


def _json_size(v: Any) -> int:
    try:
        return len(orjson.dumps(v))
    except Exception:  # noqa: BLE001 - an estimate; values we cannot encode count as small
        return 64


def _offline_columns(layout: Any, feats: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[list[Any]]]:
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


class _Win:
    """Joined pairs of one model in one join-time window (``first``: start of the earliest window
    whose pairs were carried into it because they were too few to judge on their own)."""

    def __init__(self, start: float, end: float, rows: int, nf: int) -> None:
        self.start, self.end = start, end
        self.first = start
        self.acc = np.zeros((len(_FIELDS), rows, nf))
        self.examples: list[list[tuple[tuple[int, ...], dict[str, Any]]]] = [[] for _ in range(nf)]
        self.pairs = 0

    def absorb(self, other: _Win) -> None:
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
    def from_state(cls, st: dict[str, Any], rows: int, nf: int) -> _Win:
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


class ParityMonitor:
    """Served-vs-offline feature comparison for every model of an engine."""

    def __init__(self, engine: Any, retain_seconds: float = RETAIN_SECONDS, retain_max: int = RETAIN_MAX) -> None:
        self.engine = engine
        self.retain_seconds, self.retain_max = retain_seconds, retain_max
        self.served: dict[str, _Served] = {}
        self.windows: dict[str, dict[float, _Win]] = {}
        self.held: dict[str, tuple[float, dict[str, Any], str | None]] = {}
        self.held_cost: dict[str, int] = {}  # id -> estimated bytes (held_cost)
        self.held_bytes = 0
        # byte budget (detector.max_parity_bytes): a quarter for held offline events, the rest
        # shared by the models' served-feature rings
        self.max_bytes = int(getattr(engine.settings, "max_parity_bytes", 256 << 20))
        self.counters = {"joined": 0, "unjoined": 0, "duplicates": 0}
        self.latest: dict[str, dict[str, Any]] = {}
        self.now = -math.inf
        self.open_from = -math.inf  # parity windows starting before this were evaluated
        self.enabled = False  # served features are retained once an offline feature event was seen

    def on_predictions(self, ms: Any, b: PredictionBatch, codes: np.ndarray) -> None:
        if not self.enabled:
            return
        s = self.served.get(ms.name)
        if s is None:
            s = self.served[ms.name] = _Served(ms.layout, self.retain_max, self._served_budget(len(self.served) + 1))
            self.windows[ms.name] = {}
            for other in self.served.values():  # every model's share shrinks with a new one
                other.max_bytes = s.max_bytes
        s.put(b, codes.astype(np.int16))
        if b.n:
            self.now = max(self.now, float(b.ts.max()))
        if self.held:
            hits = [i for i in b.ids if i in self.held]
            if hits:
                recs = [(i, *self.held.pop(i)) for i in dict.fromkeys(hits)]
                self.held_bytes -= sum(self.held_cost.pop(r[0], 0) for r in recs)
                self._join([r[0] for r in recs], [r[2] for r in recs], [r[3] for r in recs], hold=False,
                           ts=np.array([r[1] for r in recs], dtype=np.float64))

    def _served_budget(self, models: int) -> int:
        return max(1 << 16, (self.max_bytes - self.max_bytes // 4) // max(1, models))

    def on_features(self, batch: FeatureBatch, now: float) -> None:
        self.enabled = True
        self.now = max(self.now, now)
        self._join(batch.ids, batch.features, batch.model, hold=True, ts=batch.ts,
                   nbytes=batch.nbytes if len(batch.nbytes) == batch.n else None)

    def _join(self, ids: list[str], feats: list[dict[str, Any]], models: list[str | None], hold: bool,
              ts: np.ndarray | None = None, nbytes: np.ndarray | None = None) -> None:
        left = np.ones(len(ids), dtype=bool)
        for name, s in self.served.items():
            slots = np.fromiter(map(s.index.get, ids, repeat(-1, len(ids))), dtype=np.int64, count=len(ids))
            ok = left & (slots >= 0)
            if any(m is not None for m in models):
                ok &= np.array([m is None or m == name for m in models], dtype=bool)
            if not ok.any():
                continue
            left &= ~ok
            k = np.flatnonzero(ok)
            sl = slots[k]
            dup = s.joined[sl] == 1
            dup[np.setdiff1d(np.arange(sl.size), np.unique(sl, return_index=True)[1])] = True  # twice in this batch
            self.counters["duplicates"] += int(dup.sum())
            k, sl = k[~dup], sl[~dup]
            if k.size:
                s.joined[sl] = 1
                self.counters["joined"] += int(k.size)
                t = s.ts[sl] if ts is None else np.maximum(s.ts[sl], np.nan_to_num(ts[k], nan=-np.inf))
                self._compare(name, s, sl, [ids[i] for i in k.tolist()], [feats[i] for i in k.tolist()], t)
        for i in np.flatnonzero(left).tolist():
            if not hold:
                self.counters["unjoined"] += 1
                continue
            if ids[i] in self.held:
                self.counters["duplicates"] += 1
                continue
            self.held[ids[i]] = (float(ts[i]) if ts is not None else self.now, feats[i], models[i])
            cost = held_cost(ids[i], int(nbytes[i]) if nbytes is not None else _json_size(feats[i]))
            self.held_cost[ids[i]] = cost
            self.held_bytes += cost
            while self.held and (len(self.held) > MAX_HELD or self.held_bytes > self.max_bytes // 4):
                old = next(iter(self.held))
                del self.held[old]
                self.held_bytes -= self.held_cost.pop(old, 0)
                self.counters["unjoined"] += 1

    def _compare(self, name: str, s: _Served, sl: np.ndarray, ids: list[str], feats: list[dict[str, Any]],
                 t: np.ndarray) -> None:
        """Compare joined pairs; each counts in the window of its join's event time ``t`` (the later
        of the prediction and the offline event), or the first open window if that one closed."""
        lay = s.layout
        onum, onum_abs, ocat, ocat_abs, raws = _offline_columns(lay, feats)
        a = s.num[sl]
        an, bn = np.isnan(a), np.isnan(onum)
        cmp_n = ~onum_abs
        both_n = ~an & ~bn & cmp_n
        one_n = (an ^ bn) & cmp_n
        diff = np.abs(np.where(both_n, a - onum, 0.0))
        mism_n = (both_n & (diff > ATOL + RTOL * np.abs(np.nan_to_num(onum)))) | one_n
        rel = np.minimum(diff / np.maximum(np.abs(np.nan_to_num(onum)), ATOL), 1e6)
        ac = s.cat[sl]
        miss_codes = np.array([len(lay.cat_vocab[c]) + 1 for c in lay.categorical], dtype=np.int64)
        am, bm = ac == miss_codes, ocat == miss_codes
        cmp_c = ~ocat_abs
        both_c = ~am & ~bm & cmp_c
        one_c = (am ^ bm) & cmp_c
        mism_c = (both_c & (ac != ocat)) | one_c
        cols = [np.concatenate(x, axis=1).astype(np.float64) for x in
                ((cmp_n, cmp_c), (mism_n, mism_c), (one_n, one_c), (both_n, both_c), (rel, np.zeros(ac.shape)))]
        codes = s.codes[sl].astype(np.int64)
        ridx = np.zeros((sl.size, s.D + 1), dtype=np.int64)
        for d in range(s.D):
            ridx[:, d + 1] = lay.row_offset(d) + codes[:, d]
        W = self.engine.settings.window
        starts = np.maximum(np.floor(t / W) * W, self.open_from)
        wins = self.windows[name]
        nf = s.fn + s.fc
        mism = cols[1] > 0
        for start in np.unique(starts).tolist():
            sel = np.flatnonzero(starts == start)
            w = wins.get(start)
            if w is None:
                w = wins[start] = _Win(start, start + W, lay.n_rows, nf)
            for f, col in enumerate(cols):
                w.acc[f] += fold(ridx[sel], lay.n_rows, nf, None, col[sel])
            w.pairs += sel.size
            for j in np.flatnonzero(mism[sel].any(axis=0)).tolist():
                ex = w.examples[j]
                if len(ex) >= MAX_EXAMPLES:
                    continue
                for i in sel[np.flatnonzero(mism[sel, j])][: MAX_EXAMPLES - len(ex)].tolist():
                    if j < s.fn:
                        sv, ov = _num(a[i, j]), _num(onum[i, j])
                    else:
                        jc = j - s.fn
                        sv, ov = _cat_label(lay, jc, int(ac[i, jc])), raws[jc][i]
                    ex.append((tuple(ridx[i].tolist()), {"prediction_id": ids[i], "served": sv, "offline": ov}))

    def advance(self, watermark: float) -> list[Alert]:
        out: list[Alert] = []
        for s in self.served.values():
            s.evict(max(watermark, self.now) - self.retain_seconds)
        cutoff = watermark - OFFLINE_HOLD
        gone = []
        for k, rec in self.held.items():
            if rec[0] >= cutoff:
                break
            gone.append(k)
        for k in gone:
            del self.held[k]
            self.held_bytes -= self.held_cost.pop(k, 0)
        self.counters["unjoined"] += len(gone)
        W = self.engine.settings.window
        self.open_from = max(self.open_from, math.floor(watermark / W) * W)
        need = self.engine.settings.min_count_rate
        for name in sorted(self.windows):
            wins = self.windows[name]
            while wins:
                st = min(wins)
                w = wins[st]
                if w.end > watermark:
                    break
                del wins[st]
                if w.acc[0, 0].max() < need and w.end - w.first < MAX_CARRY:
                    nxt = wins.get(w.end)  # too few pairs to judge: they count again with the next window
                    if nxt is None:
                        nxt = wins[w.end] = _Win(w.end, w.end + W, w.acc.shape[1], w.acc.shape[2])
                    nxt.absorb(w)
                    continue
                out.extend(self._evaluate(name, w))
        return out

    def _evaluate(self, name: str, w: _Win) -> list[Alert]:
        eng = self.engine
        lay = self.served[name].layout
        names = list(lay.numeric) + list(lay.categorical)
        acc = w.acc
        active = lay.active_rows()
        real = active[acc[0, active].sum(axis=1) > 0]
        if real.size == 0 or real[0] != 0:
            real = np.concatenate([[0], real[real != 0]])
        srows = real[real != 0]
        rows = np.concatenate([real, srows])
        comp = np.concatenate([np.zeros(real.size, bool), np.ones(srows.size, bool)])
        A = np.concatenate([acc[:, real], acc[:, :1] - acc[:, srows]], axis=1)  # (fields, P, F)
        st = eng.settings
        results = []
        for j, feat in enumerate(names):
            n, x, one, both, rel = (A[f, :, j] for f in range(len(_FIELDS)))
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = np.where(n > 0, x / np.maximum(n, 1), np.nan)
                one_share = np.where(n > 0, one / np.maximum(n, 1), np.nan)
                mrel = np.where(both > 0, rel / np.maximum(both, 1), np.nan)
            tested = n >= st.min_count_rate
            pv = np.asarray(stats.proportion_test(np.minimum(x, n), n, MISMATCH_WARNING, "greater"))
            r = np.nan_to_num(rate)
            results.append(Result(
                "feature_parity", feat, "mismatch_rate", rate, tested, r >= MISMATCH_WARNING, r >= MISMATCH_CRITICAL, pv,
                MISMATCH_WARNING,
                lambda i, j=j, rate=rate, n=n, x=x, one_share=one_share, mrel=mrel: {
                    "reference": {"source": "offline feature pipeline", "mismatch_rate_limit": MISMATCH_WARNING},
                    "current": {"compared": int(n[i]), "mismatches": int(x[i]), "mismatch_rate": _num(rate[i]),
                                "missing_one_side": _num(one_share[i]), "mean_relative_difference": _num(mrel[i])},
                    "examples": [e for rr, e in w.examples[j] if int(rows[i]) in rr][:MAX_EXAMPLES]},
                lambda i, feat=feat, rate=rate, one_share=one_share: (
                    f"{feat} differs between serving and the offline pipeline in {rate[i]:.1%} of joined predictions"
                    + (f" ({one_share[i]:.1%} missing on one side only)" if one_share[i] > 0 else "")
                    + ": training/serving skew in the feature pipeline")))
        view = _PView(rows, comp, A[0].max(axis=1))
        findings = select_findings(results, view, st.fdr_q)  # type: ignore[arg-type]
        evaluated = {_key(lay.row_label(int(r))) for r in real.tolist() if acc[0, r].max() >= st.min_count_rate}
        window = {"start": format_ts(w.first), "end": format_ts(w.end), "count": int(w.pairs), "_start": w.first, "_end": w.end}
        ctx = {"kinds": {f.kind for f in findings} | eng.alerts.firing_kinds(name), "model_version": None}
        alerts = eng.alerts.update(name, window, [(f, lay.row_label(f.row)) for f in findings], evaluated, ctx, scope=PARITY_KINDS)
        for a in alerts:
            if a.state == "firing":
                eng.counters.alerts_fired += 1
            else:
                eng.counters.alerts_resolved += 1
        self.latest[name] = self._summary(lay, names, acc, real)
        return alerts

    def _summary(self, lay: Any, names: list[str], acc: np.ndarray, real: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for j, feat in enumerate(names):
            per: dict[str, Any] = {}
            for r in real.tolist():
                n, x, one, both, rel = acc[:, r, j]
                if n <= 0:
                    continue
                per[_key(lay.row_label(r))] = {"compared": int(n), "mismatch_rate": _num(x / n), "missing_one_side": _num(one / n),
                                               "mean_relative_difference": _num(rel / both) if both else None}
            out[feat] = per
        return out

    def stats(self, model: str) -> dict[str, Any]:
        """Latest evaluated window: ``features[feature][slice_key]`` -> rates; plus join counters."""
        return {"features": self.latest.get(model, {}), **self.counters, "held": len(self.held),
                "held_bytes": self.held_bytes, "retained_bytes": self.served[model].nbytes if model in self.served else 0,
                "retained": self.served[model].size if model in self.served else 0}

    def to_state(self) -> dict[str, Any]:
        return {"served": {k: s.state() for k, s in self.served.items()},
                "windows": {k: [w.to_state() for w in ws.values()] for k, ws in self.windows.items()},
                "held": {k: [ts, _scalars(f), m] for k, (ts, f, m) in self.held.items()},
                "counters": dict(self.counters), "latest": self.latest, "now": self.now, "enabled": self.enabled,
                "open_from": self.open_from}

    def load_state(self, st: dict[str, Any]) -> None:
        check(isinstance(st, dict) and isinstance(st.get("served"), dict) and isinstance(st.get("windows"), dict)
              and isinstance(st.get("held"), dict) and isinstance(st.get("latest"), dict), "parity state")
        served: dict[str, _Served] = {}
        windows: dict[str, dict[float, _Win]] = {}
        for name, ss in st["served"].items():
            ms = self.engine.models.get(name)
            if ms is None:
                continue
            s = served[name] = _Served(ms.layout, self.retain_max, self._served_budget(len(st["served"])))
            s.load(ss)
            rows, nf = ms.layout.n_rows, s.fn + s.fc
            check(isinstance(st["windows"].get(name, []), list), "parity windows")
            windows[name] = {w.start: w for w in (_Win.from_state(x, rows, nf) for x in st["windows"].get(name, []))}
        held: dict[str, tuple[float, dict[str, Any], str | None]] = {}
        for k, v in st["held"].items():
            check(isinstance(v, list) and len(v) == 3 and isinstance(v[1], dict) and (v[2] is None or isinstance(v[2], str)),
                  "held offline feature event")
            held[str(k)] = (float(v[0]), v[1], v[2])
        while len(held) > MAX_HELD:
            del held[next(iter(held))]
        self.served, self.windows, self.held = served, windows, held
        self.counters = {k: int(st["counters"].get(k, 0)) for k in self.counters}
        self.latest, self.now, self.enabled = st["latest"], float(st["now"]), bool(st["enabled"])
        self.held_cost = {k: held_cost(k, _json_size(v[1])) for k, v in self.held.items()}
        self.held_bytes = sum(self.held_cost.values())
        self.open_from = float(st.get("open_from", -math.inf))


def _scalars(feats: dict[str, Any]) -> dict[str, Any]:
    """A held offline event's features as plain scalars: a nested value compares like a missing one."""
    return {str(k): v if v is None or isinstance(v, bool | int | float | str) else None for k, v in feats.items()}


class _PView:
    def __init__(self, rows: np.ndarray, comp: np.ndarray, events: np.ndarray) -> None:
        self.rows, self.comp, self.events = rows, comp, events


def _num(x: Any) -> float | None:
    x = float(x)
    return None if x != x or math.isinf(x) else round(x, 6)


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


def _key(sl: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(sl.items()))
