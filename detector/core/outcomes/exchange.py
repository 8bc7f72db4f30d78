"""Outcome and parity state that merges across workers, like window counts do.

In the sidecar every input partition has its own engine (its *unit*): it folds its predictions into
windows, holds its predictions for their labels (predictions, labels and offline features are
co-partitioned by ``prediction_id``, so a label meets its prediction in the same unit) and joins
offline features to served ones. What the outcome and parity checks need from those joins is
additive, so a unit hands it on in steps of event time, and one *aggregator* sums the steps of every
unit and evaluates - exactly as it does with window partials:

* :class:`OutcomeGate` (unit side) is the engine's outcome hook. Predictions go to the unit's
  :class:`~detector.core.outcomes.monitor.OutcomeMonitor` at once; label and offline-feature events wait
  until the unit's watermark passes the end of the window their own timestamp falls in, and are
  then released in timestamp order. Which step a label lands in therefore depends on its
  timestamp, not on how the labels topic happened to interleave with the predictions topic.
* :func:`take_outcome_step` (unit side) empties, at a window boundary ``T``, everything the unit's
  monitor collected since the last step: per prediction cohort the added counts (predictions,
  pairs, corrections as -old/+new), label-delay and arrival histograms, join and parity counters,
  rules-baseline confusion counts, counterexample candidates, and the parity windows (of join
  time) that ended at or before ``T``. A unit keeps a cohort open until the label TTL has passed
  over it (no prediction of it can be joined after that).
* :func:`apply_outcome_step` (aggregator side) re-keys the rows onto the aggregator's slice
  vocabularies and adds them to its own monitor, which evaluates matured cohorts and parity
  windows as usual when the aggregator advances. A step for a cohort the aggregator has already
  evaluated adds only its first labels to that cohort's ``late`` count: evaluated cohorts are
  frozen (a correction that arrives later does not change them either).

The aggregator applies the steps of boundary ``T`` from every unit before it advances to ``T``, so
what a cohort holds when it is evaluated does not depend on the order in which units report.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import fields, replace
from typing import Any, TypeVar

import numpy as np

from detector.core.errors import EngineError
from detector.core.inputs.events import FeatureBatch, LabelBatch, PredictionBatch
from detector.core.outcomes.cohort import LATE_AGES, C, Cohort
from detector.core.outcomes.parity_compare import scalars
from detector.core.state.codec import check

__all__ = ["OutcomeGate", "CorrectionTap", "take_outcome_step", "apply_outcome_step", "MAX_HELD_EVENTS"]

MAX_HELD_EVENTS = 1_000_000  # label + feature events waiting for their step; beyond it the oldest go at once
_JOIN = ("matched", "duplicates", "corrections", "expired", "evicted", "orphans", "rejected")
_PARITY = ("joined", "unjoined", "duplicates")
_B = TypeVar("_B", LabelBatch, FeatureBatch)


class OutcomeGate:
    """The unit engine's outcome hook: predictions now, labels and offline features by their event time."""

    def __init__(self, monitor: Any) -> None:
        self.monitor = monitor
        self.labels: list[LabelBatch] = []
        self.features: list[FeatureBatch] = []
        self.held = 0
        self.sent_join = dict.fromkeys(_JOIN, 0)  # join counters already handed on
        self.sent_parity = dict.fromkeys(_PARITY, 0)
        self.ceiling = math.inf  # events dated after this (wall clock + max_future) go at once
        self.newest = -math.inf  # newest event time handed in (at most the ceiling), for the unit's marks

    def __getattr__(self, name: str) -> Any:  # everything else reads the monitor (stats, join, listeners...)
        if name == "monitor":
            raise AttributeError(name)
        return getattr(self.monitor, name)

    # ------------------------------------------------------------------ the engine's hooks
    def on_predictions(self, ms: Any, b: PredictionBatch, row_codes: list[np.ndarray] | None = None) -> None:
        self.monitor.on_predictions(ms, b, row_codes)

    def on_labels(self, batch: LabelBatch) -> None:
        self._mark(batch.ts)
        now = batch.ts > self.ceiling  # a clock far ahead cannot hold its label back for ever
        if now.any():
            self.monitor.on_labels(_take(batch, np.flatnonzero(now)))
            batch = _take(batch, np.flatnonzero(~now))
        if batch.n:
            self.labels.append(batch)
            self.held += batch.n
            self._bound()

    def on_features(self, batch: FeatureBatch) -> None:
        self._mark(batch.ts)
        self.monitor.parity.enabled = True  # retain served features from now on (they are joined at release)
        now = batch.ts > self.ceiling
        if now.any():
            self._features(_take(batch, np.flatnonzero(now)), None)
            batch = _take(batch, np.flatnonzero(~now))
        if batch.n:
            self.features.append(batch)
            self.held += batch.n
            self._bound()

    def _mark(self, ts: np.ndarray) -> None:
        ok = ts[ts <= self.ceiling]
        if ok.size:
            self.newest = max(self.newest, float(ok.max()))

    def _bound(self) -> None:
        while self.held > MAX_HELD_EVENTS and (self.labels or self.features):
            older = self.labels if (self.labels and (not self.features or self.labels[0].ts.min()
                                                     <= self.features[0].ts.min())) else self.features
            b = older.pop(0)
            self.held -= b.n
            if isinstance(b, LabelBatch):
                self.monitor.on_labels(b)
            else:
                self._features(b, None)

    # ------------------------------------------------------------------ release
    def release(self, boundary: float, window: float) -> None:
        """Hand on every held event dated before ``boundary``, window by window in time order."""
        labs = _concat(self.labels)
        feats = _concat(self.features)
        self.labels = []
        self.features = []
        self.held = 0
        if feats is not None:
            go = feats.ts < boundary
            for start in np.unique(np.floor(feats.ts[go] / window) * window).tolist():
                idx = np.flatnonzero(go & (np.floor(feats.ts / window) * window == start))
                self._features(_take(feats, idx), start + window)
            if not go.all():
                self.features = [_take(feats, np.flatnonzero(~go))]
                self.held += self.features[0].n
        if labs is not None:
            go = labs.ts < boundary
            order = np.flatnonzero(go)[np.argsort(labs.ts[go], kind="stable")]
            if order.size:
                self.monitor.on_labels(_take(labs, order))
            if not go.all():
                self.labels = [_take(labs, np.flatnonzero(~go))]
                self.held += self.labels[0].n

    def _features(self, b: FeatureBatch, end: float | None) -> None:
        """Join offline features; ``end``: the step they belong to (their join time is just before it)."""
        par = self.monitor.parity
        if end is None:
            par.on_features(b, self.monitor.now)
            return
        saved = par.now
        par.now = float(np.nextafter(end, -math.inf))  # join time = the end of the step, whatever arrived since
        try:
            par.on_features(b, par.now)
        finally:
            par.now = max(saved, par.now) if math.isfinite(saved) else par.now

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        labs = _concat(self.labels)
        feats = _concat(self.features)
        return {"monitor": self.monitor.to_state(), "sent_join": dict(self.sent_join), "sent_parity": dict(self.sent_parity),
                "labels": None if labs is None else {"ids": labs.ids, "ts": labs.ts, "label": labs.label,
                                                     "revision": labs.revision, "model": labs.model},
                "features": None if feats is None else {"ids": feats.ids, "ts": feats.ts, "model": feats.model,
                                                        "features": [scalars(f) for f in feats.features]}}

    def load_state(self, st: dict[str, Any]) -> None:
        check(isinstance(st, dict), "outcome gate state")
        labs = feats = None
        if st["labels"] is not None:
            s = st["labels"]
            n = len(s["ids"])
            check(all(isinstance(s[k], np.ndarray) and s[k].shape == (n,) for k in ("ts", "label", "revision"))
                  and isinstance(s["model"], list) and len(s["model"]) == n, "held labels")
            labs = LabelBatch([str(i) for i in s["ids"]], s["ts"].astype(np.float64), s["label"].astype(np.float64),
                              s["revision"].astype(np.int64), [None if m is None else str(m) for m in s["model"]])
        if st["features"] is not None:
            s = st["features"]
            n = len(s["ids"])
            check(isinstance(s["ts"], np.ndarray) and s["ts"].shape == (n,) and len(s["features"]) == n
                  and len(s["model"]) == n and all(isinstance(f, dict) for f in s["features"]), "held feature events")
            feats = FeatureBatch([str(i) for i in s["ids"]], s["ts"].astype(np.float64), list(s["features"]),
                                 [None if m is None else str(m) for m in s["model"]])
        self.monitor.load_state(st["monitor"])
        self.labels = [labs] if labs is not None else []
        self.features = [feats] if feats is not None else []
        self.held = (labs.n if labs is not None else 0) + (feats.n if feats is not None else 0)
        self.sent_join = {k: int(st["sent_join"].get(k, 0)) for k in _JOIN}
        self.sent_parity = {k: int(st["sent_parity"].get(k, 0)) for k in _PARITY}


