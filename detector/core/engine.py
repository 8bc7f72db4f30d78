"""The detection core's driver: ``Engine.ingest_*`` folds batches in, ``Engine.advance`` closes windows.

Synchronous, deterministic and I/O-free: the Kafka worker, ``replay`` and the tests drive the
same object with the same settings, so a replay of logged traffic yields the same alerts as the
live sidecar. Time is *event time* (:mod:`detector.core.inputs.eventtime`): a window
``[start, start + window)`` closes when the watermark (the stream's robust progress minus
``allowed_lateness``) passes its end; an event for a window that already closed is *late* (counted,
not folded in), and an event too far ahead of the stream (or of the live wall clock) is rejected
as a bad clock.

What the engine keeps per model is a :class:`~detector.core.modelstate.ModelState` (open windows,
seasonal baseline, candidates, change detectors), bounded and serialisable as declared plain data
(``snapshot``/``restore``, :mod:`detector.core.state.snapshot`); a closed window is evaluated by
:func:`detector.core.evaluate.close_window`. Across workers, closed windows travel as partials
(``advance_partials`` on the worker that folded them, ``ingest_partial`` on the one that evaluates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detector.core.checks.adoption import Adoption
from detector.core.decisions.alerts import Alert, AlertManager
from detector.core.errors import EngineError
from detector.core.evaluate import close_window
from detector.core.guard import guarded
from detector.core.inputs.events import EventError, PredictionBatch
from detector.core.inputs.eventtime import EventClock
from detector.core.inputs.fastdecode import TypedDecoder
from detector.core.inputs.ingest import Ingest, gc_paused
from detector.core.inputs.window import WindowCounts
from detector.core.inputs.wire import row_error
from detector.core.modelstate import Counters, ModelState
from detector.core.reference.profile import Reference
from detector.core.reference.reconcile import served_as_text
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


def _clock(name: str, doc: str) -> Any:
    """An engine attribute that is its event clock's ``name``."""
    return property(lambda self: getattr(self.clock, name), lambda self, v: setattr(self.clock, name, v), doc=doc)


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
    high_water = _clock("progress", "The stream's robust event-time progress (not the largest timestamp seen).")
    watermark = _clock("watermark", "Windows ending at or before it are closed.")
    closed_before = _clock("closed_before", "Events of windows starting before it are late.")

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
            if ms.joint is None and ms.estimate is None:
                continue
            rows = np.stack([c + lay.row_offset(d) for d, c in enumerate(codes)], axis=1) if codes else None
            if ms.joint is not None:
                if w.mv is None:
                    w.mv = ms.joint.counters(lay.n_rows)
                ms.joint.fold(w.mv, bs.num, bs.ts, rows)
            if ms.estimate is not None:  # performance estimated before labels (detector.core.outcomes.estimate.monitor)
                if w.est is None:
                    w.est = ms.estimate.counters(lay.n_rows)
                ms.estimate.fold(w.est, bs, rows)
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
            # the checks are guarded one by one (detector.core.guard); this catches the rest of the
            # evaluation, so a window that cannot be evaluated is given up on instead of stalling the stream
            guard = guarded(self.counters, ms.name, w.start, w.end)
            out.extend(guard("window_close", lambda ms=ms, w=w: self._close(ms, w), []))
        if self.outcomes is not None:
            wm = self.watermark
            guard = guarded(self.counters, "", None, wm)
            out.extend(guard("outcomes", lambda: self.outcomes.advance(wm), []))
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
            if ms.estimate is not None:
                ms.estimate.adopt(w.est)
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
        return close_window(ms, w, self.settings, self.alerts, self.adoption, self.counters)

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



def _row_error(reason: str, detail: str, raws: Sequence[bytes] | None, b: PredictionBatch, i: int) -> EventError:
    """An error for row ``i`` of a decoded batch, with its message's bytes (or its envelope item's)."""
    msg = int(b.origin[i]) if b.origin is not None else -1
    item = int(b.item[i]) if b.item is not None else -1
    return row_error(reason, detail, raws, msg, item)
