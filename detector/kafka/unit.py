"""One input partition's state: its own engine, offsets, event-time marks and outbox.

A *unit* owns partition ``k`` of the predictions, labels and features topics (they are
co-partitioned by ``prediction_id``, and Faust's assignor gives partition ``k`` of topics with the
same partition count to the same worker). It folds its predictions into windows, joins its labels
and offline features (through :class:`~detector.core.outcomes.exchange.OutcomeGate`), and at every window
boundary its watermark passes it packs a *step*: the windows that closed, the outcome and parity
contributions (:func:`~detector.core.outcomes.exchange.take_outcome_step`). Steps wait in the unit's
*outbox*, which is part of its checkpoint: the worker sends them to the aggregator only once the
checkpoint holding them is durable, and the aggregator ignores a step whose sequence number it has
already applied. A step is therefore sent exactly as it was checkpointed, whatever happens later.

Event time: the unit's watermark is its predictions' newest accepted event time minus
``allowed_lateness`` (only predictions fill windows, so only they move it), held back by its labels
and offline-features partitions while they have unread messages (consumer lag, as the worker last
saw it) - or, while their lag is not known yet, for ``partition_idle`` seconds after their last
message (or assignment). A caught-up labels partition holds it back no further than the event time
its catching up is confirmed for (``covered``): a fetch's end offset may be older than the
predictions folded since, so the worker asks the broker for the end offsets, and a partition read
to the end it was told covers the predictions folded before it asked (labels produced after those
predictions are late by nature). ``covered`` is None where the end offsets given are exact (the
in-process group of :mod:`.local`): there a caught-up partition never holds it back. Events dated beyond the wall
clock plus ``max_future`` are rejected (predictions, to the dead-letter topic) or joined at once
(labels, offline features) and never move a mark. When no message arrives for ``idle_after``
seconds and none of the unit's partitions has unread messages, event time goes on at wall-clock
speed (a worker too busy to take its input is behind, not idle).
"""

from __future__ import annotations

import bisect
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from detector.config import Config
from detector.core.engine import Engine
from detector.core.inputs.events import EventError
from detector.core.outcomes.exchange import CorrectionTap, OutcomeGate, take_outcome_step
from detector.core.reference.profile import Reference
from detector.core.state.codec import check, encode, pack
from detector.core.state.snapshot import engine_state, load_engine_state

__all__ = ["Unit", "Message", "Batch", "KINDS", "UNIT_VERSION"]

log = logging.getLogger("skewwatch.unit")
KINDS = ("predictions", "labels", "features")
UNIT_VERSION = 1
PARTITION_IDLE = 10.0  # seconds without a message after which a topic-partition stops holding event time back
# a unit's first large prediction batches fold their first this many events first, alone: as many as
# a model's first batch reads to infer its layout (slice dimensions, codes served as text)...
HEAD_EVENTS = 1000
HEAD_TRIES = 3  # ... in its first this many (see Unit._ingest_predictions)