class CorrectionTap:
    """Unit-side outcome listener: corrections that turn a counted error into a right prediction.

    The counterexample library of the unit forgets candidates once they are handed on; this tap
    remembers which of them a later correction made right, so the aggregator can drop them.
    """

    def __init__(self, mon: Any) -> None:
        self.mon = mon
        self.fixed: list[tuple[str, float, str]] = []  # (model, cohort start, prediction id)

    def on_predictions(self, m: Any, b: Any, stored: np.ndarray, codes: np.ndarray) -> None:
        pass

    def on_matches(self, mt: Any) -> None:
        rows = mt.rows
        if mt.slots.size == 0 or not mt.ids:
            return
        corr = ~mt.first & (rows.counted == 1)
        if not corr.any():
            return
        pred, y = rows.pred.astype(np.int64), mt.label.astype(np.int64)
        right = ~(((pred == 1) & (y == 0)) | ((pred == 0) & (y == 1)))
        L = self.mon.L
        for i in np.flatnonzero(corr & right).tolist():
            self.fixed.append((self.mon.by_idx[int(rows.model[i])].name, float(np.floor(rows.ts[i] / L) * L), mt.ids[i]))

    def on_cohort(self, *args: Any) -> None:
        pass

    def to_state(self) -> dict[str, Any]:
        return {"fixed": [list(f) for f in self.fixed]}

    def load_state(self, st: dict[str, Any]) -> None:
        self.fixed = [(str(m), float(s), str(p)) for m, s, p in st.get("fixed", [])]


