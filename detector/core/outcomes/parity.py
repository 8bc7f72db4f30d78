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
:data:`~detector.core.outcomes.parity_compare.MAX_EXAMPLES` served-vs-offline value examples (no payloads).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detector.core.checks.result import Result
from detector.core.decisions.alerts import PARITY_KINDS, Alert, slice_key
from detector.core.decisions.select import PseudoRows, select_findings
from detector.core.inputs.events import FeatureBatch, PredictionBatch
from detector.core.inputs.timeparse import format_ts
from detector.core.outcomes.cohort import fold
from detector.core.outcomes.parity_compare import (
    FIELDS,
    MAX_EXAMPLES,
    ParityWindow,
    ServedFeatures,
    compare,
    held_cost,
    json_size,
    scalars,
)
from detector.core.state.codec import check
from detector.core.stats import distributions as stats
from detector.core.stats.effects import rnd

__all__ = ["ParityMonitor", "RETAIN_SECONDS", "RETAIN_MAX", "OFFLINE_HOLD", "MAX_HELD", "MISMATCH_WARNING",
           "MISMATCH_CRITICAL"]

RETAIN_SECONDS = 7200.0
RETAIN_MAX = 200_000
OFFLINE_HOLD = 600.0
MAX_HELD = 20_000
MISMATCH_WARNING, MISMATCH_CRITICAL = 0.01, 0.1
MAX_CARRY = 86400.0  # a window with too few joined pairs is judged together with the next ones, up to a day


