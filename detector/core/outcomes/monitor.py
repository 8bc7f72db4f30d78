"""Outcome monitoring: labels joined to predictions, evaluated per *matured* cohort.

:func:`attach_outcomes` installs an :class:`OutcomeMonitor` on an engine; the engine then calls
``on_predictions`` / ``on_labels`` / ``on_features`` as batches arrive and ``advance`` at the
end of each ``Engine.advance``. The monitor

1. holds predictions until their label arrives (:class:`~detector.core.outcomes.labels.LabelJoin`) and
   folds every (prediction, label) pair into the cohort of its prediction window, per slice row
   (:class:`~detector.core.outcomes.cohort.Cohort`); corrections move the pair, never double count it;
2. evaluates a cohort once it has **matured**: ``watermark >= cohort end + maturity`` where
   maturity is the 90th percentile of the label delay - the larger of the positives' and the
   negatives' (positives such as chargebacks often come later), from a decayed histogram
   (half-life 7 days) - at least one window and at most the label TTL. The estimate is trusted
   once the stream has run twice as long as it (before that, delays are censored and it would
   be too short; after ``ttl`` the TTL is used). A cohort's counts are frozen at evaluation:
   labels that come later are counted (``late``) but not folded in, so every cohort - current
   and baseline - is measured at the same label age and late labels never look like a
   base-rate drop;
3. runs :func:`~detector.core.outcomes.checks.outcome_checks` against the trailing baseline (the
   last ``baseline_cohorts`` clean matured cohorts evaluated at a similar label age, within a
   factor 1.5) and the training reference, with Benjamini-Hochberg across the evaluation's tests
   and slice localisation (:func:`~detector.core.decisions.select.select_findings`), then explains the
   findings (:meth:`OutcomeMonitor._explain`): a base-rate or calibration move is attributed to
   label delay - not reported as label drift - when a delay shift was found, a label-delay
   incident is open, a delay shift was seen and the maturity is still catching up with it
   (rose by more than 20% over the last day), or a significant drop of the labelled share can
   account for it (see
   :func:`_incomplete`); performance falling while inputs (no all-traffic input alert fired while the
   cohort matured: :meth:`OutcomeMonitor.input_change`) and the base rate are stable becomes
   ``concept_drift``, and all traffic's outcomes against training's for these scores (O/E) moving
   with stable inputs is ``label_drift``; a global finding covers the
   slice findings of its kind; one finding per slice row survives (priority :data:`PRIORITY`,
   the others are listed in its evidence as ``also``);
4. emits alerts through ``engine.alerts.update(..., scope=OUTCOME_KINDS)``.

Feature parity (offline vs served values) lives in :mod:`detector.core.outcomes.parity`.
State is bounded: open cohorts (at most TTL / window of them), ``2 x baseline_cohorts``
evaluated cohorts, the label store and the parity store (each with its own bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from detector.core.decisions import kinds
from detector.core.decisions.alerts import OUTCOME_KINDS, Alert
from detector.core.decisions.select import PseudoRows, select_findings
from detector.core.guard import guarded
from detector.core.inputs.events import FeatureBatch, LabelBatch, PredictionBatch
from detector.core.inputs.timeparse import format_ts
from detector.core.outcomes.binary_eval import binary_results
from detector.core.outcomes.checks import Arrays, OutcomeThresholds
from detector.core.outcomes.cohort import (
    C,
    Cohort,
    fold,
)
from detector.core.outcomes.cohort_stats import binary_stats, feed_river, plain_float, slice_key
from detector.core.outcomes.delay_checks import DELAY_STATS
from detector.core.outcomes.estimate.monitor import decided
from detector.core.outcomes.explain import PRIORITY, explain
from detector.core.outcomes.explain import incomplete as explain_incomplete
from detector.core.outcomes.labels import N_DELAY, LabelJoin, Matches, delay_bins
from detector.core.outcomes.model_state import OutcomeModel as _Model
from detector.core.outcomes.parity import ParityMonitor
from detector.core.outcomes.tasked import task_columns, task_results, task_stats

__all__ = ["OutcomeMonitor", "OutcomeSettings", "attach_outcomes", "PRIORITY", "INPUT_CHANGE"]

#: input alert kinds that mean "the inputs changed" (for concept vs covariate drift)
INPUT_CHANGE = kinds.INPUT_CHANGE
_DAY = 86400.0
HELD = 2  # label-store ``counted`` flag: matched, but not (yet) in its cohort's counts (held or late)


@dataclass(frozen=True)
class OutcomeSettings:
    ttl: float = 7 * 86400.0
    max_pending: int = 5_000_000
    early_label_hold: float = 3600.0
    cohort: float | None = None  # cohort length; None = the engine window
    baseline_cohorts: int = 48
    min_baseline_cohorts: int = 3
    # labelled positives and negatives an evaluation needs before it stops pooling earlier cohorts: a
    # base-rate change of x1.5 then shows at p < 0.001 with 80% power ((1.5 - 1) sqrt(E) >= 3.1 + 0.84 sqrt(1.5))
    min_events: int = 70
    min_delays: int = 30
    delay_half_life: float = 7 * 86400.0
    default_threshold: float = 0.5  # decision rule when an event has neither decision nor threshold
    river_delta: float = 0.002
    river_pairs: int = 2000  # reconstructed pairs per cohort fed to ADWIN
    thresholds: OutcomeThresholds = OutcomeThresholds()


class OutcomeMonitor:
    """Label join, cohort evaluation and feature parity for one engine (see the module docstring)."""

    def __init__(self, engine: Any, settings: OutcomeSettings | None = None,
                 costs: dict[str, tuple[Any, Any, Any]] | None = None) -> None:
        self.engine = engine
        self.settings = st = settings or OutcomeSettings()
        self.costs = dict(costs or {})
        self.join = LabelJoin(st.ttl, st.max_pending, st.early_label_hold,
                              max_early_bytes=getattr(engine.settings, "max_early_label_bytes", 64 << 20))
        self.join.accepts = self._label_fits
        self.parity = ParityMonitor(engine)
        self.models: dict[str, _Model] = {}
        self.by_idx: list[_Model] = []
        self.now = -math.inf
        # outcome listeners (rules baseline, counterexamples, slice contribution): objects with
        # on_predictions(m, batch, stored, codes), on_matches(matches), on_cohort(m, cohort, baseline,
        # real_rows, maturity, window), to_state() and load_state(state)
        self.listeners: list[Any] = []

    @property
    def L(self) -> float:
        return float(self.settings.cohort or self.engine.settings.window)

    def _model(self, ms: Any) -> _Model:
        m = self.models.get(ms.name)
        if m is None:
            m = _Model(len(self.by_idx), ms.name, ms.layout, ms.layout.ref, self.costs.get(ms.name, (None, None, None)),
                       self.settings.river_delta)
            self.models[ms.name] = m
            self.by_idx.append(m)
            self.join.store.ensure_dims(len(ms.layout.dims))
        return m

    def _label_fits(self, model: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Labels the models of their predictions take: 0/1 for a binary model, a class code for a
        multiclass one, a finite number for a regression one. A label that names no model is decoded
        before its prediction is known (by the task all models share, or as a plain number when they
        differ); one that turns out to belong to a model of another task is rejected here, where it
        would otherwise count e.g. 7.5 positives for one labelled prediction."""
        ok = np.isfinite(y)
        for mi in np.unique(model).tolist():
            m = self.by_idx[mi] if 0 <= mi < len(self.by_idx) else None
            sel = model == mi
            if m is None:
                ok[sel] = False
            elif m.binary:
                ok[sel] &= (y[sel] == 0) | (y[sel] == 1)
            elif getattr(m.task, "name", "") == "multiclass":
                ok[sel] &= (y[sel] >= 0) & (y[sel] < m.task.C) & (np.floor(y[sel]) == y[sel])
        return ok

    # ------------------------------------------------------------------ hooks
    def on_predictions(self, ms: Any, b: PredictionBatch, row_codes: list[np.ndarray] | None = None) -> None:
        m = self._model(ms)
        lay = ms.layout
        if row_codes is None:
            row_codes = [v.codes(b.slices.get(d, [None] * b.n)) for d, v in zip(lay.dims, lay.vocabs, strict=True)]
        codes = np.stack(row_codes, axis=1) if row_codes else np.zeros((b.n, 0), dtype=np.int64)
        pc = feats = None
        if m.binary:
            pred = decided(b.score, b.acted, b.threshold, self.settings.default_threshold)  # the estimates' rule too
            score = b.score
        else:  # the task reads its outputs: regression the prediction, multiclass the class (+ confidence)
            pc, feats = task_columns(m.task, m.layout, b)
            score, pred = pc.value, pc.klass.astype(np.int8)
        # the rules' decision (baseline_decision) is compared with a binary model's decisions only
        aux = None if b.baseline is None or not m.binary else np.where(np.isnan(b.baseline), -1, b.baseline).astype(np.int8)
        stored, matches = self.join.add_predictions(m.idx, b.ids, b.ts, score, pred, codes.astype(np.int16), aux)
        for lis in self.listeners:
            lis.on_predictions(m, b, stored, codes)
        ts, thr, c2 = b.ts, b.threshold, codes
        if not stored.all():
            k = np.flatnonzero(stored)
            ts, score, pred, thr, c2 = ts[k], score[k], pred[k], thr[k], codes[k]
            if pc is not None:
                pc, feats = pc.take(k), {n: v[k] for n, v in feats.items()} if feats is not None else None
        if ts.size:
            m.first_ts = min(m.first_ts, float(ts.min()))
            self.now = max(self.now, float(ts.max()))
            ridx = m.ridx(c2)
            L = self.L
            starts = np.floor(ts / L) * L
            uniq = np.unique(starts)
            for s in uniq.tolist():
                c = m.open.get(s)
                if c is None:
                    if s in m.done:
                        continue  # a prediction for a cohort already evaluated (cohort != window)
                    c = m.open[s] = m.cohort(s, s + L)
                sel = slice(None) if len(uniq) == 1 else np.flatnonzero(starts == s)
                c.add_predictions(ridx[sel], score[sel], m.gpred(pred[sel]), thr[sel])
                if pc is not None:
                    whole = isinstance(sel, slice)
                    m.task.add_predictions(c.tc, ridx[sel], pc if whole else pc.take(sel),
                                           feats if whole or feats is None else {n: v[sel] for n, v in feats.items()})
                for v, cnt in b.versions.items():
                    c.versions[v] = c.versions.get(v, 0) + cnt
        if matches is not None:
            self._fold(matches)
        self.parity.on_predictions(ms, b, codes)

    def on_labels(self, batch: LabelBatch) -> None:
        self.join.add_labels(batch, sink=self._fold)

    def on_features(self, batch: FeatureBatch) -> None:
        self.parity.on_features(batch, self.now)

    # ------------------------------------------------------------------ folding pairs
    def _fold(self, mt: Matches) -> None:
        if mt.slots.size == 0:
            return
        for lis in self.listeners:
            lis.on_matches(mt)
        store = self.join.store
        L = self.L
        for mi in np.unique(mt.rows.model).tolist():
            m = self.by_idx[mi]
            sel = np.flatnonzero(mt.rows.model == mi)
            rows = mt.rows
            D = len(m.layout.dims)
            ridx = m.ridx(rows.codes[sel, :D])
            ts, score, pred = rows.ts[sel], rows.score[sel], rows.pred[sel]
            new, old, slots = mt.label[sel].astype(np.float64), mt.old[sel], mt.slots[sel]
            counted = rows.counted[sel]
            first = np.isnan(old)
            R = m.layout.n_rows
            if first.any():
                f = np.flatnonzero(first)
                db = delay_bins(mt.delay[sel][f])
                m.delay_all += fold(ridx[f], R, N_DELAY, db, np.ones(f.size))
                m.delay_cls += np.bincount(m.y01(new[f]).astype(np.int64) * N_DELAY + db,
                                           minlength=2 * N_DELAY).reshape(2, N_DELAY)
                m.delay_total += np.bincount(db, minlength=N_DELAY)
                m.delay_sum += float(np.maximum(mt.delay[sel][f], 0.0).sum())
            ones = np.ones(sel.size)
            m.arrivals[:, 0] += fold(ridx, R, 1, np.zeros(sel.size, dtype=np.int64), ones)[:, 0]
            if (~first).any():
                k = np.flatnonzero(~first)
                m.arrivals[:, 1] += fold(ridx[k], R, 1, np.zeros(k.size, dtype=np.int64), np.ones(k.size))[:, 0]
            starts = np.floor(ts / L) * L
            for s in np.unique(starts).tolist():
                here = starts == s
                c = m.open.get(s)
                target = c if c is not None else m.done.get(s)
                f = np.flatnonzero(here & first)
                if f.size and c is not None:
                    pairs = {"start": np.full(f.size, s), "ridx": ridx[f], "score": score[f], "pred": pred[f], "y": new[f],
                             "delay": mt.delay[sel][f], "label_ts": ts[f] + mt.delay[sel][f], "slot": slots[f],
                             "end": np.full(f.size, s + L)}
                    if m.age.horizon > 0:
                        self._fold_pairs(m, pairs)
                    else:  # the label age is not known yet: hold them (detector.core.outcomes.maturity)
                        store.set_counted(slots[f], np.full(f.size, HELD, dtype=np.int8))
                        for batch in m.age.hold(pairs):
                            self._fold_pairs(m, batch, gated=False)
                elif f.size and target is not None:
                    target.count_late(np.asarray(score[f], dtype=np.float64), m.y01(new[f]))
                held = np.flatnonzero(here & ~first & (counted == HELD))
                if held.size and m.age.horizon <= 0:  # a correction of a pair still held: fold it corrected
                    m.age.correct(slots[held], new[held])
                k = np.flatnonzero(here & ~first & (counted == 1))
                if k.size and target is not None:  # a correction: move the pair to its new label
                    r, sc, pr = ridx[k], score[k], pred[k]
                    target.add_pairs(r, sc, m.gpred(pr), m.y01(old[k].astype(np.float64)), -np.ones(k.size), None)
                    target.add_pairs(r, sc, m.gpred(pr), m.y01(new[k]), np.ones(k.size), None)
                    if target.tc is not None:
                        m.task.add_pairs(target.tc, r, sc, pr.astype(np.int64), old[k], -np.ones(k.size))
                        m.task.add_pairs(target.tc, r, sc, pr.astype(np.int64), new[k], np.ones(k.size))
                    target.cnt[:, C["corr"]] += fold(r, R, 1, np.zeros(k.size, dtype=np.int64), np.ones(k.size))[:, 0]

    def _fold_pairs(self, m: _Model, p: dict[str, np.ndarray], gated: bool = True) -> None:
        """Fold first labels into their open cohorts: those that arrived by the cohort's end + the label
        age (``gated``), so a cohort counts the same labels whenever it is evaluated (a replay evaluates
        days of cohorts at once, a live worker on time); the others are late."""
        A = m.age.horizon
        store = self.join.store
        for s in np.unique(p["start"]).tolist():
            idx = np.flatnonzero(p["start"] == s)
            c = m.open.get(s)
            if c is None:
                continue
            c.gate = min(c.gate, A if gated else 0.0)
            if gated:
                in_time = p["label_ts"][idx] <= p["end"][idx] + A
                late = idx[~in_time]
                c.count_late(np.asarray(p["score"][late], dtype=np.float64), m.y01(p["y"][late]))
                local = late[p["slot"][late] >= 0]  # pairs another worker joined have no slot here
                store.set_counted(p["slot"][local], np.full(local.size, HELD, dtype=np.int8))
                idx = idx[in_time]
            if idx.size:
                c.add_pairs(p["ridx"][idx], p["score"][idx], m.gpred(p["pred"][idx]), m.y01(p["y"][idx]), np.ones(idx.size),
                            delay_bins(p["delay"][idx]))
                if c.tc is not None:
                    m.task.add_pairs(c.tc, p["ridx"][idx], p["score"][idx], p["pred"][idx].astype(np.int64), p["y"][idx],
                                     np.ones(idx.size))
                local = idx[p["slot"][idx] >= 0]
                store.set_counted(p["slot"][local], np.ones(local.size, dtype=np.int8))

    def take_held(self, m: _Model) -> list[dict[str, np.ndarray]]:
        """A unit's first pairs held for the label age, handed on whole (an aggregator chooses the age
        and gates them: see :func:`detector.core.outcomes.exchange.take_outcome_step`)."""
        out = m.age.release()
        for b in out:
            self.join.store.set_counted(b["slot"], np.ones(len(b["slot"]), dtype=np.int8))
        return out

    def add_held(self, m: _Model, batch: dict[str, np.ndarray]) -> None:
        """First pairs another worker joined (``slot`` -1, rows already re-keyed): folded gated once the
        label age is known, held with this monitor's own until then."""
        if m.age.horizon > 0:
            self._fold_pairs(m, batch)
        else:
            for b in m.age.hold(batch):
                self._fold_pairs(m, b, gated=False)

    # ------------------------------------------------------------------ time
    def maturity(self, m: _Model, watermark: float) -> float | None:
        """Label age at which cohorts are evaluated, or None while it cannot be chosen yet
        (:class:`~detector.core.outcomes.maturity.LabelAge`: once, from cohorts old enough to show it)."""
        if m.age.horizon <= 0:
            cohorts = [(c.end, float(c.cnt[0, C["pred"]])) for c in m.open.values()]
            if m.age.choose(cohorts, watermark, m.first_ts, self.L, self.settings.ttl) <= 0:
                return None
            for batch in m.age.release():
                self._fold_pairs(m, batch)
        return m.age.horizon

    def advance(self, watermark: float) -> list[Alert]:
        self.now = max(self.now, watermark)
        self.join.expire(watermark)
        out: list[Alert] = []
        for name in sorted(self.models):
            m = self.models[name]
            fk = self.input_change(name)
            for c in m.open.values():
                if c.end <= watermark:
                    c.input_kinds |= fk
            mat = self.maturity(m, watermark)
            if mat is None:
                continue
            for s in sorted(m.open):
                c = m.open[s]
                if c.end + mat > watermark:
                    break
                guard = guarded(self.engine.counters, name, c.start, c.end)
                out.extend(guard("outcomes", lambda m=m, c=c, mat=mat: self._evaluate(m, c, mat), []))
        guard = guarded(self.engine.counters, "", None, watermark)
        out.extend(guard("parity", lambda: self.parity.advance(watermark), []))
        return out

    # ------------------------------------------------------------------ evaluation
    def input_change(self, model: str) -> set[str]:
        """Kinds of the open input incidents that say all traffic's inputs changed (:data:`INPUT_CHANGE`, no
        slice). An incident confined to one slice (a default value in one channel) cannot explain a move of
        the outcomes of all traffic, and must not turn every outcome finding of the model into its consequence."""
        return {str(a.get("kind")) for a in self.engine.alerts.firing(model)
                if a.get("kind") in INPUT_CHANGE and not a.get("slice")}

    def censoring(self, m: _Model, mat: float) -> tuple[float, float]:
        """Observed base rate at label age ``mat`` over the (nearly) complete one, from production's own
        delays: cohorts evaluated at ``mat`` and now at least four times as old, with the labels that came
        after their evaluation. 1.0 when every label comes well within ``mat``; NaN until known.

        Positives that take longer (chargebacks) make a cohort look negative-heavy at any fixed age;
        the comparisons with training (which knows complete labels) scale the training rates by it.
        Returns (factor, relative variance): the factor is a ratio of two thinning shares estimated from
        production's own pairs - a quiet model's first days give it from a few dozen positives - and the
        tests against training carry that noise instead of taking the scaled rate as exact.
        """
        old = self._censoring_cohorts(m, mat)
        lab = sum(d.cnt[0, C["lab"]] for d in old)
        pos = sum(d.cnt[0, C["pos"]] for d in old)
        late, late_pos = sum(d.late for d in old), sum(d.late_pos for d in old)
        if lab < self.settings.thresholds.min_labels or pos <= 0:
            return math.nan, math.nan
        a_pos, a_lab = pos / (pos + late_pos), lab / (lab + late)  # shares of positives / pairs in by this age
        return float(a_pos / a_lab), float((1 - a_pos) / pos + (1 - a_lab) / lab)

    def score_censoring(self, m: _Model, mat: float) -> float:
        """Mean score of the pairs labelled by label age ``mat`` over that of all labelled pairs, from the same
        cohorts as :meth:`censoring`; 1.0 when it cannot be told (no late labels, or counts kept before
        late scores were).

        When the riskier pairs are labelled sooner (positives come faster and scores rank them), the pairs
        in by this age have a higher mean score than the cohort: the observed/expected ratio at this age is
        the complete one x ``censoring / score_censoring``, not x ``censoring`` - scaling only the observed
        side counts the selection twice and reads a clean model as miscalibrated."""
        old = self._censoring_cohorts(m, mat)
        s, sl = sum(d.cnt[0, C["s"]] for d in old), sum(d.cnt[0, C["sl"]] for d in old)
        late_s, late_sl = sum(d.late_s for d in old), sum(d.late_sl for d in old)
        if sl < self.settings.thresholds.min_labels or s <= 0 or late_sl <= 0:
            return 1.0
        return float((s / sl) / ((s + late_s) / (sl + late_sl)))

    def _censoring_cohorts(self, m: _Model, mat: float) -> list[Cohort]:
        """Cohorts evaluated at ``mat`` whose ends lie at least ``4 mat`` back: their late labels are (nearly) in.

        The label age is where about half of what comes within twice that age is in
        (:mod:`detector.core.outcomes.maturity`), so at ``2 mat`` a sizeable part of the slow labels is still
        on its way: the first days' factors then read the labels in by the age as a fuller share than they
        are, and the comparisons with training alarm on a clean model while they settle."""
        return [d for d in m.done.values() if math.isclose(d.horizon, mat) and d.end + 4 * mat <= self.now]

    def _pool(self, m: _Model, c: Cohort, mat: float) -> list[Cohort]:
        """``c`` and the cohorts evaluated just before it at a comparable label age, newest first, until the
        pool holds ``min_events`` labelled positives and negatives (or spans a day): a quiet model or a
        rare outcome is judged over enough pairs, a busy one cohort by cohort."""
        pool = [c]
        pos, lab = c.cnt[0, C["pos"]], c.cnt[0, C["lab"]]
        for d in reversed(m.done.values()):
            # binary: enough positives and negatives; other tasks: enough labelled pairs (twice as many)
            enough = min(pos, lab - pos) if m.binary else lab / 2
            if enough >= self.settings.min_events or d.start <= c.start - _DAY:
                break
            if not math.isclose(d.horizon, mat) or d.label_suspect:
                break
            pool.append(d)
            pos, lab = pos + d.cnt[0, C["pos"]], lab + d.cnt[0, C["lab"]]
        return pool

    def _baseline(self, m: _Model, mat: float, before: float = math.inf, need: int = 0) -> tuple[Cohort | None, float]:
        st = self.settings
        used = [c for c in reversed(m.done.values()) if c.in_baseline and math.isclose(c.horizon, mat) and c.start < before]
        used = used[: st.baseline_cohorts]
        if len(used) < max(st.min_baseline_cohorts, need):
            return None, math.nan
        b = m.cohort(0.0, 0.0)
        for c in used:
            b.add(c)
        return b, min(c.horizon for c in used)

    def _evaluate(self, m: _Model, c: Cohort, mat: float) -> list[Alert]:
        st, th = self.settings, self.settings.thresholds
        eng = self.engine
        lay = m.layout
        del m.open[c.start]
        # labels folded before the label age was known (or at a smaller one): not measured at this age,
        # so it is compared with nothing and nothing is compared with it (its metrics are still reported)
        comparable = c.gate >= mat or math.isclose(c.gate, mat)
        c.horizon = mat
        pool = self._pool(m, c, mat) if comparable else [c]
        base, base_h = self._baseline(m, mat, before=pool[-1].start, need=2 * len(pool)) if comparable else (None, math.nan)
        if m.binary:
            feed_river(m, c, base, st.river_pairs, th.river_brier_ratio)
        pooled = m.cohort(pool[-1].start, c.end)
        for d in pool:
            pooled.add(d)
        active = lay.active_rows()
        real = active[pooled.cnt[active, C["pred"]] > 0]
        if real.size == 0 or real[0] != 0:
            real = np.concatenate([[0], real[real != 0]])
        srows = real[real != 0]
        rows = np.concatenate([real, srows])
        comp = np.concatenate([np.zeros(real.size, bool), np.ones(srows.size, bool)])

        def ext(a: np.ndarray) -> np.ndarray:
            return np.concatenate([a[real], a[0][None] - a[srows]], axis=0)

        arr_b = np.sum(list(m.arr_hist), axis=0) if m.arr_hist else np.zeros_like(m.arrivals)
        b = base or m.cohort(0.0, 0.0)
        cur = Arrays(ext(pooled.cnt), ext(pooled.rel), ext(pooled.hist), ext(pooled.delay), ext(m.arrivals))
        bas = Arrays(ext(b.cnt), ext(b.rel), ext(b.hist), ext(b.delay), ext(arr_b))
        firing = (eng.alerts.firing_kinds(m.name) - INPUT_CHANGE) | self.input_change(m.name)
        inputs_stable = not ((c.input_kinds | firing) & INPUT_CHANGE)
        if m.binary:
            results, stable, expected, lab_unstable = binary_results(self, m, c, cur, bas, rows, comp, ext, mat, base_h,
                                                                     inputs_stable, firing)
            incomplete = explain_incomplete(cur.cnt, bas.cnt, expected)
        else:
            results, stable = task_results(self, m, c, pooled, b, base_h, real, srows, comp, inputs_stable, firing)
            lab_unstable = ~stable & inputs_stable & ("label_drift" not in firing)  # the labels moved
            incomplete = np.zeros(rows.size, bool)
        view = PseudoRows(rows, comp, cur.cnt[:, C["lab"]])
        findings = select_findings(results, view, eng.settings.fdr_q)
        day_ago = [d.horizon for d in m.done.values() if d.start > c.start - _DAY]
        rising = bool(day_ago) and mat > 1.2 * min(day_ago)  # the maturity is still catching up
        m.delay_unsettled = m.delay_unsettled and rising
        if m.delay_unsettled or any(a.get("kind") == "label_delay" and a.get("statistic") in DELAY_STATS
                                    for a in eng.alerts.firing(m.name)):
            incomplete[:] = True  # after a delay shift: labels at this age are not comparable yet
        findings, delay_shift = explain(findings, rows, comp, stable, incomplete, "concept_drift" in firing, inputs_stable)
        if not comparable:
            findings = []
        label_stable = not lab_unstable[0] and "label_drift" not in firing and not any(f.kind == "label_drift" for f in findings)
        kinds = {f.kind for f in findings} | firing | c.input_kinds
        version = max(c.versions.items(), key=lambda kv: kv[1])[0] if c.versions else None
        ctx = {"kinds": kinds, "inputs_stable": inputs_stable, "label_rate_stable": label_stable,
               "label_delay_shift": delay_shift, "model_version": version}
        window = {"start": format_ts(pooled.start), "end": format_ts(c.end), "count": int(pooled.cnt[0, C["lab"]]),
                  "_start": pooled.start, "_end": c.end}
        evaluated = {slice_key(lay.row_label(int(r))) for r in real.tolist() if pooled.cnt[r, C["lab"]] >= th.min_labels}
        for f in findings:
            f.evidence = {**f.evidence, "label_age_s": round(mat), "cohorts": len(pool)}
        pairs = [(f, lay.row_label(f.row)) for f in findings]
        # an outcome alert is raised when the cohorts matured: that is its time, not the cohort's end
        alerts = eng.alerts.update(m.name, window, pairs, evaluated, ctx, scope=OUTCOME_KINDS, ts=c.end + mat)
        for a in alerts:
            if a.state == "firing":
                eng.counters.alerts_fired += 1
            else:
                eng.counters.alerts_resolved += 1
        # bookkeeping: the baseline learns only from clean cohorts; arrivals and delays roll on
        c.in_baseline = comparable and not findings and not (eng.alerts.firing_kinds(m.name) & OUTCOME_KINDS)
        if not comparable:
            c.horizon = -1.0
        elif not c.in_baseline:
            for d in pool[1:]:  # pooled with a breach: none of them is a clean reference any more
                d.in_baseline = False
        c.label_suspect = delay_shift or bool(incomplete[0])
        m.delay_unsettled |= delay_shift
        m.done[c.start] = c
        while len(m.done) > 2 * st.baseline_cohorts:
            del m.done[next(iter(m.done))]
        if c.in_baseline:
            m.arr_hist.append(m.arrivals.copy())
            while len(m.arr_hist) > st.baseline_cohorts:
                m.arr_hist.popleft()
        m.arrivals[...] = 0.0
        decay = 0.5 ** (self.L / st.delay_half_life)
        m.delay_all *= decay
        m.delay_cls *= decay
        m.stats = binary_stats(m, c, real, mat, window) if m.binary else task_stats(m, c, real, mat, window)
        # listeners rank this cohort against the clean cohorts before it (the checks' baseline, which
        # starts before the whole pool, may not exist yet while the pool is being filled)
        lis_base = base if base is not None or not comparable else self._baseline(m, mat, before=c.start)[0]
        for lis in self.listeners:
            lis.on_cohort(m, c, lis_base, real, mat, window)
        return alerts

    # ------------------------------------------------------------------ metrics
    def stats(self, model: str) -> dict[str, Any]:
        """Latest evaluated values per slice (``slices[slice_key]``), parity and label-join counters.

        Slice keys are ``""`` (all traffic) or ``"dim=value"``; values are floats or None.
        ``delay`` is the lifetime label-delay histogram of the model (all traffic): per-bin
        ``counts`` on :data:`~detector.core.outcomes.labels.DELAY_EDGES` and the ``sum`` of delays.
        """
        m = self.models.get(model)
        out: dict[str, Any] = dict(m.stats) if m is not None else {}
        out.setdefault("slices", {})
        if m is not None:
            out["delay"] = {"counts": m.delay_total.tolist(), "sum": m.delay_sum}
        out["labels"] = {**self.join.counters, "coverage": plain_float(self.join.coverage), "match_rate": plain_float(self.join.match_rate),
                         "pending": len(self.join.store), "early_held": len(self.join.early),
                         "early_held_bytes": self.join.early_bytes}
        out["parity"] = self.parity.stats(model)
        return out

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """Plain data (see :mod:`detector.core.state.codec`); the river ADWIN through its inputs."""
        models = {name: m.to_state() for name, m in self.models.items()}
        return {"join": self.join.to_state(), "models": models, "now": self.now, "parity": self.parity.to_state(),
                "listeners": [lis.to_state() for lis in self.listeners]}

    def load_state(self, state: dict[str, Any]) -> None:
        from detector.core.state.codec import check

        check(isinstance(state, dict) and isinstance(state.get("models"), dict), "outcome monitor state")
        self.join.load_state(state["join"])
        self.now = float(state["now"])
        self.models, self.by_idx = {}, []
        for name, s in sorted(state["models"].items(), key=lambda kv: int(kv[1]["idx"])):
            ms = self.engine.models.get(name)
            if ms is None:
                continue
            self._model(ms).load_state(s)
        self.parity.load_state(state["parity"])
        for lis, st in zip(self.listeners, state.get("listeners") or [], strict=False):
            lis.load_state(st)


def attach_outcomes(engine: Any, cfg: Any = None, settings: OutcomeSettings | None = None) -> OutcomeMonitor:
    """Install an :class:`OutcomeMonitor` on ``engine`` (label TTL/bounds and costs from ``cfg``)."""
    st = settings or OutcomeSettings()
    costs: dict[str, tuple[Any, Any, Any]] = {}
    if cfg is not None:
        st = replace(st, ttl=cfg.labels.ttl, max_pending=cfg.labels.max_pending, early_label_hold=cfg.labels.early_label_hold)
        costs = {name: (mc.cost_fp, mc.cost_fn, mc.review_capacity) for name, mc in cfg.models.items()}
    mon = OutcomeMonitor(engine, st, costs)
    engine.outcomes = mon
    from detector.core.checks.adoption import RulesBaseline
    from detector.core.outcomes.contribution import SliceContribution
    from detector.core.outcomes.counterexamples import CounterexampleLibrary
    from detector.core.outcomes.estimate.monitor import EstimateListener

    mon.listeners.extend([RulesBaseline(mon), CounterexampleLibrary(mon), SliceContribution(mon), EstimateListener(mon)])
    return mon