# ---------------------------------------------------------------------------------------- unit side
def take_outcome_step(gate: OutcomeGate, engine: Any, boundary: float) -> dict[str, Any] | None:
    """Release held events up to ``boundary`` and take what the unit's monitor collected (see the module)."""
    mon = gate.monitor
    W = float(engine.settings.window)
    gate.release(boundary, W)
    mon.join.expire(boundary)
    lib, rules, tap = _listener(mon, "CounterexampleLibrary"), _listener(mon, "RulesBaseline"), _listener(mon, "CorrectionTap")
    par = mon.parity
    models: dict[str, Any] = {}
    for name, m in mon.models.items():
        ms = engine.models.get(name)
        if ms is None:
            continue
        cohorts = []
        for s in list(m.open):
            c = m.open[s]
            if c.cnt.any() or c.versions:
                st_c = c.to_state()
                for k in ("cnt", "rel", "hist", "delay"):
                    st_c[k] = st_c[k].copy()
                    getattr(c, k)[...] = 0.0
                cohorts.append(st_c)
                c.versions = {}
            if c.end + mon.settings.ttl < boundary:  # no prediction of it is held any more
                del m.open[s]
        st: dict[str, Any] = {
            "dims": list(ms.layout.dims), "vocab_values": [list(v.values) for v in ms.layout.vocabs], "cohorts": cohorts,
            "delay_all": m.delay_all.copy(), "delay_cls": m.delay_cls.copy(), "delay_total": m.delay_total.copy(),
            "delay_sum": m.delay_sum, "arrivals": m.arrivals.copy(), "first_ts": m.first_ts,
        }
        # first pairs the unit held for the label age: the aggregator chooses the age and gates them
        st["held"] = [{k: np.asarray(v) for k, v in b.items()} for b in mon.take_held(m)] if hasattr(mon, "take_held") else []
        m.delay_all[...] = 0.0
        m.delay_cls[...] = 0.0
        m.delay_total[...] = 0.0
        m.arrivals[...] = 0.0
        m.delay_sum = 0.0
        if rules is not None:
            st["rules"] = [[s, a.copy()] for (n, s), a in rules.open.items() if n == name and a.any()]
            for (n, s), a in list(rules.open.items()):
                if n == name:
                    a[...] = 0.0
                    if s not in m.open:
                        del rules.open[(n, s)]
        if lib is not None:
            st["candidates"] = _take_candidates(lib, name)
        wins = par.windows.get(name, {})
        st["parity"] = [wins.pop(s).to_state() for s in sorted(wins) if wins[s].end <= boundary]
        models[name] = st
    # evict served rows and expire held offline events relative to the step, not to the newest
    # prediction (which runs ahead while a backlog is read): the windows were taken above
    saved = par.now
    par.now = min(par.now, boundary)
    try:
        par.advance(boundary)
    finally:
        par.now = max(saved, par.now) if math.isfinite(saved) else par.now
    join = {k: mon.join.counters[k] - gate.sent_join[k] for k in _JOIN}
    gate.sent_join = dict(mon.join.counters)
    parity = {k: par.counters[k] - gate.sent_parity[k] for k in _PARITY}
    gate.sent_parity = dict(par.counters)
    fixed = []
    if tap is not None:
        fixed, tap.fixed = [list(f) for f in tap.fixed], []
    if not models and not any(join.values()) and not any(parity.values()) and not fixed:
        return None
    return {"models": models, "now": mon.now, "join": join, "parity": parity, "fixed": fixed}


