"""Counterexample library: the worst recent false positives and false negatives, with context.

The domain brief: "pull the top false positives and top false negatives, and review them with
domain experts ... Create a counterexample library: each time the model fails in a meaningful
way, capture that case with context, label, decision and why it failed."

A :class:`CounterexampleLibrary` is an outcome listener (:mod:`detector.core.outcomes.monitor`). For every
matured cohort it emits, per model x slice row (all traffic and each slice value) x error type,
the :data:`TOP_K` labelled errors furthest from the decision threshold:

* a **false positive** acted on a prediction whose label is 0; its margin is ``score - threshold``
  (a confident false alarm ranks first);
* a **false negative** did not act on a prediction whose label is 1; margin ``threshold - score``
  (a confident miss ranks first).

Which pairs count follows the outcome cohorts exactly (first labels while the cohort collects,
corrections move a pair: one that stops being an error leaves the list), so the ranking is
exact: it is computed from the label join's own records (score, decision, slice, label) of every
labelled prediction. Ties rank by prediction id.

Each record carries the served features (the :data:`MAX_FEATURES` most predictive ones by the
training audit, see :mod:`detector.core.reference.audit`, else the reference order), the label, score,
threshold, decision, human override, slice values, model version, and the alerts that were
firing when the prediction was made and when its cohort matured. Served features come from a
bounded ring of recent predictions (:data:`RETAIN_MAX` rows per model, at most the label TTL);
an error whose prediction already left the ring is still ranked and emitted, with
``"features": null`` and ``"features_retained": false``.

Memory: the ring holds about ``8 x numeric + 4 x categorical + ~250`` bytes per prediction
(~50 MB at 25 features and the default bound); per open cohort at most ``rows x 2 x 2 x TOP_K``
candidates (a record is dropped as soon as no list holds it). The ring is not snapshotted (a restart loses the served features of the
predictions before it, never the ranking); candidates and emitted records are.

Records go out through :meth:`CounterexampleLibrary.drain` (``skewwatch replay
--counterexamples-out``, the sidecar's ``skewwatch-counterexamples`` topic); the last
:data:`KEEP_COHORTS` cohorts per model stay available for the report (:func:`counterexamples_for`).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Any

import numpy as np

from detector.core.outcomes.ring import Column, Ring
from detector.core.stats.effects import rnd

__all__ = ["CounterexampleLibrary", "counterexamples_for", "library_of", "TOP_K", "MAX_FEATURES", "RETAIN_MAX",
           "KEEP_COHORTS"]

TOP_K = 10
MAX_FEATURES = 30
RETAIN_MAX = 100_000
KEEP_COHORTS = 6
MAX_ALERTS = 10
_TYPES = ("false_positive", "false_negative")


class _Ring(Ring):
    """Served features of one model's recent predictions in the shared ring of served predictions
    (:mod:`detector.core.outcomes.ring`), bounded to ``retain_max`` rows."""

    def __init__(self, layout: Any, retain_max: int) -> None:
        self.layout = layout
        self.fn, self.fc = len(layout.numeric), len(layout.categorical)
        cols = {"ts": Column(np.float64), "num": Column(np.float64, self.fn), "cat": Column(np.int32, self.fc),
                "thr": Column(np.float64, fill=np.nan),
                # per row, as columns (no Python object per event): unseen {j: text} or None, the
                # override or None, and the batch's (model version, alerts) - one tuple shared by its rows
                "unseen": Column(object, fill=None), "override": Column(object, fill=None),
                "served": Column(object, fill=None)}
        super().__init__(cols, retain_max, 4096)

    def put_batch(self, b: Any, alerts: tuple[Any, ...]) -> None:
        n = b.n
        if n == 0:
            return
        version = max(b.versions.items(), key=lambda kv: kv[1])[0] if len(b.versions) == 1 else None
        served = np.empty(n, dtype=object)
        served.fill((version, alerts))
        cols = {"ts": b.ts, "num": b.num, "cat": b.cat_codes, "thr": b.threshold, "served": served}
        unseen = _unseen_rows(self.layout, b)
        if unseen:
            col = cols["unseen"] = np.full(n, None, dtype=object)
            for i, v in unseen.items():
                col[i] = v
        if b.override is not None:
            cols["override"] = _objects(b.override)
        self.put(b.ids, cols)

    def get(self, pid: str) -> int | None:
        return self.index.get(pid)


def _objects(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _unseen_rows(layout: Any, b: Any) -> dict[int, dict[int, str]]:
    """Event index -> {categorical feature index: unseen text} (when the batch's lists line up)."""
    out: dict[int, dict[int, str]] = {}
    for j, name in enumerate(layout.categorical):
        code = len(layout.cat_vocab[name])
        rows = np.flatnonzero(b.cat_codes[:, j] == code)
        vals = b.unseen[j] if j < len(b.unseen) else []
        if rows.size and len(vals) == rows.size:
            for r, v in zip(rows.tolist(), vals, strict=True):
                out.setdefault(r, {})[j] = v
    return out


class CounterexampleLibrary:
    """Outcome listener: worst false positives / negatives per model x slice x type and cohort."""

    def __init__(self, mon: Any, top_k: int = TOP_K, max_features: int = MAX_FEATURES,
                 retain_max: int = RETAIN_MAX) -> None:
        self.mon = mon
        self.top_k = top_k
        self.keep = 2 * top_k
        self.max_features = max_features
        self.retain_max = retain_max
        self.rings: dict[str, _Ring] = {}
        self.order: dict[str, list[int]] = {}  # model -> feature order (indices into numeric + categorical)
        # (model, cohort start) -> {(row, type): min-heap of _Item (the worst kept on top)}; id -> record
        self.cands: dict[tuple[str, float], dict[tuple[int, int], list[_Item]]] = {}
        self.records: dict[tuple[str, float], dict[str, dict[str, Any]]] = {}
        self.pending: list[dict[str, Any]] = []
        self.latest: dict[str, deque[list[dict[str, Any]]]] = {}

    # ---------------------------------------------------------------- listener protocol
    def on_predictions(self, m: Any, b: Any, stored: np.ndarray, codes: np.ndarray) -> None:
        ring = self.rings.get(m.name)
        if ring is None:
            ring = self.rings[m.name] = _Ring(m.layout, self.retain_max)
            self.order[m.name] = _feature_order(m.layout)
        ring.put_batch(b, _alerts_now(self.mon.engine, m.name))
        if b.n:
            ring.expire(float(b.ts.max()) - self.mon.settings.ttl)

    def on_matches(self, mt: Any) -> None:
        rows = mt.rows
        if mt.slots.size == 0 or not mt.ids:
            return
        mon = self.mon
        L = mon.L
        first = mt.first
        pred, y = rows.pred.astype(np.int64), mt.label.astype(np.int64)
        typ = np.where((pred == 1) & (y == 0), 0, np.where((pred == 0) & (y == 1), 1, -1))
        margin = np.zeros(len(typ))
        for mi in np.unique(rows.model).tolist():  # other tasks rank their own errors (task.rank_errors)
            m = mon.by_idx[mi]
            if not m.binary:
                k = np.flatnonzero(rows.model == mi)
                rk = m.task.rank_errors(rows.score[k], rows.pred[k].astype(np.int64), mt.label[k], np.full(k.size, np.nan))
                typ[k], margin[k] = rk.kind, rk.margin
        # first labels that are errors, and every correction of a counted pair (it may leave or join)
        touch = (first & (typ >= 0)) | (~first & (rows.counted >= 1))  # in its cohort, or held / late
        if not touch.any():
            return
        starts = np.floor(rows.ts / L) * L
        for mi in np.unique(rows.model[touch]).tolist():
            m = mon.by_idx[mi]
            open_ = np.fromiter(m.open, dtype=np.float64, count=len(m.open))
            sel = np.flatnonzero(touch & (rows.model == mi) & np.isin(starts, open_))
            if sel.size == 0:
                continue  # evaluated cohorts are frozen, as in the outcome cohorts
            D = len(m.layout.dims)
            ridx = m.ridx(rows.codes[sel, :D])
            for k, i in enumerate(sel.tolist()):
                key = (m.name, float(starts[i]))
                pid = mt.ids[i]
                recs = self.records.setdefault(key, {})
                held = recs.get(pid)
                if typ[i] < 0 or held is not None:  # a correction: the pair became right (or wrong again)
                    if held is not None:
                        held["_removed"] = bool(typ[i] < 0)
                    if typ[i] < 0:
                        continue
                if held is not None:
                    continue
                rec = self._record(m, pid, rows, i, int(y[i]), int(typ[i]), ridx[k]) if m.binary else \
                    self._task_record(m, pid, rows, i, float(mt.label[i]), int(typ[i]), float(margin[i]), ridx[k])
                lists = self.cands.setdefault(key, {})
                item = _Item(rec["margin"], pid)
                placed = 0
                for r in ridx[k].tolist():
                    h = lists.setdefault((int(r), int(typ[i])), [])
                    if len(h) < self.keep:
                        heapq.heappush(h, item)
                    elif h[0] < item:
                        self._deref(recs, heapq.heapreplace(h, item).pid)
                    else:
                        continue
                    placed += 1
                if placed:  # only candidates some list holds are kept: bounded by the lists
                    rec["_refs"], rec["_removed"] = placed, False
                    recs[pid] = rec

    def on_cohort(self, m: Any, c: Any, base: Any, real: np.ndarray, mat: float, window: dict[str, Any]) -> None:
        key = (m.name, c.start)
        lists = self.cands.pop(key, {})
        recs = self.records.pop(key, {})
        for k in [k for k in self.cands if k[0] == m.name and k[1] < c.start]:
            del self.cands[k]
            self.records.pop(k, None)
        now = _alerts_now(self.mon.engine, m.name)
        win = {k: v for k, v in window.items() if not k.startswith("_")}
        out: list[dict[str, Any]] = []
        for (r, _typ), h in sorted(lists.items()):
            best = [it.pid for it in sorted(h, reverse=True) if it.pid in recs and not recs[it.pid]["_removed"]]
            for rank, pid in enumerate(best[: self.top_k], 1):
                rec = {k: v for k, v in recs[pid].items() if not k.startswith("_")}
                rec.update(slice=m.layout.row_label(r), rank=rank, cohort=win, alerts_at_evaluation=list(now))
                out.append(rec)
        if out:
            self.pending.extend(out)
            self.latest.setdefault(m.name, deque(maxlen=KEEP_COHORTS)).append(out)

    # ---------------------------------------------------------------- output
    def drain(self) -> list[dict[str, Any]]:
        """Records emitted since the last call (each a JSON-ready dict)."""
        out, self.pending = self.pending, []
        return out

    def recent(self, model: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The records of the last matured cohorts of ``model``, newest cohort first."""
        recs = [r for batch in reversed(self.latest.get(model, ())) for r in batch]
        return recs if limit is None else recs[:limit]

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _deref(recs: dict[str, dict[str, Any]], pid: str) -> None:
        """A list dropped ``pid``; forget its record once no list holds it."""
        rec = recs.get(pid)
        if rec is not None:
            rec["_refs"] -= 1
            if rec["_refs"] <= 0:
                del recs[pid]

    def _task_record(self, m: Any, pid: str, rows: Any, i: int, y: float, typ: int, margin: float,
                     ridx: np.ndarray) -> dict[str, Any]:
        """A multiclass / regression model's record: its output and label as the task names them."""
        rec = self._record(m, pid, rows, i, 0, 0, ridx)
        for k in ("score", "threshold", "decision"):
            rec.pop(k, None)
        classes = getattr(m.task, "classes", None)
        if classes is not None:
            rec.update(predicted_class=classes[int(rows.pred[i])] if 0 <= int(rows.pred[i]) < len(classes) else None,
                       confidence=rnd(float(rows.score[i]), 6), label=classes[int(y)] if 0 <= y < len(classes) else None)
        else:
            rec.update(prediction=rnd(float(rows.score[i]), 6), label=rnd(y, 6))
        rec.update(type=m.task.error_types[typ], margin=round(margin, 6))
        return rec

    def _record(self, m: Any, pid: str, rows: Any, i: int, y: int, typ: int, ridx: np.ndarray) -> dict[str, Any]:
        score = float(rows.score[i])
        ring = self.rings.get(m.name)
        slot = ring.get(pid) if ring is not None else None
        thr = float(ring.thr[slot]) if slot is not None else math.nan
        if not math.isfinite(thr):
            thr = float(self.mon.settings.default_threshold)
        margin = (score - thr if typ == 0 else thr - score) if math.isfinite(score) else 0.0
        lay = m.layout
        slices = {}
        for d, dim in enumerate(lay.dims):
            slices[dim] = lay.vocabs[d].label(int(ridx[d + 1]) - lay.row_offset(d))
        rec: dict[str, Any] = {
            "model": m.name, "prediction_id": pid, "type": _TYPES[typ], "ts": _iso(float(rows.ts[i])),
            "score": rnd(score, 6), "threshold": rnd(thr, 6), "margin": round(float(margin), 6),
            "decision": "act" if int(rows.pred[i]) == 1 else "no_action", "label": y, "slices": slices,
            "features": None, "features_retained": False, "override": None, "model_version": None, "active_alerts": [],
        }
        if slot is not None and ring is not None:
            unseen, override, (version, alerts) = ring.unseen[slot], ring.override[slot], ring.served[slot]
            rec.update(features=_features(lay, ring, slot, unseen, self.order[m.name][: self.max_features]),
                       features_retained=True, override=override, model_version=version, active_alerts=list(alerts))
        return rec

    def to_state(self) -> dict[str, Any]:
        """Candidates, their records, unsent and recent records (the served-feature rings are not state)."""
        return {"cands": [[m, s, [[r, t, [[it.margin, it.pid] for it in h]] for (r, t), h in lists.items()]]
                          for (m, s), lists in self.cands.items()],
                "records": [[m, s, recs] for (m, s), recs in self.records.items()],
                "pending": list(self.pending), "latest": {k: list(v) for k, v in self.latest.items()}}

    def load_state(self, st: dict[str, Any]) -> None:
        from detector.core.state.codec import check

        check(isinstance(st, dict) and isinstance(st.get("cands"), list) and isinstance(st.get("records"), list)
              and isinstance(st.get("pending"), list) and isinstance(st.get("latest"), dict), "counterexample state")
        cands: dict[tuple[str, float], dict[tuple[int, int], list[_Item]]] = {}
        for m, s, lists in st["cands"]:
            check(isinstance(lists, list), "counterexample candidate lists")
            key = (str(m), float(s))
            cands[key] = {}
            for r, t, items in lists:
                h = [_Item(float(mg), str(pid)) for mg, pid in items][: self.keep]
                heapq.heapify(h)
                cands[key][(int(r), int(t))] = h
        records: dict[tuple[str, float], dict[str, dict[str, Any]]] = {}
        for m, s, recs in st["records"]:
            check(isinstance(recs, dict) and all(isinstance(v, dict) for v in recs.values()), "counterexample records")
            records[(str(m), float(s))] = recs
        self.cands, self.records = cands, records
        self.pending = [r for r in st["pending"] if isinstance(r, dict)]
        self.latest = {str(k): deque([b for b in v if isinstance(b, list)], maxlen=KEEP_COHORTS)
                       for k, v in st["latest"].items() if isinstance(v, list)}


class _Item:
    """A ranked candidate: a larger margin is worse (ranks first); on equal margins the smaller id."""

    __slots__ = ("margin", "pid")

    def __init__(self, margin: float, pid: str) -> None:
        self.margin, self.pid = margin, pid

    def __lt__(self, other: _Item) -> bool:  # "ranks below"
        return (self.margin, other.pid) < (other.margin, self.pid)


def _feature_order(lay: Any) -> list[int]:
    """Feature indices (numeric, then categorical) by training-audit predictiveness, then reference order."""
    names = [*lay.numeric, *lay.categorical]
    audit = (lay.ref.audit or {}).get("features", {}) if isinstance(lay.ref.audit, dict) else {}

    def power(i: int) -> float:
        a = (audit.get(names[i]) or {}).get("auc")
        return abs(float(a) - 0.5) if isinstance(a, int | float) else -1.0

    return sorted(range(len(names)), key=lambda i: (-power(i), i))


def _features(lay: Any, ring: _Ring, slot: int, unseen: dict[int, str] | None, idx: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fn = len(lay.numeric)
    for i in idx:
        if i < fn:
            x = float(ring.num[slot, i])
            out[lay.numeric[i]] = x if math.isfinite(x) else None
        else:
            j = i - fn
            name = lay.categorical[j]
            code = int(ring.cat[slot, j])
            vocab = lay.cat_vocab[name]
            if code < len(vocab):
                out[name] = _cat_text(lay, name, code)
            elif code == len(vocab):
                out[name] = (unseen or {}).get(j, "__unseen__")
            else:
                out[name] = None
    return out


def _cat_text(lay: Any, name: str, code: int) -> str:
    cache = lay.__dict__.setdefault("_cx_inv", {})
    inv = cache.get(name)
    if inv is None:
        inv = cache[name] = {v: k for k, v in lay.cat_vocab[name].items()}
    return inv[code]


def _alerts_now(engine: Any, model: str) -> tuple[dict[str, Any], ...]:
    try:
        firing = engine.alerts.firing(model)
    except Exception:  # noqa: BLE001 - an engine without alert state
        return ()
    return tuple({"alert_id": a.get("alert_id"), "kind": a.get("kind"), "feature": a.get("feature"),
                  "slice": a.get("slice"), "severity": a.get("severity"), "cause": a.get("cause")}
                 for a in firing[:MAX_ALERTS])


def _iso(t: float) -> str:
    from detector.core.inputs.timeparse import format_ts

    return format_ts(t)


def library_of(engine: Any) -> CounterexampleLibrary | None:
    """The engine's counterexample library (installed by :func:`detector.core.outcomes.monitor.attach_outcomes`)."""
    for lis in getattr(getattr(engine, "outcomes", None), "listeners", ()):
        if isinstance(lis, CounterexampleLibrary):
            return lis
    return None


def counterexamples_for(engine: Any, model: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Recent counterexample records of ``model`` (newest cohort first) for the report."""
    lib = library_of(engine)
    return lib.recent(model, limit) if lib is not None else []
