"""What a sidecar worker does with its batches, without the transport (testable without Kafka).

A worker owns some input partitions. Its *worker engine* folds prediction, label and feature
batches (skipping offsets its checkpoint already covers, so at-least-once redelivery is not
double counted) and hands closed windows out as partials. The *aggregator engine* merges the
partials of every worker in the consumer group and evaluates the merged windows, so global and
per-slice statistics equal those of one worker; it closes a window once the slowest live worker's
watermark has passed it. Both engines and the offsets snapshot together into one checkpoint.
"""

from __future__ import annotations

import logging
import pickle
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from detector.config import Config
from detector.core.alerts import Alert
from detector.core.engine import Engine, Partial
from detector.core.events import EventError
from detector.core.reference import Reference

__all__ = ["Sidecar", "Message", "Outbox"]

log = logging.getLogger("skewwatch.sidecar")
CHECKPOINT_VERSION = 1


@dataclass(slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


@dataclass
class Outbox:
    """What the transport must send after a batch."""

    alerts: list[Alert] = field(default_factory=list)
    dlq: list[tuple[Message, EventError]] = field(default_factory=list)
    partials: list[Partial] = field(default_factory=list)
    counterexamples: list[dict[str, Any]] = field(default_factory=list)  # worst FP/FN of matured cohorts


class Sidecar:
    def __init__(self, cfg: Config, refs: dict[str, Reference], default: Reference | None, worker_id: str) -> None:
        self.cfg = cfg
        self.worker_id = worker_id
        self.engine = Engine(cfg.detector, refs, default)
        self.agg = Engine(cfg.detector, refs, default)
        try:
            from detector.core.outcomes import attach_outcomes
        except ImportError:  # pragma: no cover - outcomes are part of the package
            attach_outcomes = None
        if attach_outcomes is not None:
            attach_outcomes(self.engine, cfg)
        from detector.core.adoption import attach_adoption
        from detector.core.counterexamples import library_of

        attach_adoption(self.agg, cfg)  # review capacities: the aggregator evaluates the windows
        self._library = library_of(self.engine)
        # one alert state per process: outcome triage sees the input alerts the aggregator raised
        self.engine.alerts = self.agg.alerts
        self.offsets: dict[str, int] = {}  # "topic:partition" -> last folded offset
        self.sources: dict[str, tuple[float, float]] = {}  # worker id -> (watermark, wall time seen)
        self.duplicates = 0
        self.dlq_total = 0
        self.last_batch_wall = time.monotonic()
        self.source_timeout = max(60.0, 4 * cfg.checkpoint_interval)
        # per input partition of the predictions topic: largest event ts folded, wall time of its last
        # message (or of its assignment). The worker's watermark is the slowest active partition's,
        # so a backlog read unevenly across partitions is not dropped as late (see _watermark).
        self.part_hw: dict[str, float] = {}
        self.part_seen: dict[str, float] = {}
        self.partition_idle = 10.0

    # ------------------------------------------------------------------ input side
    def _fresh(self, msgs: list[Message], out: Outbox) -> list[Message]:
        keep: list[Message] = []
        for m in msgs:
            k = f"{m.topic}:{m.partition}"
            if m.offset <= self.offsets.get(k, -1):
                self.duplicates += 1
                continue
            self.offsets[k] = m.offset
            if m.value is None or len(m.value) == 0:
                out.dlq.append((m, EventError("empty_message", "empty message or tombstone; send a JSON object")))
                continue
            if len(m.value) > self.cfg.kafka.max_message_bytes:
                out.dlq.append((m, EventError("oversized", f"message of {len(m.value)} bytes exceeds kafka.max_message_bytes="
                                                           f"{self.cfg.kafka.max_message_bytes}")))
                continue
            keep.append(m)
        return keep

    def _route_errors(self, msgs: list[Message], errors: list[EventError], out: Outbox) -> None:
        """Each error to the DLQ with its source message; for an item of a batch envelope the
        dead letter carries just that item (its batch-mates were folded in: re-driving the
        whole envelope would count them twice)."""
        for e in errors:
            if 0 <= e.index < len(msgs):
                m = msgs[e.index]
                if e.item >= 0:
                    m = Message(m.topic, m.partition, m.offset, e.raw, m.key)
            else:
                m = Message("?", -1, -1, e.raw)
            out.dlq.append((m, e))

    def _ingest(self, ingest: Any, part: list[Message], out: Outbox) -> None:
        """Hand a batch to the engine (which never raises on input); should a bug of ours raise
        anyway, the batch is dead-lettered with the reason instead of stopping the worker."""
        try:
            errors = ingest([m.value for m in part])
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("ingest failed; dead-lettering %d messages", len(part))
            errors = [EventError("internal_error", "skewwatch failed on this batch (a bug: please report it); "
                                 "the messages were set aside and processing went on", m.value or b"", i)
                      for i, m in enumerate(part)]
        self._route_errors(part, errors, out)

    def on_predictions(self, msgs: list[Message]) -> Outbox:
        out = Outbox()
        fresh = self._fresh(msgs, out)
        if fresh:
            now = time.monotonic()
            parts: dict[str, list[Message]] = {}
            for m in fresh:
                parts.setdefault(f"{m.topic}:{m.partition}", []).append(m)
            eng = self.engine
            for k, part in parts.items():
                # fold each partition against its own high water, to learn its event-time progress
                hw = eng.high_water
                eng.high_water = self.part_hw.get(k, float("-inf"))
                try:
                    self._ingest(eng.ingest_predictions, part, out)
                finally:
                    self.part_hw[k] = eng.high_water
                    eng.high_water = max(hw, eng.high_water)
                self.part_seen[k] = now
            self.last_batch_wall = now
        self._close(out, self._watermark())
        self.dlq_total += len(out.dlq)
        return out

    def assigned(self, keys: set[str]) -> None:
        """The predictions partitions (``"topic:partition"``) this worker owns now.

        A newly assigned partition holds the watermark back until its first message arrives (or
        it stays silent for ``partition_idle`` seconds), so the backlog it still has to deliver is
        not late; a revoked one stops counting.
        """
        now = time.monotonic()
        for k in keys - self.part_seen.keys():
            self.part_seen[k] = now
            self.part_hw[k] = float("-inf")
        for k in self.part_seen.keys() - keys:
            del self.part_seen[k]
            self.part_hw.pop(k, None)

    def _watermark(self) -> float | None:
        """Event-time watermark: the slowest partition that delivered within ``partition_idle`` seconds.

        The engine's own default (its largest ts minus the allowed lateness) would let the fastest
        partition close windows the others still have events for: reading a backlog (after a
        restart, or any consumer lag) dropped most events as late. Silent partitions do not hold
        it back: their next live event is newer than the watermark anyway.
        """
        now = time.monotonic()
        active = [self.part_hw[k] for k, seen in self.part_seen.items() if now - seen <= self.partition_idle]
        if not active:
            return None
        return min(active) - self.cfg.detector.allowed_lateness

    def on_labels(self, msgs: list[Message]) -> Outbox:
        out = Outbox()
        fresh = self._fresh(msgs, out)
        if fresh:
            self._ingest(self.engine.ingest_labels, fresh, out)
        self.dlq_total += len(out.dlq)
        return out

    def on_features(self, msgs: list[Message]) -> Outbox:
        out = Outbox()
        fresh = self._fresh(msgs, out)
        if fresh:
            self._ingest(self.engine.ingest_features, fresh, out)
        self.dlq_total += len(out.dlq)
        return out

    def tick(self, idle_after: float) -> Outbox:
        """Wall-clock timer: when traffic stops, event time is assumed to go on at wall speed."""
        out = Outbox()
        idle = time.monotonic() - self.last_batch_wall
        if idle >= idle_after and self.engine.high_water > float("-inf"):
            self._close(out, self.engine.high_water + idle - self.cfg.detector.allowed_lateness)
        return out

    def _close(self, out: Outbox, watermark: float | None) -> None:
        out.partials.extend(self.engine.advance_partials(watermark))
        if self.engine.outcomes is not None and self.engine.watermark > float("-inf"):
            out.alerts.extend(self.engine.outcomes.advance(self.engine.watermark))
        if self._library is not None:
            out.counterexamples.extend(self._library.drain())

    @property
    def watermark(self) -> float:
        return self.engine.watermark

    # ------------------------------------------------------------------ aggregator side
    def on_partial(self, source: str, watermark: float, partial: Partial | None) -> Outbox:
        out = Outbox()
        if partial is not None:
            self.agg.ingest_partial(partial, source)
        prev = self.sources.get(source, (float("-inf"), 0.0))[0]
        self.sources[source] = (max(prev, watermark), time.monotonic())
        now = time.monotonic()
        live = [wm for wm, seen in self.sources.values() if now - seen <= self.source_timeout]
        if live:
            wm = min(live)
            if wm > float("-inf"):
                out.alerts.extend(self.agg.advance(wm))
        return out

    def flush(self) -> Outbox:
        """End of a bounded run (demo): close everything that is open, locally."""
        out = Outbox()
        end = self.engine.high_water + self.cfg.detector.window * 2
        for p in self.engine.advance_partials(end):
            self.agg.ingest_partial(p, self.worker_id)
        if self.engine.outcomes is not None:
            out.alerts.extend(self.engine.outcomes.advance(end))
        out.alerts.extend(self.agg.advance(end))
        if self._library is not None:
            out.counterexamples.extend(self._library.drain())
        return out

    # ------------------------------------------------------------------ checkpoint
    def checkpoint(self) -> bytes:
        state = {
            "version": CHECKPOINT_VERSION, "worker": self.worker_id, "offsets": dict(self.offsets),
            "engine": self.engine.snapshot(), "agg": self.agg.snapshot(), "sources": {k: v[0] for k, v in self.sources.items()},
            "duplicates": self.duplicates, "dlq_total": self.dlq_total,
        }
        return zlib.compress(pickle.dumps(state, protocol=5), 1)

    def restore(self, data: bytes) -> None:
        state = pickle.loads(zlib.decompress(data))
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}; starting fresh")
        self.engine.restore(state["engine"])
        self.agg.restore(state["agg"])
        self.engine.alerts = self.agg.alerts
        self.offsets = dict(state["offsets"])
        now = time.monotonic()
        self.sources = {k: (wm, now) for k, wm in state["sources"].items()}
        self.duplicates = state.get("duplicates", 0)
        self.dlq_total = state.get("dlq_total", 0)
