"""The detection core: ``Engine.ingest_*`` folds batches in, ``Engine.advance`` closes windows.

Synchronous, deterministic and I/O-free: the Kafka worker, ``replay`` and the tests drive the
same object with the same settings, so a replay of logged traffic yields the same alerts as the
live sidecar. Time is *event time*: a window ``[start, start + window)`` closes when the
watermark (largest prediction timestamp seen minus ``allowed_lateness``) passes its end; an
event for a window that already closed is *late* (counted, not folded in), and an event further
than ``max_future`` ahead of the stream is rejected as a bad clock.

State per model: open windows (:class:`~detector.core.window.WindowCounts`), the seasonal
baseline, change detectors, default-value candidates and the alert state. All of it is
bounded (slice and category top-K, fixed bins) and serialisable as declared plain data
(``snapshot``/``restore``, :mod:`detector.core.state`). Across workers, closed windows travel as
partials (``advance_partials`` on the worker that folded them, ``ingest_partial`` on the one
that evaluates).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.adoption import Adoption
from detector.core.alerts import OUTCOME_KINDS, PARITY_KINDS, Alert, AlertManager
from detector.core.checks import build_view, run_checks
from detector.core.events import (
    EventError,
    PredictionBatch,
    PredictionDecoder,
)
from detector.core.fastdecode import TypedDecoder
from detector.core.ingest import Ingest, gc_paused
from detector.core.layout import SCORE, Layout
from detector.core.partials import (
    Partial,
    check_window_fits,
    partial_events,
    remap,
    remap_candidates,
    row_map,
    row_map_values,
)
from detector.core.reference import Reference, value_share
from detector.core.seasonal import SeasonalBaseline
from detector.core.select import Finding, select_findings
from detector.core.served import ServedTotals
from detector.core.settings import DetectorSettings
from detector.core.state import StateError
from detector.core.window import N_CAND, RATE, WindowCounts
from detector.core.wire import row_error

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

    def __init__(self, name: str, ref: Reference, settings: DetectorSettings, dims: list[str]) -> None:
        self.name = name
        self.settings = settings
        self.layout = Layout(ref, dims, settings.slice_top_k, settings.category_top_k)
        self.decoder = PredictionDecoder(self.layout.schema, settings.no_action_decisions, settings.max_unknown_features,
                                         settings.max_value_bytes)
        self.windows: dict[float, WindowCounts] = {}
        self.served = ServedTotals(self.layout)  # lifetime latency / score histograms (exporter)
        slots = settings.season_slots
        period = 604800.0 if settings.seasonality == "weekly" else 86400.0
        slot_len = period / slots if slots > 1 else 86400.0
        self.seasonal = SeasonalBaseline(self.layout, slots, slot_len, settings.seasonal_decay, settings.window)
        nb = self.layout.n_num_blocks
        self.cands = np.full((nb, N_CAND), np.nan)
        self.cand_ref = np.zeros((nb, N_CAND))
        for j, p in enumerate(self.layout.num_all_profiles):
            if p is not None and p.top_value is not None and p.top_share >= 0.01:
                self.cands[j, 0] = p.top_value
                self.cand_ref[j, 0] = p.top_share
        self.detectors = _make_detectors(settings, nb)
        self.shift_active = np.zeros(nb, dtype=bool)
        self.last_summary: dict[str, Any] = {}
        # latest value of every tested statistic: (kind, statistic, feature, slice key) -> (value, slice, threshold)
        self.last_stats: dict[tuple[str, str, str, str], tuple[float, dict[str, str], float]] = {}
        self.versions: dict[str, int] = {}
        self.last_version: str | None = None
        # the last closed window's counts (bounded: one window), for the status page and report charts
        self.last_window: WindowCounts | None = None
        self.typed: TypedDecoder | None = None  # built when this model's events dominate a batch
        self.arrow: Any = None  # its columnar reader (detector.core.arrowdecode), built with it

    # ---------------------------------------------------------------- candidates for value spikes
    def discover_candidates(self, b: PredictionBatch) -> None:
        n = b.n
        if n < 50:
            return
        m = min(n, 256)
        X = np.concatenate([b.num[:m], b.score[:m, None]], axis=1)
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
            k = int(free[0])
            row[k] = v
            self.cand_ref[j, k] = value_share(self.layout.num_all_profiles[j], v)


def _make_detectors(settings: DetectorSettings, n: int) -> list[Any]:
    if settings.change_detector == "none":
        return []
    from detector.core.drift_state import ADWIN, PageHinkley  # river's, with plain restorable state

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
        self.watermark = float("-inf")
        self.now: float | None = None  # a live driver's wall clock: "future" is then ahead of it (+ max_future)
        self.high_water = float("-inf")  # largest accepted prediction ts
        self.closed_before = float("-inf")  # windows starting before this are closed
        self.outcomes: Any = None  # label join / outcome monitors (attached by detector.core.outcomes)
        self.adoption = Adoption()  # override / review-capacity checks (capacities: detector.core.adoption.attach_adoption)
        self._typed: TypedDecoder | None = None  # typed decoder of the usual model (detector.core.fastdecode)

    # ------------------------------------------------------------------ models
    def reference_for(self, model: str) -> Reference | None:
        return self.references.get(model) or self.default_reference

    def _model(self, name: str, events: list[dict[str, Any]]) -> ModelState | None:
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
        ms = ModelState(name, ref, st, dims)
        self.models[name] = ms
        return ms

    # ------------------------------------------------------------------ ingest
    def ingest_batch(self, batch: PredictionBatch) -> list[EventError]:
        """Fold in an already-decoded batch (benchmarks / shells that decode themselves)."""
        ms = self.models.get(batch.model)
        if ms is None:
            raise EngineError(f"model {batch.model!r} has no state yet; ingest raw messages first")
        return self._fold(ms, batch, None)

    def _fold(self, ms: ModelState, b: PredictionBatch, raws: Sequence[bytes] | None) -> list[EventError]:
        st = self.settings
        errors: list[EventError] = []
        ts = b.ts
        anchor = self.high_water if math.isfinite(self.high_water) else float(np.median(ts))
        if self.now is not None:  # live: ahead of the wall clock (a lone far-future event cannot anchor anything)
            anchor = self.now
        future = ts > anchor + st.max_future
        if future.any():
            for i in np.flatnonzero(future).tolist():
                errors.append(_row_error(
                    "future_timestamp", f"ts is {(ts[i] - anchor) / 3600:.1f} h ahead of the "
                    f"{'wall clock' if self.now is not None else 'stream'}; check the producer clock", raws, b, i))
        W = st.window
        starts = np.floor(ts / W) * W
        late = starts < self.closed_before
        keep = ~future & ~late
        n_late = int((late & ~future).sum())
        self.counters.late += n_late
        if not keep.all():
            b = b.take(np.flatnonzero(keep))
            starts = starts[keep]
        if b.n == 0:
            return errors
        self.counters.predictions += b.n
        self.high_water = max(self.high_water, float(b.ts.max()))
        self.counters.max_event_ts = max(self.counters.max_event_ts, self.high_water)
        for v, c in b.versions.items():
            if v in ms.versions or len(ms.versions) < 32:
                ms.versions[v] = ms.versions.get(v, 0) + c
            ms.last_version = v
        ms.discover_candidates(b)
        lay = ms.layout
        row_codes_all = [voc.codes(b.slices.get(d, [None] * b.n)) for d, voc in zip(lay.dims, lay.vocabs, strict=True)]
        uniq = np.unique(starts)
        for s in uniq.tolist():
            w = ms.windows.get(s)
            if w is None:
                w = WindowCounts.empty(lay, s, s + W)
                ms.windows[s] = w
            if len(uniq) == 1:
                w.add_batch(lay, b, row_codes_all, ms.cands)
            else:
                idx = np.flatnonzero(starts == s)
                w.add_batch(lay, b.take(idx), [c[idx] for c in row_codes_all], ms.cands)
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
        return out

    def _due(self, watermark: float | None) -> list[tuple[float, ModelState]] | None:
        """Windows the watermark has passed (None when the watermark did not move)."""
        if watermark is None:
            watermark = self.high_water - self.settings.allowed_lateness
        if watermark <= self.watermark:
            return None
        self.watermark = watermark
        due: list[tuple[float, ModelState]] = []
        for ms in self.models.values():
            for s, w in ms.windows.items():
                if w.end <= watermark:
                    due.append((s, ms))
        W = self.settings.window
        self.closed_before = max(self.closed_before, math.floor(watermark / W) * W)
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
            ms = self._model(p.model, [{"slices": dict.fromkeys(p.dims)}])  # dims as the sender discovered them
            if ms is None:
                raise EngineError(f"partial for model {p.model!r}, which has no reference here")
            for voc, values in zip(ms.layout.vocabs, p.vocab_values, strict=False):
                voc.codes(list(values))
        w = p.window
        if w.start < self.closed_before:
            self.counters.late += partial_events(w, ms.layout)
            return
        try:
            check_window_fits(w, p.dims, ms.layout, p.cands, ms.cands)
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
        results = run_checks(lay, v, ms.seasonal, st, ms.cands, ms.cand_ref)
        results.extend(self.adoption.results(ms.name, lay, v, st))
        ms.last_stats = _gauges(lay, v, results)
        suppressed: list[Finding] = []
        findings = select_findings(results, v, st.fdr_q, suppressed)
        findings.extend(self._change_detectors(ms, w, v))
        evaluated = {_slice_key(lay.row_label(int(r))) for r, c, n in zip(v.rows, v.comp, v.events, strict=True)
                     if not c and n >= st.min_count_rate}
        version_changed = len(w.versions) > 1 or (ms.last_version is not None and bool(w.versions)
                                                  and ms.last_version not in w.versions)
        kinds = {f.kind for f in findings} | self.alerts.firing_kinds(ms.name)
        ctx = {"kinds": kinds, "model_version": _top(w.versions), "version_changed": version_changed}
        window = {"start": _fmt(w.start), "end": _fmt(w.end), "count": w.events, "_start": w.start, "_end": w.end}
        pairs = [(f, lay.row_label(f.row)) for f in findings]
        hold = {(ms.name, f.kind, f.feature or "", _slice_key(lay.row_label(f.row))) for f in suppressed}
        alerts = self.alerts.update(ms.name, window, pairs, evaluated, ctx, hold=hold)
        for a in alerts:
            if a.state == "firing":
                self.counters.alerts_fired += 1
            else:
                self.counters.alerts_resolved += 1
        # teach the seasonal baseline, except from windows that belong to an open incident
        if not findings and not self.alerts.firing_kinds(ms.name) - OUTCOME_KINDS - PARITY_KINDS:
            nb = lay.n_num_blocks
            ms.seasonal.update(w, np.zeros(nb, dtype=bool), np.zeros(lay.cat_total, dtype=bool), False)
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
        """All state as a versioned plain-data blob (:mod:`detector.core.state`)."""
        from detector.core.snapshot import engine_snapshot

        return engine_snapshot(self)

    def restore(self, data: bytes) -> None:
        """Load a :meth:`snapshot` taken with the same references; :class:`EngineError` if it is not one.

        Safe for untrusted bytes: nothing is executed, sizes are bounded by the input, shapes are
        checked against this engine's layouts. After an error the engine must be discarded.
        """
        from detector.core.snapshot import engine_restore

        engine_restore(self, data)

    def merge_windows(self, other: Engine) -> None:
        """Add another worker's open windows (its partitions) into this engine's, per model."""
        for name, oms in other.models.items():
            ms = self.models.get(name)
            if ms is None:
                ms = self._model(name, [{"slices": dict.fromkeys(oms.layout.dims)}])
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
    from detector.core.timeparse import format_ts

    return format_ts(t)


def _slice_key(sl: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(sl.items()))


__all__ += ["Counters", "ModelState", "Partial", "RATE", "SCORE"]
