"""Ingest: raw messages -> validated, decoded batches -> the engine's fold. Never raises on input.

:class:`Ingest` is the part of :class:`~detector.core.engine.Engine` that takes bytes in. For
predictions, clean events of the usual model are read as columns by the C scanner
(:mod:`detector.core.inputs.nativedecode`; where it is not built, by Arrow's JSON reader,
:mod:`detector.core.inputs.arrowdecode`), what it leaves is decoded typed straight from bytes
(:mod:`detector.core.inputs.fastdecode`), and every other message takes the general path
(:mod:`detector.core.inputs.wire`, :mod:`detector.core.inputs.validate`, :mod:`detector.core.inputs.events`), which
owns the error records. Labels and offline features take the general path
(:mod:`detector.core.inputs.feeds`). A defect of ours that raises on some event is contained: decoding
is pure, so the batch is decoded again event by event and only the event that raises is
dead-lettered (``internal_error``); a failing fold dead-letters its batch. Either way the
caller gets error records, never an exception, and the worker goes on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

try:  # the C scanner is built with the package where a C compiler is; else Arrow's reader
    from detector.core.inputs.nativedecode import NativeDecoder
except ImportError:  # pragma: no cover - an install without the compiled extension
    NativeDecoder = None  # type: ignore[assignment,misc]
try:  # the columnar reader needs pyarrow (the `fast` extra); without it the typed path decodes everything
    from detector.core.inputs.arrowdecode import ArrowDecoder
except ImportError:  # pragma: no cover - exercised by the wheel smoke test without extras
    ArrowDecoder = None  # type: ignore[assignment,misc]
from detector.core.inputs.batch import concat
from detector.core.inputs.events import (
    EventError,
    PredictionBatch,
    decode_feature_events,
    decode_labels,
    parse_messages,
    validate_predictions,
)
from detector.core.inputs.fastdecode import TypedDecoder
from detector.core.inputs.wire import reject, row_error

__all__ = ["Ingest", "gc_paused", "ARROW_MIN_BYTES"]

# Smaller batches skip the columnar reader: each call of it has a fixed cost of ~0.5-2 ms (reader
# set-up, a dozen compute kernels), so below ~1,000-1,500 events of 600 bytes the typed path is
# faster (measured interleaved on one core: typed/Arrow time 0.44 at 250 events, 0.67 at 500, ~1.0
# at 1,000-1,500, 1.3-1.5 from 2,000 on). Counted in bytes, so an envelope counts as its events.
ARROW_MIN_BYTES = 768 * 1024


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is decoded.

    A batch allocates tens of thousands of short-lived, acyclic dicts and tuples (freed by
    reference counting anyway); letting the cyclic collector scan them on every allocation
    threshold roughly doubles decode time. The previous state is always restored.
    """
    was = gc.isenabled()
    if was:
        gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _size(raws: Sequence[bytes]) -> int:
    """Bytes of the batch (0 when it holds something without a length: the other paths take those)."""
    try:
        return sum(map(len, raws))
    except TypeError:
        return 0


_INTERNAL = ("skewwatch could not process this event (a bug: please report it with the event); "
             "it was set aside and the rest of the batch went on")