def _take_candidates(lib: Any, name: str) -> list[Any]:
    out = []
    for key in [k for k in lib.cands if k[0] == name]:
        lists = lib.cands.pop(key)
        recs = lib.records.pop(key, {})
        entries = [[r, t, it.margin, it.pid] for (r, t), h in lists.items() for it in h if it.pid in recs]
        used = {e[3] for e in entries}
        out.append([key[1], entries, {p: r for p, r in recs.items() if p in used}])
    for key in [k for k in lib.records if k[0] == name]:
        del lib.records[key]
    return out


def _listener(mon: Any, cls: str) -> Any:
    return next((lis for lis in mon.listeners if type(lis).__name__ == cls), None)


# ---------------------------------------------------------------------------------------- aggregator side
def apply_outcome_step(engine: Any, step: dict[str, Any]) -> None:
    """Add a unit's step to the aggregator ``engine``'s outcome monitor (see the module docstring)."""
    from detector.core.state.partials import row_map_values

    mon = engine.outcomes
    check(isinstance(step, dict) and isinstance(step.get("models"), dict), "outcome step")
    lib, rules = _listener(mon, "CounterexampleLibrary"), _listener(mon, "RulesBaseline")
    for name, st in step["models"].items():
        ms = engine.models.get(name)
        if ms is None:
            # the aggregator learns models (and slice dimensions, when they are discovered) from its units
            ms = engine._model(name, [{"slices": dict.fromkeys(st["dims"])}])  # noqa: SLF001
            if ms is None:
                raise EngineError(f"outcome step for model {name!r}, which has no reference here")
            for voc, values in zip(ms.layout.vocabs, st["vocab_values"], strict=False):
                voc.codes(list(values))
        m = mon._model(ms)  # noqa: SLF001
        rmap = row_map_values(list(st["dims"]), [list(v) for v in st["vocab_values"]], ms.layout)
        R = ms.layout.n_rows
        done_upto = max(m.done) if m.done else -math.inf
        for cs in st["cohorts"]:
            c = Cohort.from_state(cs, len(rmap))
            if c.start in m.open:
                target = m.open[c.start]
            elif c.start in m.done or c.start <= done_upto:
                if c.start in m.done:  # first labels after evaluation: the production delay profile, as a unit counts it
                    d, row = m.done[c.start], c.cnt[0]
                    d.late += int(round(row[C["lab"]]))
                    d.late_pos += float(row[C["pos"]])
                    d.late_s += float(row[C["s"]])
                    d.late_sl += float(row[C["sl"]])
                    if d.horizon > 0:  # binned by when the aggregator learns of them (a unit's step is short)
                        k = int(np.searchsorted(LATE_AGES, (mon.now - d.end) / d.horizon, side="left"))
                        if k < len(LATE_AGES):
                            d.late_hist[k] += c.hist[0]
                continue
            else:
                target = m.open[c.start] = m.cohort(c.start, c.end)  # with the task's counters
            for k in ("cnt", "rel", "hist", "delay"):
                np.add.at(getattr(target, k), rmap, getattr(c, k))
            if c.tc is not None and target.tc is not None:  # a regression / multiclass model's outcome counters
                for k, a in c.tc.arrays.items():
                    check(k in target.tc.arrays and a.shape[1:] == target.tc.arrays[k].shape[1:], "cohort task counters")
                    np.add.at(target.tc.arrays[k], rmap, a)
            for v, n in c.versions.items():
                target.versions[v] = target.versions.get(v, 0) + n
        for b in st.get("held", []):
            check(isinstance(b, dict) and {"start", "ridx", "score", "pred", "y", "delay", "label_ts", "end"} <= set(b)
                  and all(isinstance(a, np.ndarray) and 1 <= a.ndim <= 2 and a.dtype.kind in "biuf" for a in b.values())
                  and len({len(a) for a in b.values()}) == 1, "held label pairs")
            ridx = b["ridx"].astype(np.int64)
            check(bool(((ridx >= 0) & (ridx < len(rmap))).all()), "held label pairs' rows")
            mon.add_held(m, {**{k: np.asarray(v) for k, v in b.items()}, "ridx": rmap[ridx], "slot": np.full(len(ridx), -1)})
        for k in ("delay_all", "arrivals"):
            np.add.at(getattr(m, k), rmap, _arr(st[k], (len(rmap), getattr(m, k).shape[1]), k))
        for k in ("delay_cls", "delay_total"):
            getattr(m, k)[...] += _arr(st[k], getattr(m, k).shape, k)
        m.delay_sum += float(st["delay_sum"])
        m.first_ts = min(m.first_ts, float(st["first_ts"]))
        if rules is not None:
            for s, a in st.get("rules", []):
                s = float(s)
                if s in m.open:
                    arr = rules.open.setdefault((name, s), np.zeros((R, a.shape[1])))
                    np.add.at(arr, rmap, _arr(a, (len(rmap), arr.shape[1]), "rules baseline"))
        if lib is not None:
            for s, entries, recs in st.get("candidates", []):
                if float(s) in m.open:
                    _merge_candidates(lib, (name, float(s)), entries, recs, rmap)
        _merge_parity(mon.parity, ms, st.get("parity", []), rmap)
    mon.now = max(mon.now, float(step["now"]))
    for k, v in step["join"].items():
        if k in mon.join.counters:
            mon.join.counters[k] += int(v)
    for k, v in step["parity"].items():
        if k in mon.parity.counters:
            mon.parity.counters[k] += int(v)
    if lib is not None:
        for model, s, pid in step.get("fixed", []):
            rec = lib.records.get((str(model), float(s)), {}).get(str(pid))
            if rec is not None:
                rec["_removed"] = True


