"""The detection core: ``Engine.ingest_*`` folds batches in, ``Engine.advance`` closes windows.

Synchronous, deterministic and I/O-free: the Kafka worker, ``replay`` and the tests drive the
same object with the same settings, so a replay of logged traffic yields the same alerts as the
live sidecar. Time is *event time*: a window ``[start, start + window)`` closes when the
watermark (largest prediction timestamp seen minus ``allowed_lateness``) passes its end; an
event for a window that already closed is *late* (counted, not folded in), and an event further
than ``max_future`` ahead of the stream is rejected as a bad clock.

State per model: open windows (:class:`~detector.core.inputs.window.WindowCounts`), the seasonal
baseline, change detectors, default-value candidates and the alert state. All of it is
bounded (slice and category top-K, fixed bins) and serialisable as declared plain data
(``snapshot``/``restore``, :mod:`detector.core.state.codec`). Across workers, closed windows travel as
partials (``advance_partials`` on the worker that folded them, ``ingest_partial`` on the one
that evaluates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.checks.adoption import Adoption
from detector.core.checks.daily import DayRing, daily_checks
from detector.core.checks.multivariate.window import JointDrift, hold_explained
from detector.core.checks.pooled_shift import POOL, pooled_time_shift
from detector.core.checks.remix import add_variants, collapse, hold_mixed
from detector.core.checks.seasonal import seasonal_checks
from detector.core.checks.window import build_view, run_checks
from detector.core.decisions.alerts import OUTCOME_KINDS, Alert, AlertManager
from detector.core.decisions.select import SPECIFIC, Finding, dedup, hold_generic, select_findings
from detector.core.decisions.triage import PIPELINE_KINDS
from detector.core.inputs.events import EventError, PredictionBatch, PredictionDecoder
from detector.core.inputs.eventtime import EventClock
from detector.core.inputs.fastdecode import TypedDecoder
from detector.core.inputs.ingest import Ingest, gc_paused
from detector.core.inputs.layout import SCORE, Layout
from detector.core.inputs.seasonal import Frozen, SeasonalBaseline
from detector.core.inputs.served import ServedTotals
from detector.core.inputs.window import N_CAND, RATE, WindowCounts
from detector.core.inputs.wire import row_error
from detector.core.reference.profile import Reference, value_share
from detector.core.reference.reconcile import NOTE, reconciled, served_as_text
from detector.core.settings import DetectorSettings
from detector.core.state.codec import StateError
from detector.core.state.partials import (
    Partial,
    check_window_fits,
    partial_events,
    remap,
    remap_candidates,
    row_map,
    row_map_values,
)

__all__ = ["Engine", "EngineError", "gc_paused"]



class EngineError(ValueError):
    """Misuse of the engine (e.g. restoring a snapshot taken with other references)."""


@dataclass
class Counters:
    predictions: int = 0
    labels: int = 0
    feature_events: int = 0
    invalid: dict[str, int] = field(default_factory=dict)  # reason -> count
    clipped: dict[str, int] = field(default_factory=dict)  # field -> retained strings cut to max_value_bytes
    late: int = 0
    windows_closed: int = 0
    alerts_fired: int = 0
    alerts_resolved: int = 0
    max_event_ts: float = float("-inf")

    def count_errors(self, errors: list[EventError]) -> None:
        for e in errors:
            self.invalid[e.reason] = self.invalid.get(e.reason, 0) + 1

    def to_state(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(self).items()}

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> Counters:
        c = cls()
        for k, cur in vars(cls()).items():  # unknown keys are ignored, missing ones keep their default
            if k not in st:
                continue
            v = st[k]
            if isinstance(cur, dict):
                if not isinstance(v, dict):
                    raise StateError(f"counters: {k} must be a dict")
                setattr(c, k, {str(a): int(b) for a, b in v.items()})
            else:
                setattr(c, k, type(cur)(v))
        return c

    def count_clipped(self, clipped: dict[str, int]) -> None:
        for k, v in clipped.items():
            self.clipped[k] = self.clipped.get(k, 0) + v


class ModelState:
    """Everything the engine keeps for one model."""

    def __init__(self, name: str, ref: Reference, settings: DetectorSettings, dims: list[str],
                 codes: dict[str, dict[str, str]] | None = None) -> None:
        self.name = name
        self.settings = settings
        # code-like numeric features served as strings, compared as categories (detector.core.reference.reconcile)
        self.codes = dict(codes or {})
        self.layout = Layout(reconciled(ref, self.codes), dims, settings.slice_top_k, settings.category_top_k)
        self.decoder = PredictionDecoder(self.layout.schema, settings.no_action_decisions, settings.max_unknown_features,
                                         settings.max_value_bytes, task=ref.task_name)
        self.windows: dict[float, WindowCounts] = {}
        self.served = ServedTotals(self.layout)  # lifetime latency / score histograms (exporter)
        slots = settings.season_slots
        period = 604800.0 if settings.seasonality == "weekly" else 86400.0
        slot_len = period / slots if slots > 1 else 86400.0
        self.seasonal = SeasonalBaseline(self.layout, slots, slot_len, settings.seasonal_decay, settings.window)
        self.day = DayRing(86400.0)  # the trailing day, for skew vs training without hourly profiles
        nb = self.layout.n_num_blocks
        self.cands = np.full((nb, N_CAND), np.nan)
        # windows starting at or after cand_since[j, k] counted every hit of candidate k (it was
        # tracked before their first event): only those windows may judge it
        self.cand_since = np.full((nb, N_CAND), -np.inf)
        self.cand_ref = np.zeros((nb, N_CAND))
        for j, p in enumerate(self.layout.num_all_profiles):
            if p is not None and p.top_value is not None and p.top_share >= 0.01:
                self.cands[j, 0] = p.top_value
                self.cand_ref[j, 0] = p.top_share
        self.detectors = _make_detectors(settings, nb)
        self.shift_active = np.zeros(nb, dtype=bool)
        # clock shifts seen lately: "feature|slice key" -> [hours, start of the window it was seen in] (_persistent_shifts)
        self.clock_shifts: dict[str, list[float]] = {}
        self.last_summary: dict[str, Any] = {}
        # latest value of every tested statistic: (kind, statistic, feature, slice key) -> (value, slice, threshold)
        self.last_stats: dict[tuple[str, str, str, str], tuple[float, dict[str, str], float]] = {}
        self.versions: dict[str, int] = {}
        self.last_version: str | None = None
        # the last closed window's counts (bounded: one window), for the status page and report charts
        self.last_window: WindowCounts | None = None
        self.typed: TypedDecoder | None = None  # built when this model's events dominate a batch
        # joint structure of the numeric features (detector.core.checks.multivariate.window), when the reference has it
        self.joint = JointDrift(ref.multivariate, self.layout.numeric, settings.window) if ref.multivariate else None
        self.arrow: Any = None  # its columnar reader (detector.core.inputs.arrowdecode), built with it

    # ---------------------------------------------------------------- candidates for value spikes
    def discover_candidates(self, b: PredictionBatch, idx: np.ndarray | None = None, start: float = -np.inf) -> None:
        """Start tracking exact values that hold >= 20% of a sample of the events (``idx``: one window's)."""
        n = b.n if idx is None else idx.size
        if n < 50:
            return
        pick = np.linspace(0, n - 1, min(n, 256)).astype(np.int64)  # spread over the window, not its start
        rows = pick if idx is None else idx[pick]
        X = np.concatenate([b.num[rows], b.score[rows, None]], axis=1)
        for j in range(X.shape[1]):
            col = X[:, j]
            col = col[~np.isnan(col)]
            if col.size < 20:
                continue
            vals, cnt = np.unique(col, return_counts=True)
            top = int(np.argmax(cnt))
            if cnt[top] < 0.2 * col.size:
                continue
            v = float(vals[top])
            row = self.cands[j]
            if np.any(row == v):
                continue
            free = np.flatnonzero(np.isnan(row))
            if free.size == 0:
                continue
            self.assign_candidate(j, int(free[0]), v, start)

    def assign_candidate(self, j: int, k: int, v: float, start: float) -> None:
        """Track exact value ``v`` of numeric block ``j`` in candidate slot ``k`` from the window at ``start``
        on (from the window after the last open one, if windows at or after ``start`` already hold events)."""
        self.cands[j, k] = v
        self.cand_ref[j, k] = value_share(self.layout.num_all_profiles[j], v)
        W = self.settings.window
        self.cand_since[j, k] = max([start] + [s + W for s in self.windows if s >= start])
        self.seasonal.reset_candidate(j, k)

    def cands_complete(self, since: float) -> np.ndarray:
        """Candidate values whose hits are complete in windows from ``since`` on (NaN elsewhere)."""
        return np.where(self.cand_since <= since, self.cands, np.nan)


def _make_detectors(settings: DetectorSettings, n: int) -> list[Any]:
    if settings.change_detector == "none":
        return []
    from detector.core.state.drift import ADWIN, PageHinkley  # river's, with plain restorable state

    delta = settings.change_detector_delta / max(n, 1)  # Bonferroni across the model's series
    if settings.change_detector == "adwin":
        return [ADWIN(delta=delta) for _ in range(n)]
    return [PageHinkley(delta=0.005, threshold=50.0) for _ in range(n)]


class Engine(Ingest):
    """Drive with ``ingest_*`` then ``advance``; collect the returned alerts."""

    def __init__(
        self,
        settings: DetectorSettings | None = None,
        references: dict[str, Reference] | None = None,
        default_reference: Reference | None = None,
    ) -> None:
        self.settings = settings or DetectorSettings()
        self.references = dict(references or {})
        self.default_reference = default_reference
        self.models: dict[str, ModelState] = {}
        self.alerts = AlertManager(self.settings)
        self.counters = Counters()
        st = self.settings
        self.clock = EventClock(st.max_future, st.max_clock_skew, st.allowed_lateness, st.window)
        # a live driver's wall clock (set before each ingest, or passed to it): "future" is then ahead of it
        self.now: float | None = None
        self._now: float | None = None  # the wall clock of the ingest under way (live), else None
        self.outcomes: Any = None  # label join / outcome monitors (attached by detector.core.outcomes.monitor)
        self.adoption = Adoption()  # override / review-capacity checks (capacities: detector.core.checks.adoption.attach_adoption)
        self._typed: TypedDecoder | None = None  # typed decoder of the usual model (detector.core.inputs.fastdecode)

    # ------------------------------------------------------------------ event time (detector.core.inputs.eventtime)
    @property
    def high_water(self) -> float:
        """The stream's robust event-time progress (not the largest timestamp seen)."""
        return self.clock.progress

    @high_water.setter
    def high_water(self, value: float) -> None:
        self.clock.progress = value

    @property
    def watermark(self) -> float:
        return self.clock.watermark

    @watermark.setter
    def watermark(self, value: float) -> None:
        self.clock.watermark = value

    @property
    def closed_before(self) -> float:
        return self.clock.closed_before

    @closed_before.setter
    def closed_before(self, value: float) -> None:
        self.clock.closed_before = value

    # ------------------------------------------------------------------ models
    def reference_for(self, model: str) -> Reference | None:
        return self.references.get(model) or self.default_reference

    def _model(self, name: str, events: list[dict[str, Any]],
               codes: dict[str, dict[str, str]] | None = None) -> ModelState | None:
        ms = self.models.get(name)
        if ms is not None:
            return ms
        ref = self.reference_for(name)
        if ref is None or len(self.models) >= self.settings.max_models:
            return None
        st = self.settings
        if st.slice_dims is not None:
            dims = list(st.slice_dims)
        elif ref.slices:
            dims = list(ref.slices)
        else:
            keys: set[str] = set()
            for e in events[:1000]:
                s = e.get("slices")
                if isinstance(s, dict):
                    keys.update(str(k) for k in s)
            dims = sorted(keys)
        dims = [d for d in dims if d not in st.slice_on_features] + [f for f in st.slice_on_features if f in ref.features]
        dims = dims[: st.max_slice_dims]
        ms = ModelState(name, ref, st, dims, served_as_text(ref, events) if codes is None else codes)
        self.models[name] = ms
        return ms

    # ------------------------------------------------------------------ ingest
    def ingest_predictions(self, raws: Sequence[bytes], now: float | None = None) -> list[EventError]:
        """Decode and fold in prediction messages; returns the ones that could not be used.

        ``now``: the driver's wall clock (Unix seconds) when it runs live; an event more than
        ``max_clock_skew`` ahead of it is rejected. Without it (replay, notebooks) "ahead" is
        judged against the stream's own progress (:mod:`detector.core.inputs.eventtime`).
        """
        self._now = now if now is not None else self.now
        try:
            return Ingest.ingest_predictions(self, raws)
        finally:
            self._now = None

    def ingest_batch(self, batch: PredictionBatch, now: float | None = None) -> list[EventError]:
        """Fold in an already-decoded batch (benchmarks / shells that decode themselves)."""
        ms = self.models.get(batch.model)
        if ms is None:
            raise EngineError(f"model {batch.model!r} has no state yet; ingest raw messages first")
        self._now = now if now is not None else self.now
        try:
            return self._fold(ms, batch, None)
        finally:
            self._now = None

    def _fold(self, ms: ModelState, b: PredictionBatch, raws: Sequence[bytes] | None) -> list[EventError]:
        st = self.settings
        errors: list[EventError] = []
        ts = b.ts
        now = self._now
        future = self.clock.future(ts, now)
        if future.any():
            for i in np.flatnonzero(future).tolist():
                errors.append(_row_error("future_timestamp", self.clock.ahead_text(float(ts[i]), ts, now), raws, b, i))
        W = st.window
        starts = np.floor(ts / W) * W
        late = self.clock.late(starts)
        keep = ~future & ~late
        n_late = int((late & ~future).sum())
        self.counters.late += n_late
        if not keep.all():
            b = b.take(np.flatnonzero(keep))
            starts = starts[keep]
        if b.n == 0:
            return errors
        self.counters.predictions += b.n
        self.clock.observe(b.ts)
        self.counters.max_event_ts = max(self.counters.max_event_ts, float(b.ts.max()))
        for v, c in b.versions.items():
            if v in ms.versions or len(ms.versions) < 32:
                ms.versions[v] = ms.versions.get(v, 0) + c
            ms.last_version = v
        lay = ms.layout
        row_codes_all = [voc.codes(b.slices.get(d, [None] * b.n)) for d, voc in zip(lay.dims, lay.vocabs, strict=True)]
        uniq = np.unique(starts)
        for s in uniq.tolist():
            ms.discover_candidates(b, None if len(uniq) == 1 else np.flatnonzero(starts == s), s)
            w = ms.windows.get(s)
            if w is None:
                w = WindowCounts.empty(lay, s, s + W)
                ms.windows[s] = w
            if len(uniq) == 1:
                bs, codes = b, row_codes_all
            else:
                idx = np.flatnonzero(starts == s)
                bs, codes = b.take(idx), [c[idx] for c in row_codes_all]
            w.add_batch(lay, bs, codes, ms.cands)
            if ms.joint is not None:
                if w.mv is None:
                    w.mv = ms.joint.counters(lay.n_rows)
                rows = np.stack([c + lay.row_offset(d) for d, c in enumerate(codes)], axis=1) if codes else None
                ms.joint.fold(w.mv, bs.num, bs.ts, rows)
        if self.outcomes is not None:
            self.outcomes.on_predictions(ms, b, row_codes_all)
        return errors

    # ------------------------------------------------------------------ time
    def advance(self, watermark: float | None = None) -> list[Alert]:
        """Close every window that ends at or before the watermark; return the alerts."""
        due = self._due(watermark)
        if due is None:
            return []
        out: list[Alert] = []
        for s, ms in due:
            w = ms.windows.pop(s)
            ms.served.add(w)
            out.extend(self._close(ms, w))
        if self.outcomes is not None:
            out.extend(self.outcomes.advance(self.watermark))
        # one watermark step can close many windows and mature many cohorts (a replay chunk, a backlog):
        # hand the alerts out in the event-time order they were raised in
        out.sort(key=lambda a: a.ts)
        return out

    def _due(self, watermark: float | None) -> list[tuple[float, ModelState]] | None:
        """Windows the watermark has passed, oldest first (None when the watermark did not move)."""
        wm = self.clock.advance_to(watermark)
        if wm is None:
            return None
        due: list[tuple[float, ModelState]] = []
        for ms in self.models.values():
            for s, w in ms.windows.items():
                if w.end <= wm:
                    due.append((s, ms))
        return sorted(due, key=lambda x: (x[0], x[1].name))

    # ------------------------------------------------------------------ scale-out: partials
    def advance_partials(self, watermark: float | None = None) -> list[Partial]:
        """Like :meth:`advance` but hand closed windows out instead of evaluating them.

        A worker that owns some of the input partitions publishes these; an aggregator
        (:meth:`ingest_partial`) merges the partials of every worker and evaluates the merged
        window, so global and per-slice statistics equal those of a single worker.
        """
        out = []
        for s, ms in self._due(watermark) or []:
            w = ms.windows.pop(s)
            ms.served.add(w)
            out.append(Partial.of(ms, w))
        return out

    def ingest_partial(self, p: Partial, source: str) -> None:
        """Merge one worker's partial window (aggregator side)."""
        ms = self.models.get(p.model)
        if ms is None:
            ms = self._model(p.model, [{"slices": dict.fromkeys(p.dims)}], codes=p.codes)  # dims as the sender discovered them
            if ms is None:
                raise EngineError(f"partial for model {p.model!r}, which has no reference here")
            for voc, values in zip(ms.layout.vocabs, p.vocab_values, strict=False):
                voc.codes(list(values))
        if p.codes != ms.codes:
            raise EngineError(f"partial for model {p.model!r} compares {sorted(p.codes)} as categories, this engine "
                              f"{sorted(ms.codes)}: the workers saw different payload types; restart them together")
        w = p.window
        if w.start < self.closed_before:
            self.counters.late += partial_events(w, ms.layout)
            return
        try:
            check_window_fits(w, p.dims, ms.layout, p.cands, ms.cands)
            if ms.joint is not None:
                ms.joint.adopt(w)
        except StateError as exc:
            raise EngineError(str(exc)) from exc
        rowmap = row_map_values(p.dims, p.vocab_values, ms.layout)
        remapped = remap(w, rowmap, ms.layout)
        remap_candidates(remapped, p.cands, ms)
        cur = ms.windows.get(w.start)
        if cur is None:
            ms.windows[w.start] = remapped
        else:
            cur.merge(remapped)
        self.counters.predictions += partial_events(remapped, ms.layout)
        self.high_water = max(self.high_water, w.max_ts)

    def flush(self) -> list[Alert]:
        """Close all open windows (end of a replay)."""
        ends = [w.end for ms in self.models.values() for w in ms.windows.values()]
        if not ends:
            return self.advance(self.high_water) if self.outcomes is not None else []
        return self.advance(max(max(ends), self.high_water + self.settings.window))

    def _close(self, ms: ModelState, w: WindowCounts) -> list[Alert]:
        st = self.settings
        lay = ms.layout
        w.finalize_global(lay)
        ms.last_window = w
        self.counters.windows_closed += 1
        v = build_view(lay, w, ms.seasonal, st)
        add_variants(v, lay, ms.seasonal)  # all traffic also against its usual mix re-weighted (detector.core.checks.remix)
        cands = ms.cands_complete(w.start)
        results = run_checks(lay, v, ms.seasonal, st, cands, ms.cand_ref)
        results.extend(seasonal_checks(lay, v, ms.seasonal, st, cands))
        results.extend(self.adoption.results(ms.name, lay, v, st))
        results, v = collapse(results, v)
        if ms.joint is not None:  # joint structure of the numeric features, same pseudo-rows, same BH
            results.extend(ms.joint.results(w.mv, w.start, v.rows, v.comp))
        # a shifted clock in a slice too quiet for one window: the trailing hours pooled (detector.core.checks.pooled_shift)
        results.extend(pooled_time_shift(lay, v, ms.seasonal, st, ms.day.seen(w.start - POOL), {"num": ms.seasonal.coarse(w), "cat": w.cat}))
        suppressed: list[Finding] = []
        findings = select_findings(results, v, st.fdr_q, suppressed)
        findings.extend(self._change_detectors(ms, w, v))
        # the trailing day (skew vs training without hourly profiles), with the series of this hour's
        # findings and of open hourly incidents as they usually are at this time of day
        hourly = {(f.kind, f.feature) for f in findings + suppressed}
        hourly |= {(k, f or None) for k, f, s in self.alerts.firing_stats(ms.name) if k not in OUTCOME_KINDS and not s.endswith("_24h")}
        ms.day.add(w, ms.seasonal.coarse(w), ms.seasonal, Frozen.of(ms.seasonal, lay, hourly))
        if not v.extra["hourly_skew"] and ms.day.ready:
            daily = daily_checks(lay, v, ms.day.total(), ms.seasonal, st, ms.cands_complete(ms.day.oldest))
            results.extend(daily)
            findings = dedup(findings + select_findings(daily, v, st.fdr_q, suppressed), suppressed)
        findings = _persistent_shifts(ms, lay, findings, suppressed, w.start)
        findings = hold_mixed(findings, v, suppressed)
        specific = {f for k, f in self.alerts.firing_keys(ms.name) if k in SPECIFIC and f}
        findings = hold_generic(findings, specific, suppressed)
        if ms.joint is not None:  # a joint change led by features that moved on their own is theirs
            moved = {f.feature for f in findings + suppressed if f.feature and f.kind != "multivariate_drift"}
            findings = hold_explained(findings, moved | self.alerts.firing_features(ms.name), suppressed)
        ms.last_stats = _gauges(lay, v, results)
        evaluated = {_slice_key(lay.row_label(int(r))) for r, c, n in zip(v.rows, v.comp, v.events, strict=True)
                     if not c and n >= st.min_count_rate}
        version_changed = len(w.versions) > 1 or (ms.last_version is not None and bool(w.versions)
                                                  and ms.last_version not in w.versions)
        kinds = {f.kind for f in findings} | self.alerts.firing_kinds(ms.name)
        pipeline = {f.feature for f in findings if f.kind in PIPELINE_KINDS and f.feature}
        pipeline |= {f for k, f in self.alerts.firing_keys(ms.name) if k in PIPELINE_KINDS and f}
        ctx = {"kinds": kinds, "model_version": _top(w.versions), "version_changed": version_changed,
               "pipeline_features": pipeline}
        window = {"start": _fmt(w.start), "end": _fmt(w.end), "count": w.events, "_start": w.start, "_end": w.end}
        for f in findings:
            if f.feature in ms.codes:
                f.evidence = {**f.evidence, "reconciled": NOTE}
        pairs = [(f, lay.row_label(f.row)) for f in findings]
        hold = {(ms.name, f.kind, f.feature or "", _slice_key(lay.row_label(f.row))) for f in suppressed}
        alerts = self.alerts.update(ms.name, window, pairs, evaluated, ctx, hold=hold)
        for a in alerts:
            if a.state == "firing":
                self.counters.alerts_fired += 1
            else:
                self.counters.alerts_resolved += 1
        # teach the seasonal baseline, except the series that belong to a finding or an open incident
        keys = {(f.kind, f.feature) for f in findings} | {(f.kind, f.feature) for f in suppressed}
        keys |= {(k, f or None) for k, f in self.alerts.firing_keys(ms.name) if k not in OUTCOME_KINDS}
        ms.seasonal.update(w, Frozen.of(ms.seasonal, lay, keys), ms.cand_since <= w.start)
        if ms.joint is not None:
            if not any(k == "multivariate_drift" for k, _ in keys):
                ms.joint.learn(w.mv, w.start)
            ms.joint.closed(w.events)
        ms.last_summary = {"window": window, "events": w.events, "findings": len(findings), "late": w.late}
        return alerts

    def _change_detectors(self, ms: ModelState, w: WindowCounts, v: Any) -> list[Finding]:
        """A river change detector (``settings.change_detector``: ADWIN or Page-Hinkley) per numeric series, on
        the seasonal residual of the window mean (all traffic)."""
        if not ms.detectors or v.base is None:
            return []
        st = self.settings
        lay = ms.layout
        out: list[Finding] = []
        n_nm = v.coarse[0]  # unused placeholder for clarity
        del n_nm
        base_sx, base_nx = v.base["sx"][0], v.base["nx"][0]
        for j, det in enumerate(ms.detectors):
            p = lay.num_all_profiles[j]
            off, size = int(lay.num_offsets[j]), int(lay.num_sizes[j])
            n = float(w.num[0, off : off + size - 1].sum())
            if p is None or n < st.min_count or base_nx[j] < st.min_count or not p.std or p.std <= 0:
                continue
            mean = w.sx[0, j] / n
            bmean = base_sx[j] / base_nx[j]
            resid = (mean - bmean) / p.std
            det.update(resid)
            if det.drift_detected:
                ms.shift_active[j] = True
            if ms.shift_active[j]:
                if abs(resid) < st.thresholds.mean_shift_sd / 2:
                    ms.shift_active[j] = False
                elif abs(resid) >= st.thresholds.mean_shift_sd:
                    name = "score" if j == lay.n_num_blocks - 1 else lay.numeric[j]
                    kind = "score_drift" if j == lay.n_num_blocks - 1 else "feature_drift"
                    out.append(Finding(kind, name, 0, "mean_shift", float(resid), st.thresholds.mean_shift_sd, "warning", None,
                                       {"reference": {"mean": round(float(bmean), 6), "source": "production, same time of day"},
                                        "current": {"mean": round(float(mean), 6)}, "detector": type(det).__name__},
                                       f"{name} mean shifted by {resid:+.2f} training SDs against its usual level at this time "
                                       f"(river {type(det).__name__} change point)", abs(resid)))
        return out

    # ------------------------------------------------------------------ state
    def snapshot(self) -> bytes:
        """All state as a versioned plain-data blob (:mod:`detector.core.state.codec`)."""
        from detector.core.state.snapshot import engine_snapshot

        return engine_snapshot(self)

    def restore(self, data: bytes) -> None:
        """Load a :meth:`snapshot` taken with the same references; :class:`EngineError` if it is not one.

        Safe for untrusted bytes: nothing is executed, sizes are bounded by the input, shapes are
        checked against this engine's layouts. After an error the engine must be discarded.
        """
        from detector.core.state.snapshot import engine_restore

        engine_restore(self, data)

    def merge_windows(self, other: Engine) -> None:
        """Add another worker's open windows (its partitions) into this engine's, per model."""
        for name, oms in other.models.items():
            ms = self.models.get(name)
            if ms is None:
                ms = self._model(name, [{"slices": dict.fromkeys(oms.layout.dims)}], codes=oms.codes)
                if ms is None:
                    raise EngineError(f"cannot merge model {name!r}: no reference configured here")
            rowmap = row_map(oms.layout, ms.layout)
            for s, ow in oms.windows.items():
                w = ms.windows.get(s)
                if w is None:
                    w = WindowCounts.empty(ms.layout, ow.start, ow.end)
                    ms.windows[s] = w
                remapped = remap(ow, rowmap, ms.layout)
                remap_candidates(remapped, oms.cands, ms)
                w.merge(remapped)
        self.high_water = max(self.high_water, other.high_water)


#: a clock shift must be seen again, with the same shift, within this many windows (a one-hour shift of a
#: local-hour feature can fall inside one histogram bin every other hour)
SHIFT_MEMORY = 3
#: hours two sightings may differ by and still be one shift: the check's resolution (a local hour binned
#: into deciles matches k or k +- 1 hours about equally well)
SHIFT_TOLERANCE = 1.0


def _persistent_shifts(ms: ModelState, lay: Layout, findings: list[Finding], suppressed: list[Finding],
                       start: float) -> list[Finding]:
    """A clock shift is a lasting fact of a producer: the same shift (to within the check's resolution,
    :data:`SHIFT_TOLERANCE`), on the same feature and rows, seen again within :data:`SHIFT_MEMORY` windows. One hour that happens to look like another hour of the
    usual day (a weekend or a holiday against weekday history: the branches close, the channel mix
    turns over) does not come back with the same shift; a producer's clock error does. A first
    sighting waits (held: the feature's generic drift waits with it) and is remembered.

    When training showed features that the clock sets (a local hour, a weekday: ``hourly["clock"]``),
    they witness the clock directly: a shift of another feature counts only when a clock feature of
    the same rows shows the same shift (a wrong clock moves them all by as much; a mix that looks like
    another hour does not).
    """
    clock = set((lay.ref.hourly or {}).get("clock") or ())
    shifts = [f for f in findings + suppressed if f.statistic == "time_shift_hours"]
    witnessed = [(f.row, f.value) for f in shifts if f.feature in clock]
    horizon = SHIFT_MEMORY * ms.settings.window
    seen = {k: v for k, v in ms.clock_shifts.items() if start - v[1] < horizon}
    out: list[Finding] = []
    for f in findings:
        if f.statistic != "time_shift_hours":
            out.append(f)
            continue
        key = f"{f.feature}|{_slice_key(lay.row_label(f.row))}"
        prev = seen.get(key)
        again = prev is not None and abs(prev[0] - f.value) <= SHIFT_TOLERANCE and prev[1] < start
        if again and (not clock or f.feature in clock
                      or any(r == f.row and abs(v - f.value) <= SHIFT_TOLERANCE for r, v in witnessed)):
            out.append(f)
        else:
            suppressed.append(f)
        seen[key] = [f.value, start]
    for f in suppressed:  # a shift held by a more specific finding is still a sighting
        if f.statistic == "time_shift_hours":
            seen.setdefault(f"{f.feature}|{_slice_key(lay.row_label(f.row))}", [f.value, start])
    ms.clock_shifts = seen
    return out


def _gauges(lay: Layout, v: Any, results: list[Any]) -> dict[tuple[str, str, str, str], tuple[float, dict[str, str], float]]:
    """Latest tested value per (kind, statistic, feature, slice) for the metrics exporter."""
    out: dict[tuple[str, str, str, str], tuple[float, dict[str, str], float]] = {}
    real = np.flatnonzero(~v.comp)
    labels = {int(k): lay.row_label(int(v.rows[k])) for k in real}
    keys = {k: _slice_key(sl) for k, sl in labels.items()}
    for r in results:
        ks = real[r.tested[real]]
        if ks.size == 0:
            continue
        vals = r.value[ks].tolist()
        thr_arr = r.threshold[ks].tolist() if isinstance(r.threshold, np.ndarray) else None
        feat = r.feature or ""
        for i, k in enumerate(ks.tolist()):
            val = vals[i]
            if not math.isfinite(val):
                continue
            thr = thr_arr[i] if thr_arr is not None else float(r.threshold)
            out[(r.kind, r.statistic, feat, keys[k])] = (val, labels[k], thr)
    return out


def _row_error(reason: str, detail: str, raws: Sequence[bytes] | None, b: PredictionBatch, i: int) -> EventError:
    """An error for row ``i`` of a decoded batch, with its message's bytes (or its envelope item's)."""
    msg = int(b.origin[i]) if b.origin is not None else -1
    item = int(b.item[i]) if b.item is not None else -1
    return row_error(reason, detail, raws, msg, item)


def _top(d: dict[str, int]) -> str | None:
    return max(d.items(), key=lambda kv: kv[1])[0] if d else None


def _fmt(t: float) -> str:
    from detector.core.inputs.timeparse import format_ts

    return format_ts(t)


def _slice_key(sl: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(sl.items()))


__all__ += ["Counters", "ModelState", "Partial", "RATE", "SCORE"]