@dataclass(slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


@dataclass(slots=True)
class Batch:
    """Messages of one topic-partition as columns, in the order Kafka delivered them: what the worker
    hands over without making an object per message (a :class:`Message` is made only for a dead letter)."""

    topic: str
    partition: int
    offsets: list[int]
    values: list[bytes | None]
    keys: list[bytes | None]

    def message(self, i: int, value: bytes | None = None) -> Message:
        return Message(self.topic, self.partition, self.offsets[i], self.values[i] if value is None else value, self.keys[i])

    @classmethod
    def of(cls, msgs: list[Message]) -> Batch:
        m0 = msgs[0]
        return cls(m0.topic, m0.partition, [m.offset for m in msgs], [m.value for m in msgs], [m.key for m in msgs])


class Unit:
    """The state of input partition ``name`` (see the module docstring)."""

    def __init__(self, name: str, cfg: Config, refs: dict[str, Reference], default: Reference | None) -> None:
        from detector.core.outcomes.monitor import attach_outcomes

        self.name = name
        self.cfg = cfg
        self.engine = Engine(cfg.detector, refs, default)
        mon = attach_outcomes(self.engine, cfg)
        mon.listeners.append(CorrectionTap(mon))
        self.gate = OutcomeGate(mon)
        self.engine.outcomes = self.gate
        self.offsets: dict[str, int] = {}  # "topic:partition" -> last offset folded
        self.marks: dict[str, float] = {}  # "topic:partition" -> newest accepted event time
        self.seen: dict[str, float] = {}  # "topic:partition" -> monotonic time of its last message (or assignment)
        self.kinds: dict[str, str] = {}  # "topic:partition" -> predictions / labels / features
        self.lags: dict[str, int | None] = {}  # "topic:partition" -> unread messages (None: not known)
        # "topic:partition" (labels, features) -> event time its caught-up state is confirmed for;
        # None: the lags are exact, a caught-up partition needs no confirmation (module docstring)
        self.covered: dict[str, float] | None = None
        self.boundary = -math.inf  # the last step taken: everything before it has been packed
        self.seq = 0  # sequence number of the last step packed
        self.life = uuid.uuid4().hex[:16]  # this unit's life: drawn when it starts empty, kept in its checkpoints
        self.outbox: list[tuple[int, float, bytes]] = []  # (seq, boundary, packed step) not yet sent
        self.duplicates = 0
        self.last_input = time.monotonic()
        self.partition_idle = PARTITION_IDLE
        self.behind = False  # advance() stopped at its budget with boundaries left
        self.heads = 0  # prediction batches split so far while the fast decoders were not chosen
        self.dirty = True

    @property
    def window(self) -> float:
        return float(self.cfg.detector.window)

    def assigned(self, tps: dict[str, str], now: float) -> None:
        """The topic-partitions this unit reads, ``{"topic:partition": kind}`` (they hold event time back until they speak)."""
        for tp, kind in tps.items():
            self.seen.setdefault(tp, now)
            self.kinds[tp] = kind

    # ------------------------------------------------------------------ input
    def on_messages(self, kind: str, msgs: list[Message], wall: float | None = None) -> list[tuple[Message, EventError]]:
        """Fold one topic-partition's messages; returns the ones for the dead-letter topic."""
        return self.on_batch(kind, Batch.of(msgs), wall) if msgs else []

    def on_batch(self, kind: str, b: Batch, wall: float | None = None) -> list[tuple[Message, EventError]]:
        """Fold one topic-partition's messages, as columns; returns the ones for the dead-letter topic.

        Offsets already folded are skipped (redelivery); the usual batch - offsets rising past the
        last one folded, no empty or oversized message - costs a few C-level passes, not a Python
        step per message."""
        wall = time.time() if wall is None else wall
        n = len(b.offsets)
        if not n:
            return []
        tp = f"{b.topic}:{b.partition}"
        fresh = self._fresh(tp, b)
        dlq: list[tuple[Message, EventError]] = []
        vals = b.values if len(fresh) == n else [b.values[i] for i in fresh]
        limit = self.cfg.kafka.max_message_bytes
        if None in vals or (vals and (min(map(len, vals)) == 0 or max(map(len, vals)) > limit)):  # type: ignore[arg-type]
            keep = []
            for i in fresh:
                v = b.values[i]
                if v is None or len(v) == 0:
                    dlq.append((b.message(i), EventError("empty_message", "empty message or tombstone; send a JSON object")))
                elif len(v) > limit:
                    dlq.append((b.message(i), EventError("oversized", f"message of {len(v)} bytes exceeds "
                                                                      f"kafka.max_message_bytes={limit}")))
                else:
                    keep.append(i)
            fresh, vals = keep, [b.values[i] for i in keep]
        self.dirty = True
        now = time.monotonic()
        self.seen[tp] = self.last_input = now
        self.kinds[tp] = kind
        if not fresh:
            return dlq
        ceiling = wall + float(self.cfg.detector.max_future)
        eng, gate = self.engine, self.gate
        hw = -math.inf
        try:  # the engine never raises on input; should a bug of ours raise anyway, the batch is set aside
            if kind == "predictions":
                eng.now = wall  # the live rule: "future" is ahead of the wall clock (plus max_future)
                errors = self._ingest_predictions(vals)  # type: ignore[arg-type]
                hw = eng.high_water
            else:
                gate.ceiling, gate.newest = ceiling, -math.inf
                errors = eng.ingest_labels(vals) if kind == "labels" else eng.ingest_features(vals)  # type: ignore[arg-type]
                hw = gate.newest
        except Exception:  # noqa: BLE001 - see above
            log.exception("ingest failed; dead-lettering %d messages", len(fresh))
            errors = [EventError("internal_error", "skewwatch failed on this batch (a bug: please report it); "
                                 "the messages were set aside and processing went on", v or b"", i)
                      for i, v in enumerate(vals)]
        if math.isfinite(hw):
            self.marks[tp] = max(self.marks.get(tp, -math.inf), min(hw, ceiling))
        for e in errors:  # the dead letter of an item of a batch envelope carries just that item
            if 0 <= e.index < len(fresh):
                dlq.append((b.message(fresh[e.index], e.raw if e.item >= 0 else None), e))
            else:
                dlq.append((Message("?", -1, -1, e.raw), e))
        return dlq

    def _ingest_predictions(self, vals: list[bytes]) -> list[EventError]:
        """Fold predictions; until the engine has chosen its fast decoders, a large batch's head
        (:data:`HEAD_EVENTS` events) is folded first, alone.

        The engine picks the typed and columnar decoders of a unit's usual model only after a
        batch went through the general (dict) path; without the head, a unit's whole first fold
        (~2 MiB gathered: a quarter of a short backlog's events) would take that slow path. A
        fold's results never depend on how its messages are cut into batches beyond what live
        batching already varies (the first batch of a model infers its layout from its first
        1,000 events: the head holds that many; an envelope counts as its items). Tried for the
        first :data:`HEAD_TRIES` large batches only: a model the fast decoders do not serve
        (multiclass, regression) pays the split's fixed cost a few times, not on every fold."""
        eng = self.engine
        if eng.fast_decoders_chosen or self.heads >= HEAD_TRIES or len(vals) < 2:
            return eng.ingest_predictions(vals)
        size = events = k = 0
        for k, v in enumerate(vals, 1):  # noqa: B007 - k: messages in the head
            size += len(v)
            events += v.count(b"},{") + 1 if v[:1] == b"[" else 1  # an envelope's items (a close estimate)
            if events >= HEAD_EVENTS:
                break
        if k >= len(vals) or size * 2 > sum(map(len, vals)):
            return eng.ingest_predictions(vals)  # the head would be most of it: no gain
        self.heads += 1
        errors = eng.ingest_predictions(vals[:k])
        for e in (tail := eng.ingest_predictions(vals[k:])):  # message indexes of the tail -> of the batch
            if e.index >= 0:
                e.index += k
        errors.extend(tail)
        return errors

    def _fresh(self, tp: str, b: Batch) -> list[int]:
        """Positions of the messages not folded yet (offsets above the last folded one); notes the new last."""
        offs = b.offsets
        n = len(offs)
        last = self.offsets.get(tp, -1)
        if all(map(int.__lt__, offs[:-1], offs[1:])):  # rising, as Kafka delivers
            start = bisect.bisect_right(offs, last)
            self.duplicates += start
            if start < n:
                self.offsets[tp] = offs[-1]
            return list(range(start, n))
        fresh = []
        for i, o in enumerate(offs):  # out of order (a seek in the middle of a batch): one by one
            if o <= last:
                self.duplicates += 1
                continue
            last = self.offsets[tp] = o
            fresh.append(i)
        return fresh

    # ------------------------------------------------------------------ event time
    def watermark(self, now: float | None = None) -> float | None:
        """The unit's event-time watermark (None while every topic-partition is idle)."""
        now = time.monotonic() if now is None else now
        idle = self.partition_idle
        preds = [tp for tp in self.seen if self.kinds.get(tp) == "predictions"]
        marks = [self.marks.get(tp, -math.inf) for tp in preds]
        for tp, seen in self.seen.items():
            if tp in preds:
                continue
            lag = self.lags.get(tp)
            if (lag is not None and lag > 0) or (lag is None and now - seen <= idle):
                marks.append(self.marks.get(tp, -math.inf))
            elif self.covered is not None:
                marks.append(max(self.marks.get(tp, -math.inf), self.covered.get(tp, -math.inf)))
        if not marks or not math.isfinite(min(marks)):
            return None
        return min(marks) - float(self.cfg.detector.allowed_lateness)

    def idle_watermark(self, idle_after: float, now: float | None = None) -> float | None:
        """When no message came for ``idle_after`` seconds and none is known to be waiting: the newest
        event time plus the idle time."""
        now = time.monotonic() if now is None else now
        idle = now - self.last_input
        top = max(self.marks.values(), default=-math.inf)
        if idle < idle_after or not math.isfinite(top) or any(self.lags.values()):
            return None
        return top + idle - float(self.cfg.detector.allowed_lateness)

    def claim(self, idle_after: float | None = None, now: float | None = None) -> float:
        """What the unit claims to the aggregator: everything before this event time is in the steps it packed.

        Its boundary - or ``+inf`` for a unit that has nothing: no step taken, no window open, no
        event time on the partitions that move its watermark (its predictions; all of them for a
        unit without), those read to the end the consumer last saw (lag known, 0), and no message
        for ``idle_after`` seconds. A partition without traffic would otherwise claim nothing
        (``-inf``) for ever and hold the group's event time back; a slow unit - still reading, or
        not yet at the end of its first window - never claims ``+inf``.
        """
        if idle_after is None or self.seq or self.outbox or math.isfinite(self.boundary):
            return self.boundary
        now = time.monotonic() if now is None else now
        keys = [tp for tp, kind in self.kinds.items() if kind == "predictions"] or list(self.kinds)
        if not keys or now - self.last_input < idle_after or any(tp in self.marks or self.lags.get(tp) != 0 for tp in keys):
            return self.boundary
        if any(ms.windows for ms in self.engine.models.values()):
            return self.boundary
        return math.inf

    def advance(self, watermark: float | None, budget: float | None = None) -> int:
        """Take a step at every window boundary up to ``watermark`` that has something to pack; returns steps taken.

        ``budget``: stop after about this many seconds (``behind`` is then True; call again).
        """
        self.behind = False
        if watermark is None or not math.isfinite(watermark):
            return 0
        W = self.window
        B = math.floor(watermark / W) * W
        if B <= self.boundary:
            return 0
        t0 = time.monotonic()
        taken = 0
        T = self._next_boundary(B)
        while T is not None:
            if self._step(T):
                taken += 1
            self.boundary = T
            self.dirty = True
            T = self._next_boundary(B)
            if T is not None and budget is not None and time.monotonic() - t0 > budget:
                self.behind = True
                return taken
        self.boundary = B
        self.dirty = True
        return taken

    def _next_boundary(self, B: float) -> float | None:
        """The next boundary after the last step where something is due (None: nothing more up to ``B``)."""
        W = self.window
        lo = self.boundary + W if math.isfinite(self.boundary) else -math.inf
        due = [w.end for ms in self.engine.models.values() for w in ms.windows.values()]
        for batches in (self.gate.labels, self.gate.features):
            due.extend(math.floor(float(b.ts.min()) / W) * W + W for b in batches if b.n)
        if math.isfinite(lo) and self._collected():
            due.append(lo)
        nxt = max(lo, min(due, default=B))
        if nxt > B or (math.isfinite(self.boundary) and nxt <= self.boundary):
            return None
        return nxt

    def _collected(self) -> bool:
        mon = self.gate.monitor
        return any(c.cnt.any() for m in mon.models.values() for c in m.open.values()) or any(
            mon.join.counters[k] != self.gate.sent_join[k] for k in self.gate.sent_join)

    def _step(self, T: float) -> bool:
        partials = self.engine.advance_partials(T)
        outcome = take_outcome_step(self.gate, self.engine, T)
        if not partials and outcome is None:
            return False
        self.seq += 1
        data = {"unit": self.name, "seq": self.seq, "life": self.life, "boundary": T, "partials": [p.to_state() for p in partials],
                "outcome": encode(outcome) if outcome is not None else None}
        self.outbox.append((self.seq, T, pack("step", 1, data)))
        return True

    def sent(self, upto: int) -> None:
        """The steps up to ``upto`` are on the partials topic (after a durable checkpoint held them)."""
        before = len(self.outbox)
        self.outbox = [o for o in self.outbox if o[0] > upto]
        self.dirty |= len(self.outbox) != before

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        return {"name": self.name, "engine": engine_state(self.engine, served=False), "offsets": dict(self.offsets),
                "marks": dict(self.marks), "boundary": self.boundary, "seq": self.seq, "life": self.life,
                "outbox": [[s, b, blob] for s, b, blob in self.outbox], "duplicates": self.duplicates}

    def load_state(self, st: Any) -> None:
        """Restore (``EngineError``/``StateError`` if it does not fit: then use a fresh unit)."""
        check(isinstance(st, dict) and st.get("name") == self.name, f"state of unit {self.name!r}")
        check(isinstance(st["offsets"], dict) and isinstance(st["marks"], dict) and isinstance(st["outbox"], list),
              "unit offsets, marks and outbox")
        outbox = []
        for row in st["outbox"]:
            check(isinstance(row, list) and len(row) == 3 and isinstance(row[2], bytes), "unit outbox entry")
            outbox.append((int(row[0]), float(row[1]), row[2]))
        load_engine_state(self.engine, st["engine"])
        self.offsets = {str(k): int(v) for k, v in st["offsets"].items()}
        self.marks = {str(k): float(v) for k, v in st["marks"].items()}
        self.boundary, self.seq, self.outbox = float(st["boundary"]), int(st["seq"]), outbox
        self.life = str(st["life"])
        self.duplicates = int(st.get("duplicates", 0))
        self.dirty = False