def _arr(a: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    check(isinstance(a, np.ndarray) and a.shape == shape, f"{what} of shape {shape}")
    return a.astype(np.float64)


def _merge_candidates(lib: Any, key: tuple[str, float], entries: list[Any], recs: dict[str, Any], rmap: np.ndarray) -> None:
    from detector.core.outcomes.counterexamples import _Item

    records = lib.records.setdefault(key, {})
    lists = lib.cands.setdefault(key, {})
    for r, t, margin, pid in entries:
        pid = str(pid)
        rec = recs.get(pid)
        if rec is None:
            continue
        row = int(rmap[int(r)])
        h = lists.setdefault((row, int(t)), [])
        if any(it.pid == pid for it in h):  # handed on again after a correction: keep one entry
            if pid in records:
                records[pid].update({k: v for k, v in rec.items() if not k.startswith("_")}, _removed=False)
            continue
        item = _Item(float(margin), pid)
        if len(h) < lib.keep:
            heapq.heappush(h, item)
        elif h[0] < item:
            lib._deref(records, heapq.heapreplace(h, item).pid)  # noqa: SLF001
        else:
            continue
        held = records.get(pid)
        if held is None:
            records[pid] = {**rec, "_refs": 1, "_removed": False}
        else:
            held["_refs"] += 1
            held["_removed"] = False


def _merge_parity(par: Any, ms: Any, wins: list[Any], rmap: np.ndarray) -> None:
    from detector.core.outcomes.parity_compare import MAX_EXAMPLES, ParityWindow, ServedFeatures

    if not wins:
        return
    lay = ms.layout
    if ms.name not in par.served:  # the aggregator holds no served rows; the evaluation needs the layout
        par.served[ms.name] = ServedFeatures(lay, 1)
    nf = len(lay.numeric) + len(lay.categorical)
    mine = par.windows.setdefault(ms.name, {})
    for ws in wins:
        w = ParityWindow.from_state(ws, len(rmap), nf)
        cur = mine.get(w.start)
        if cur is None:
            cur = mine[w.start] = ParityWindow(w.start, w.end, lay.n_rows, nf)
        np.add.at(cur.acc, (slice(None), rmap), w.acc)
        cur.pairs += w.pairs
        for j, ex in enumerate(w.examples):
            for ridx, e in ex[: max(0, MAX_EXAMPLES - len(cur.examples[j]))]:
                cur.examples[j].append((tuple(int(rmap[r]) for r in ridx), e))


# ---------------------------------------------------------------------------------------- batch helpers
def _take(b: _B, idx: np.ndarray) -> _B:
    """Rows ``idx`` of a label or offline-feature batch (each field holds one value per row; an
    optional array that does not, such as absent sizes, stays empty)."""
    il = idx.tolist()

    def pick(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return v[idx] if len(v) == b.n else v[:0]
        return [v[i] for i in il]

    return replace(b, **{f.name: pick(getattr(b, f.name)) for f in fields(b)})


def _concat(bs: list[_B]) -> _B | None:
    """The rows of several label (or offline-feature) batches, in order, as one batch."""
    if not bs:
        return None
    if len(bs) == 1:
        return bs[0]

    def join(name: str) -> Any:
        vs = [getattr(b, name) for b in bs]
        return np.concatenate(vs) if isinstance(vs[0], np.ndarray) else [x for v in vs for x in v]

    return replace(bs[0], **{f.name: join(f.name) for f in fields(bs[0])})