class Ingest:
    """The ``ingest_*`` half of the engine (see the module docstring). Expects the engine's
    ``settings``, ``counters``, ``models``, ``outcomes``, ``_model``, ``reference_for``, ``_fold``."""

    settings: Any
    counters: Any
    models: dict[str, Any]
    outcomes: Any
    _typed: TypedDecoder | None = None
    _arrow: ArrowDecoder | None = None
    _arrow_skip: int = 0  # batches to leave to the typed path after Arrow refused one (doubling, bounded)
    _arrow_backoff: int = 0

    @property
    def fast_decoders_chosen(self) -> bool:
        """Whether the typed (and columnar) decoders of the usual model are chosen: they are after
        a batch the general path decoded most of (see :meth:`_choose_typed`)."""
        return self._typed is not None

    def ingest_predictions(self, raws: Sequence[bytes]) -> list[EventError]:
        """Decode and fold in prediction messages; returns the ones that could not be used."""
        with gc_paused():
            return self._ingest_predictions(raws)

    def _ingest_predictions(self, raws: Sequence[bytes]) -> list[EventError]:
        st = self.settings
        pre, rest0 = self._arrow_decode(raws)
        typed, rest = self._typed_decode(raws if pre is None else [raws[i] for i in rest0])
        if pre is not None:  # message indexes of the subset -> of the batch
            if typed is not None:
                typed.origin = [rest0[o] for o in typed.origin]
            rest = [rest0[i] for i in rest]
        sub = raws if len(rest) == len(raws) else [raws[i] for i in rest]
        try:
            events, origin, errors = parse_messages(sub)
            if sub is not raws:  # message indexes of the subset -> of the batch
                origin = [rest[o] for o in origin]
                for e in errors:
                    e.index = rest[e.index] if e.index >= 0 else e.index
            by_model, errs2, origins, items = validate_predictions(events, origin, raws, st.min_epoch,
                                                                   st.max_id_bytes, st.max_value_bytes)
        except Exception:  # noqa: BLE001 - a bug of ours, not the producer's: isolate the message that hits it
            return self._isolate(raws)
        errors.extend(errs2)
        if typed is not None and typed.events:
            by_model.setdefault(self._typed.model, [])  # type: ignore[union-attr]
        if pre is not None:
            by_model.setdefault(pre.model, [])
        for model, evs in by_model.items():
            org = origins.get(model, [])
            ms = self._model(model, evs)
            if ms is None:
                why = (f"no reference for model {model!r}; add it to the config's models (or set default_reference)"
                       if self.reference_for(model) is None else
                       f"model {model!r} would exceed detector.max_models={st.max_models}; raise it if intended")
                errors.extend(reject("unknown_model", why, e, raws, org, i) for i, e in enumerate(evs))
                continue
            fast = typed if typed is not None and typed.events and model == self._typed.model else None  # type: ignore[union-attr]
            batch = self._decode(ms, model, evs, org, items.get(model, []), raws, errors, fast,
                                 pre if pre is not None and pre.model == model else None)
            if batch is None:
                continue
            self.counters.count_clipped(batch.clipped)
            try:
                errors.extend(self._fold(ms, batch, raws))
            except Exception:  # noqa: BLE001 - a bug of ours: the batch is dead-lettered, the worker goes on
                assert batch.origin is not None and batch.item is not None
                pairs = sorted(set(zip(batch.origin.tolist(), batch.item.tolist(), strict=True)))
                errors.extend(row_error("internal_error", _INTERNAL, raws, o, it) for o, it in pairs)
        self._choose_typed(by_model, len(raws), (0 if typed is None else len(typed.events)) + (0 if pre is None else pre.n))
        self.counters.count_errors(errors)
        return errors

    def _isolate(self, raws: Sequence[bytes], ingest: Any = None) -> list[EventError]:
        """Ingest message by message (``ingest``: predictions by default), so that a defect of ours
        costs only the message that hits it."""
        if len(raws) == 1:
            errors = [EventError("internal_error", _INTERNAL, bytes(raws[0] or b""), 0)]
            self.counters.count_errors(errors)
            return errors
        out: list[EventError] = []
        for i, raw in enumerate(raws):
            for e in (ingest or self._ingest_predictions)([raw]):
                e.index = i if e.index >= 0 else e.index
                out.append(e)
        return out  # already counted, per message

    def _arrow_decode(self, raws: Sequence[bytes]) -> tuple[PredictionBatch | None, list[int]]:
        """Clean events of the usual model read as columns (the C scanner of
        detector.core.inputs.nativedecode, else Arrow's reader of detector.core.inputs.arrowdecode),
        and the messages left for the typed and general paths. Small batches skip Arrow's reader (its
        fixed cost per call is that of ~1,000 events: :data:`ARROW_MIN_BYTES`), and the next batches
        after one that was mostly refused skip either."""
        ad = self._arrow
        st = self.settings
        if ad is None or not st.columnar_decode or not st.typed_decode:
            return None, list(range(len(raws)))
        floor = getattr(ad, "min_bytes", ARROW_MIN_BYTES)  # the C scanner has no fixed cost to amortise: 0
        if floor and _size(raws) < floor:
            return None, list(range(len(raws)))
        if self._arrow_skip > 0:
            self._arrow_skip -= 1
            return None, list(range(len(raws)))
        b, rest = ad.decode(raws, st.min_epoch, st.max_id_bytes, st.max_value_bytes)
        if b is None or len(rest) > len(raws) // 2:  # mostly refused: give the typed path a run of batches
            self._arrow_backoff = min(max(1, 2 * self._arrow_backoff), 64)
            self._arrow_skip = self._arrow_backoff
        else:
            self._arrow_backoff = 0
        return b, rest

    def _typed_decode(self, raws: Sequence[bytes]) -> tuple[Any, list[int]]:
        """Clean events of the usual model, decoded typed from bytes (see detector.core.inputs.fastdecode),
        and the messages left for the general path."""
        td = self._typed
        if td is None or not self.settings.typed_decode:
            return None, list(range(len(raws)))
        st = self.settings
        try:
            return td.decode(raws, st.min_epoch, st.max_id_bytes, st.max_value_bytes)
        except Exception:  # noqa: BLE001 - the general path decides about every message
            return None, list(range(len(raws)))

    def label_router(self) -> Any:
        """Which task decodes a label (:func:`detector.core.outcomes.tasks.routing.label_router`); None = all binary."""
        from detector.core.outcomes.tasks.routing import label_router

        refs = getattr(self, "references", {})
        key = (tuple(map(id, refs.values())), id(getattr(self, "default_reference", None)))
        if getattr(self, "_router_key", None) != key:
            self._router_key = key
            self._router = label_router(refs, getattr(self, "default_reference", None))
        return self._router

    def _choose_typed(self, by_model: dict[str, list[Any]], n_msgs: int, n_typed: int) -> None:
        """Use the typed decoder of the model most events belong to, once the general path did
        most of a batch's work for it."""
        if not by_model or (n_typed > 0 and n_typed >= n_msgs // 2):  # (a batch of one: 0 >= 0, yet all general)
            return
        top = max(by_model, key=lambda m: len(by_model[m]))
        ms = self.models.get(top)
        if ms is not None and ms.decoder.task != "binary":
            return  # multiclass / regression outputs are read by the general path (the typed ones know the score)
        if ms is not None and len(by_model[top]) >= n_msgs // 2 and (self._typed is None or self._typed.model != top):
            if ms.typed is None:
                sch = ms.layout.schema
                try:
                    ms.typed = TypedDecoder(top, sch.numeric, sch.categorical)
                except Exception:  # noqa: BLE001 - a schema msgspec cannot express: the general path does it all
                    return
                ms.arrow = None
                for cls in (NativeDecoder, ArrowDecoder):  # the first that can read this schema
                    try:
                        ms.arrow = None if cls is None else cls(top, sch, ms.layout.dims, self.settings.no_action_decisions)
                    except Exception:  # noqa: BLE001 - a schema it cannot express: the next one, else the typed path
                        ms.arrow = None
                    if ms.arrow is not None:
                        break
            self._typed = ms.typed
            self._arrow = ms.arrow
            self._arrow_skip = self._arrow_backoff = 0

    def _decode(self, ms: Any, model: str, evs: list[dict[str, Any]], org: list[int], its: list[int],
                raws: Sequence[bytes], errors: list[EventError], typed: Any = None,
                pre: PredictionBatch | None = None) -> PredictionBatch | None:
        """Columns of one model's validated events (and of its typed ones, after those Arrow read).
        Decoding is pure, so should a bug of ours raise on some event, each event is decoded alone
        to isolate it."""
        dims = ms.layout.dims
        parts = [pre] if pre is not None else []
        if typed is not None:
            try:
                parts.append(ms.decoder.decode_typed(model, typed, self._typed, dims))
            except Exception:  # noqa: BLE001 - the general path takes these events instead
                idx = sorted(set(typed.origin))
                more, morg, errs = parse_messages([raws[i] for i in idx])
                st = self.settings
                by_model, errs2, origins, items = validate_predictions(more, [idx[o] for o in morg], raws,
                                                                       st.min_epoch, st.max_id_bytes, st.max_value_bytes)
                errors.extend(errs2)
                evs, org = evs + by_model.get(model, []), org + origins.get(model, [])
                its = its + items.get(model, [])
        if evs:
            try:
                parts.append(ms.decoder.decode(model, evs, dims, org, its))
            except Exception:  # noqa: BLE001 - see the docstring
                parts.append(self._decode_alone(ms, model, evs, org, its, raws, errors))
        parts = [p for p in parts if p is not None and p.n]
        return concat(parts) if parts else None

    def _decode_alone(self, ms: Any, model: str, evs: list[dict[str, Any]], org: list[int], its: list[int],
                      raws: Sequence[bytes], errors: list[EventError]) -> PredictionBatch | None:
        dims = ms.layout.dims
        good = []
        for i, e in enumerate(evs):
            try:
                ms.decoder.decode(model, [e], dims, [org[i]], [its[i]])
                good.append(i)
            except Exception:  # noqa: BLE001
                errors.append(reject("internal_error", _INTERNAL, e, raws, org, i))
        try:
            return (ms.decoder.decode(model, [evs[i] for i in good], dims, [org[i] for i in good], [its[i] for i in good])
                    if good else None)
        except Exception:  # noqa: BLE001 - events that decode alone but not together
            errors.extend(reject("internal_error", _INTERNAL, evs[i], raws, org, i) for i in good)
            return None

    def ingest_labels(self, raws: Sequence[bytes]) -> list[EventError]:
        """Decode label messages (by the task of the model they name) and hand them to the outcome
        monitor; returns the ones that could not be used."""
        route = self.label_router()
        decode = decode_labels if route is None else partial(decode_labels, tasks=route)
        return self._ingest_side(raws, decode, "on_labels", "labels")

    def ingest_features(self, raws: Sequence[bytes]) -> list[EventError]:
        """Decode offline feature messages and hand them to the parity join; returns the ones that could not be used."""
        return self._ingest_side(raws, decode_feature_events, "on_features", "feature_events")

    def _ingest_side(self, raws: Sequence[bytes], decode: Any, sink: str, counter: str) -> list[EventError]:
        """Labels or offline features: decode (pure; a message that makes it raise is isolated
        and dead-lettered alone), count, hand to the outcome monitor's ``sink`` method. Never raises."""
        with gc_paused():
            return self._side(raws, decode, sink, counter)

    def _side(self, raws: Sequence[bytes], decode: Any, sink: str, counter: str) -> list[EventError]:
        st = self.settings
        try:
            events, origin, errors = parse_messages(raws)
            batch, errs = decode(events, origin, raws, st.min_epoch, st.max_id_bytes, st.max_value_bytes)
        except Exception:  # noqa: BLE001 - a bug of ours: isolate the message that hits it
            return self._isolate(raws, lambda one: self._side(one, decode, sink, counter))
        errors.extend(errs)
        setattr(self.counters, counter, getattr(self.counters, counter) + batch.n)
        if self.outcomes is not None and batch.n:
            try:
                getattr(self.outcomes, sink)(batch)
            except Exception:  # noqa: BLE001 - a bug of ours: dead-letter what was handed over, go on
                setattr(self.counters, counter, getattr(self.counters, counter) - batch.n)
                failed = {e.index for e in errors}
                errors.extend(EventError("internal_error", _INTERNAL, bytes(raws[i] or b""), i)
                              for i in sorted(set(origin) - failed))
        self.counters.count_errors(errors)
        return errors