class ParityMonitor:
    """Served-vs-offline feature comparison for every model of an engine."""

    def __init__(self, engine: Any, retain_seconds: float = RETAIN_SECONDS, retain_max: int = RETAIN_MAX) -> None:
        self.engine = engine
        self.retain_seconds, self.retain_max = retain_seconds, retain_max
        self.served: dict[str, ServedFeatures] = {}
        self.windows: dict[str, dict[float, ParityWindow]] = {}
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
            s = self.served[ms.name] = ServedFeatures(ms.layout, self.retain_max, self._served_budget(len(self.served) + 1))
            self.windows[ms.name] = {}
            for other in self.served.values():  # every model's share shrinks with a new one
                other.max_bytes = s.max_bytes
        s.put_batch(b, codes.astype(np.int16))
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
            slots = s.slots(ids)
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
            cost = held_cost(ids[i], int(nbytes[i]) if nbytes is not None else json_size(feats[i]))
            self.held_cost[ids[i]] = cost
            self.held_bytes += cost
            while self.held and (len(self.held) > MAX_HELD or self.held_bytes > self.max_bytes // 4):
                old = next(iter(self.held))
                del self.held[old]
                self.held_bytes -= self.held_cost.pop(old, 0)
                self.counters["unjoined"] += 1

    def _compare(self, name: str, s: ServedFeatures, sl: np.ndarray, ids: list[str], feats: list[dict[str, Any]],
                 t: np.ndarray) -> None:
        """Compare joined pairs; each counts in the window of its join's event time ``t`` (the later
        of the prediction and the offline event), or the first open window if that one closed."""
        lay = s.layout
        c = compare(s, sl, feats)
        W = self.engine.settings.window
        starts = np.maximum(np.floor(t / W) * W, self.open_from)
        wins = self.windows[name]
        nf = s.fn + s.fc
        mism = c.cols[1] > 0
        for start in np.unique(starts).tolist():
            sel = np.flatnonzero(starts == start)
            w = wins.get(start)
            if w is None:
                w = wins[start] = ParityWindow(start, start + W, lay.n_rows, nf)
            for f, col in enumerate(c.cols):
                w.acc[f] += fold(c.ridx[sel], lay.n_rows, nf, None, col[sel])
            w.pairs += sel.size
            for j in np.flatnonzero(mism[sel].any(axis=0)).tolist():
                ex = w.examples[j]
                if len(ex) >= MAX_EXAMPLES:
                    continue
                for i in sel[np.flatnonzero(mism[sel, j])][: MAX_EXAMPLES - len(ex)].tolist():
                    ex.append((tuple(c.ridx[i].tolist()), c.example(lay, i, j, ids[i])))

    def advance(self, watermark: float) -> list[Alert]:
        out: list[Alert] = []
        for s in self.served.values():
            s.expire(max(watermark, self.now) - self.retain_seconds)
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
                        nxt = wins[w.end] = ParityWindow(w.end, w.end + W, w.acc.shape[1], w.acc.shape[2])
                    nxt.absorb(w)
                    continue
                out.extend(self._evaluate(name, w))
        return out

    def _evaluate(self, name: str, w: ParityWindow) -> list[Alert]:
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
            n, x, one, both, rel = (A[f, :, j] for f in range(len(FIELDS)))
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
                    "current": {"compared": int(n[i]), "mismatches": int(x[i]), "mismatch_rate": rnd(rate[i], 6),
                                "missing_one_side": rnd(one_share[i], 6), "mean_relative_difference": rnd(mrel[i], 6)},
                    "examples": [e for rr, e in w.examples[j] if int(rows[i]) in rr][:MAX_EXAMPLES]},
                lambda i, feat=feat, rate=rate, one_share=one_share: (
                    f"{feat} differs between serving and the offline pipeline in {rate[i]:.1%} of joined predictions"
                    + (f" ({one_share[i]:.1%} missing on one side only)" if one_share[i] > 0 else "")
                    + ": training/serving skew in the feature pipeline")))
        findings = select_findings(results, PseudoRows(rows, comp, A[0].max(axis=1)), st.fdr_q)
        evaluated = {slice_key(lay.row_label(int(r))) for r in real.tolist() if acc[0, r].max() >= st.min_count_rate}
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
                per[slice_key(lay.row_label(r))] = {"compared": int(n), "mismatch_rate": rnd(x / n, 6), "missing_one_side": rnd(one / n, 6),
                                               "mean_relative_difference": rnd(rel / both, 6) if both else None}
            out[feat] = per
        return out

    def stats(self, model: str) -> dict[str, Any]:
        """Latest evaluated window: ``features[feature][slice_key]`` -> rates; plus join counters."""
        return {"features": self.latest.get(model, {}), **self.counters, "held": len(self.held),
                "held_bytes": self.held_bytes, "retained_bytes": self.served[model].nbytes if model in self.served else 0,
                "retained": self.served[model].size if model in self.served else 0}

    def to_state(self) -> dict[str, Any]:
        return {"served": {k: s.to_state() for k, s in self.served.items()},
                "windows": {k: [w.to_state() for w in ws.values()] for k, ws in self.windows.items()},
                "held": {k: [ts, scalars(f), m] for k, (ts, f, m) in self.held.items()},
                "counters": dict(self.counters), "latest": self.latest, "now": self.now, "enabled": self.enabled,
                "open_from": self.open_from}

    def load_state(self, st: dict[str, Any]) -> None:
        check(isinstance(st, dict) and isinstance(st.get("served"), dict) and isinstance(st.get("windows"), dict)
              and isinstance(st.get("held"), dict) and isinstance(st.get("latest"), dict), "parity state")
        served: dict[str, ServedFeatures] = {}
        windows: dict[str, dict[float, ParityWindow]] = {}
        for name, ss in st["served"].items():
            ms = self.engine.models.get(name)
            if ms is None:
                continue
            s = served[name] = ServedFeatures(ms.layout, self.retain_max, self._served_budget(len(st["served"])))
            s.load(ss)
            rows, nf = ms.layout.n_rows, s.fn + s.fc
            check(isinstance(st["windows"].get(name, []), list), "parity windows")
            windows[name] = {w.start: w for w in (ParityWindow.from_state(x, rows, nf) for x in st["windows"].get(name, []))}
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
        self.held_cost = {k: held_cost(k, json_size(v[1])) for k, v in self.held.items()}
        self.held_bytes = sum(self.held_cost.values())
        self.open_from = float(st.get("open_from", -math.inf))
