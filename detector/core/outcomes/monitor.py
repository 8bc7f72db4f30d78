"""Outcome monitoring: labels joined to predictions, evaluated per *matured* cohort.

:func:`attach_outcomes` installs an :class:`OutcomeMonitor` on an engine; the engine then calls
``on_predictions`` / ``on_labels`` / ``on_features`` as batches arrive and ``advance`` at the
end of each ``Engine.advance``. The monitor

1. holds predictions until their label arrives (:class:`~detector.core.outcomes.labels.LabelJoin`) and
   folds every (prediction, label) pair into the cohort of its prediction window, per slice row
   (:mod:`detector.core.outcomes.folding`); corrections move the pair, never double count it;
2. evaluates a cohort once it has **matured**: ``watermark >= cohort end + label age``, the age chosen
   once from production's own label delays (:class:`~detector.core.outcomes.maturity.LabelAge`: the
   slower label value's, at least one window and at most the label TTL). A cohort counts the labels in
   by that age; later ones are counted (``late``) but not folded in, so every cohort - current and
   baseline - is measured at the same label age and late labels never look like a base-rate drop;
   how the labels in by the age differ from complete ones is :mod:`detector.core.outcomes.censoring`;
3. turns the matured cohort into checks, findings and alerts (:mod:`detector.core.outcomes.evaluation`):
   pooled with the cohorts before it until it holds enough labelled pairs, against the trailing baseline
   of clean cohorts and the training reference, explained (label delay, concept vs label drift) and
   emitted through ``engine.alerts.update(..., scope=OUTCOME_KINDS)``.

Feature parity (offline vs served values) lives in :mod:`detector.core.outcomes.parity`.
State is bounded: open cohorts (at most TTL / window of them), ``2 x baseline_cohorts``
evaluated cohorts, the label store and the parity store (each with its own bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from detector.core.decisions.alerts import Alert
from detector.core.guard import guarded
from detector.core.inputs.events import FeatureBatch, LabelBatch, PredictionBatch
from detector.core.outcomes import censoring as _censoring
from detector.core.outcomes import evaluation as _evaluation
from detector.core.outcomes import folding as _folding
from detector.core.outcomes.checks import OutcomeThresholds
from detector.core.outcomes.cohort import C, Cohort
from detector.core.outcomes.cohort_stats import plain_float
from detector.core.outcomes.estimate.monitor import decided
from detector.core.outcomes.evaluation import INPUT_CHANGE
from detector.core.outcomes.explain import PRIORITY
from detector.core.outcomes.folding import HELD
from detector.core.outcomes.labels import LabelJoin, Matches
from detector.core.outcomes.model_state import OutcomeModel as _Model
from detector.core.outcomes.parity import ParityMonitor
from detector.core.outcomes.tasked import task_columns

__all__ = ["OutcomeMonitor", "OutcomeSettings", "attach_outcomes", "PRIORITY", "INPUT_CHANGE", "HELD"]



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

    # ------------------------------------------------------------------ folding pairs (detector.core.outcomes.folding)
    def _fold(self, mt: Matches) -> None:
        _folding.fold_matches(self, mt)

    def _fold_pairs(self, m: _Model, p: dict[str, np.ndarray], gated: bool = True) -> None:
        _folding.fold_pairs(self, m, p, gated)

    def take_held(self, m: _Model) -> list[dict[str, np.ndarray]]:
        """A unit's first pairs held for the label age, handed on whole (:func:`~detector.core.outcomes.folding.take_held`)."""
        return _folding.take_held(self, m)

    def add_held(self, m: _Model, batch: dict[str, np.ndarray]) -> None:
        """First pairs another worker joined (:func:`~detector.core.outcomes.folding.add_held`)."""
        _folding.add_held(self, m, batch)

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

    # ------------------------------------------------------------------ evaluation (detector.core.outcomes.evaluation)
    def input_change(self, model: str) -> set[str]:
        """Kinds of the open all-traffic input incidents (:func:`~detector.core.outcomes.evaluation.input_change`)."""
        return _evaluation.input_change(self, model)

    def censoring(self, m: _Model, mat: float) -> tuple[float, float]:
        """(factor, relative variance) of the base rate at label age ``mat`` (:func:`~detector.core.outcomes.censoring.censoring`)."""
        return _censoring.censoring(self, m, mat)

    def score_censoring(self, m: _Model, mat: float) -> float:
        """Mean-score selection at label age ``mat`` (:func:`~detector.core.outcomes.censoring.score_censoring`)."""
        return _censoring.score_censoring(self, m, mat)

    def _censoring_cohorts(self, m: _Model, mat: float) -> list[Cohort]:
        return _censoring.censoring_cohorts(self, m, mat)

    def _pool(self, m: _Model, c: Cohort, mat: float) -> list[Cohort]:
        return _evaluation.pool_for(self, m, c, mat)

    def _baseline(self, m: _Model, mat: float, before: float = math.inf, need: int = 0) -> tuple[Cohort | None, float]:
        return _evaluation.clean_baseline(self, m, mat, before, need)

    def _evaluate(self, m: _Model, c: Cohort, mat: float) -> list[Alert]:
        return _evaluation.evaluate(self, m, c, mat)


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
