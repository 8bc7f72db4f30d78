"""What a sidecar worker does with its messages, without the transport (testable without Kafka).

A worker holds the *units* of the input partitions assigned to it (:mod:`detector.kafka.unit`)
and, when it owns partition 0 of the partials topic, the group's *aggregator*
(:mod:`detector.kafka.aggregator`). Units fold their partitions and pack steps; the worker sends
the steps after a durable checkpoint; the aggregator merges every unit's steps and evaluates. The
state of each unit and of the aggregator is checkpointed under its own key, so whichever worker is
assigned a partition next restores it: state follows partitions, not workers.

Unit names: when the predictions, labels and features topics have the same partition count they
are co-partitioned and partition ``k`` of all three is unit ``p<k>`` (a label meets its prediction
there). When they do not, each topic-partition is its own unit ``<kind>-p<k>``; window checks work
as usual, but labels and offline features cannot be joined to their predictions (they would reach
another unit), so the worker logs an error that names the topics and their partition counts.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from detector.config import Config
from detector.core.decisions.alerts import Alert
from detector.core.inputs.events import EventError
from detector.core.reference.profile import Reference
from detector.core.state.codec import StateError, pack, unpack
from detector.kafka.aggregator import Aggregator
from detector.kafka.unit import KINDS, Batch, Message, Unit

__all__ = ["Sidecar", "Message", "Batch", "Outbox", "AGGREGATOR", "CHECKPOINT_VERSION"]

log = logging.getLogger("skewwatch.sidecar")
AGGREGATOR = "aggregator"
CHECKPOINT_VERSION = 1


@dataclass
class Outbox:
    """What the transport must send now."""

    alerts: list[Alert] = field(default_factory=list)
    dlq: list[tuple[Message, EventError]] = field(default_factory=list)
    counterexamples: list[dict[str, Any]] = field(default_factory=list)  # worst FP/FN of matured cohorts


class Sidecar:
    def __init__(self, cfg: Config, refs: dict[str, Reference], default: Reference | None, worker_id: str) -> None:
        self.cfg = cfg
        self.refs, self.default = refs, default
        self.worker_id = worker_id
        t = cfg.kafka.topics
        self.kind_of = {t.predictions: "predictions", t.labels: "labels", t.features: "features"}
        self.partitions: dict[str, int] = {}  # input topic -> partition count (from the cluster)
        self.units: dict[str, Unit] = {}
        self.agg: Aggregator | None = None
        self.dlq_total = 0
        self.last_batch_wall = time.monotonic()
        self._idle_evaluator: Any = None
        self.budget: float | None = None  # seconds of work per call before yielding (the worker sets it)
        self.departed: dict[str, tuple[Any, Any]] = {}  # model -> (layout, ServedTotals) of units that left
        # False: end offsets come from fetches and may be stale; a caught-up labels or features
        # partition then holds event time until confirm_ends() (the worker sets it; see .unit)
        self.ends_exact = True

    # ------------------------------------------------------------------ units
    @property
    def copartitioned(self) -> bool:
        counts = {self.partitions.get(t) for t in self.kind_of}
        return len(counts) == 1 and None not in counts

    def unit_of(self, topic: str, partition: int) -> str:
        if self.copartitioned or not self.partitions:
            return f"p{partition}"
        return f"{self.kind_of[topic]}-p{partition}"

    def expected_units(self) -> set[str]:
        if not self.partitions:
            return set()
        if self.copartitioned:
            return {f"p{k}" for k in range(next(iter(self.partitions.values())))}
        return {f"{self.kind_of[t]}-p{k}" for t, n in self.partitions.items() for k in range(n)}

    def set_partitions(self, counts: dict[str, int]) -> None:
        """The input topics' partition counts (checked for co-partitioning)."""
        self.partitions = {t: n for t, n in counts.items() if t in self.kind_of and n}
        if self.partitions and not self.copartitioned:
            log.error("input topics are not co-partitioned (%s): labels and offline features cannot be joined to "
                      "their predictions; create the predictions, labels and features topics with the same partition "
                      "count and key every message by prediction_id",
                      ", ".join(f"{t}: {n} partitions" for t, n in sorted(self.partitions.items())))
        if self.agg is not None:
            self.agg.expected = self.expected_units()

    def new_unit(self, name: str) -> Unit:
        unit = Unit(name, self.cfg, self.refs, self.default)
        if not self.ends_exact:
            unit.covered = {}
        return unit

    def add_unit(self, unit: Unit, tps: list[str]) -> None:
        self.units[unit.name] = unit
        self.assign_tps(unit.name, tps)

    def assign_tps(self, name: str, tps: list[str]) -> None:
        """The ``"topic:partition"`` inputs unit ``name`` reads."""
        self.units[name].assigned({tp: self.kind_of.get(tp.rpartition(":")[0], "predictions") for tp in tps},
                                  time.monotonic())

    def drop_unit(self, name: str) -> None:
        unit = self.units.pop(name, None)
        if self.agg is not None:
            self.agg.drop_local(name)
        if unit is not None:  # what it served while here stays in this worker's lifetime histograms
            from detector.core.state.partials import row_map

            for model, ms in unit.engine.models.items():
                kept = self.departed.get(model)
                if kept is None:
                    self.departed[model] = (ms.layout, ms.served)
                else:
                    kept[1].add_rows(ms.served, row_map(ms.layout, kept[0]))

    def new_aggregator(self) -> Aggregator:
        agg = Aggregator(self.cfg, self.refs, self.default)
        agg.expected = self.expected_units()
        return agg

    def update_lags(self, end_offset: Any) -> None:
        """``end_offset(topic, partition)`` -> the next offset to be written (None if unknown): units learn their lag."""
        for u in self.units.values():
            for tp in u.seen:
                topic, _, part = tp.rpartition(":")
                end = end_offset(topic, int(part))
                u.lags[tp] = None if end is None else max(0, int(end) - (u.offsets.get(tp, -1) + 1))

    def predictions_marks(self) -> dict[str, float]:
        """Per unit, the newest predictions event time it has folded (what an end-offset query asked now covers)."""
        out = {}
        for name, u in self.units.items():
            marks = [m for tp, m in u.marks.items() if u.kinds.get(tp) == "predictions"]
            if marks:
                out[name] = min(marks)
        return out

    def confirm_ends(self, ends: dict[str, int], asked: dict[str, float]) -> None:
        """End offsets ``{"topic:partition": next offset}`` the broker gave for a query sent when each
        unit's predictions had reached ``asked[unit]`` (:meth:`predictions_marks`): a labels or
        features partition read to its end is complete up to that event time (see :mod:`.unit`)."""
        for name, mark in asked.items():
            u = self.units.get(name)
            if u is None:
                continue
            if u.covered is None:
                u.covered = {}
            for tp, kind in u.kinds.items():
                if kind == "predictions" or tp not in ends:
                    continue
                lag = max(0, int(ends[tp]) - (u.offsets.get(tp, -1) + 1))
                u.lags[tp] = lag
                if lag == 0:
                    u.covered[tp] = max(u.covered.get(tp, -math.inf), mark)

    # ------------------------------------------------------------------ input
    def on_messages(self, topic: str, partition: int, msgs: list[Message]) -> Outbox:
        """Messages of one input topic-partition (its unit must be held here)."""
        return self.on_batch(Batch.of(msgs) if msgs else Batch(topic, partition, [], [], []))

    def on_batch(self, batch: Batch) -> Outbox:
        """A batch of one input topic-partition, as columns (its unit must be held here)."""
        out = Outbox()
        topic, partition = batch.topic, batch.partition
        kind = self.kind_of.get(topic)
        unit = self.units.get(self.unit_of(topic, partition)) if kind is not None else None
        if unit is None:
            raise KeyError(f"no unit holds {topic}:{partition} on this worker")
        out.dlq.extend(unit.on_batch(kind, batch))  # type: ignore[arg-type]
        self.last_batch_wall = time.monotonic()
        unit.advance(unit.watermark(), self.budget)
        self.dlq_total += len(out.dlq)
        return out

    def tick(self, idle_after: float) -> None:
        """Wall-clock timer: units catch up, and units whose partitions went quiet move on (at wall speed)."""
        for unit in self.units.values():
            wm = unit.watermark()
            idle = unit.idle_watermark(idle_after)
            if idle is not None and (wm is None or idle > wm):
                wm = idle
            unit.advance(wm, self.budget)

    @property
    def behind(self) -> bool:
        """Some unit or the aggregator stopped at its time budget with work left (call tick/aggregate again)."""
        return any(u.behind for u in self.units.values()) or (self.agg is not None and self.agg.behind)

    # ------------------------------------------------------------------ aggregator
    def on_partials(self, topic: str, partition: int, offset: int, headers: dict[str, str], value: bytes | None) -> None:
        if self.agg is not None:
            self.agg.on_message(topic, partition, offset, headers, value)

    def aggregate(self) -> Outbox:
        """Advance the aggregator (if held here); returns the alerts and counterexamples to send."""
        out = Outbox()
        if self.agg is None:
            return out
        out.alerts.extend(self.agg.advance(budget=self.budget))
        from detector.core.outcomes.counterexamples import library_of

        lib = library_of(self.agg.engine)
        if lib is not None:
            out.counterexamples.extend(lib.drain())
        return out

    def outgoing(self, name: str, chunk: int = 512 * 1024, idle_after: float | None = None,
                 ) -> tuple[list[tuple[bytes, bytes, list[tuple[str, bytes]]]], int, float]:
        """Unit ``name``'s outbox as partials-topic messages ``(key, value, headers)``, then its claim.

        Returns the messages, the last seq they carry and the claim; once they are on the topic call
        :meth:`sent` with the last two. Only send what a durable checkpoint holds. ``idle_after``:
        a unit with nothing, read to the end and quiet that long, says so (:meth:`Unit.claim`).
        """
        unit = self.units[name]
        key = name.encode()
        wid = self.worker_id.encode()
        life = unit.life.encode()
        out = []
        for seq, _, blob in unit.outbox:
            parts = [blob[i : i + chunk] for i in range(0, len(blob), chunk)] or [b""]
            for i, part in enumerate(parts):
                out.append((key, part, [("skewwatch-kind", b"step"), ("skewwatch-unit", key), ("skewwatch-seq", str(seq).encode()),
                                        ("skewwatch-part", str(i).encode()), ("skewwatch-parts", str(len(parts)).encode()),
                                        ("skewwatch-life", life), ("skewwatch-worker", wid)]))
        claim = unit.claim(idle_after)
        out.append((key, b"", [("skewwatch-kind", b"claim"), ("skewwatch-unit", key), ("skewwatch-seq", str(unit.seq).encode()),
                               ("skewwatch-watermark", repr(claim).encode()), ("skewwatch-life", life),
                               ("skewwatch-worker", wid)]))
        return out, unit.seq, claim

    def sent(self, name: str, upto: int, claim: float) -> None:
        """Unit ``name``'s steps up to seq ``upto`` are on the partials topic; ``claim`` covers them."""
        unit = self.units.get(name)
        if unit is not None:
            unit.sent(upto)
        if self.agg is not None:
            self.agg.set_local(name, claim, upto)

    def flush(self) -> Outbox:
        """End of a bounded run (demo): every unit packs everything, and a local aggregator evaluates it all."""
        out = Outbox()
        W = float(self.cfg.detector.window)
        ends = [max(u.marks.values(), default=-math.inf) for u in self.units.values()]
        top = max(ends, default=-math.inf)
        if not math.isfinite(top):
            return out
        end = top + 2 * W
        self.budget = None
        for unit in self.units.values():
            unit.advance(end)
        if self.agg is not None:
            for unit in self.units.values():
                for seq, _, blob in unit.outbox:
                    self.agg.on_step(unit.name, seq, blob)
                self.agg.set_local(unit.name, end, unit.seq)
            out = self.aggregate()
        return out

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, name: str) -> bytes:
        """The checkpoint blob of unit ``name`` or of the aggregator (:data:`AGGREGATOR`)."""
        if name == AGGREGATOR:
            if self.agg is None:
                raise KeyError("the aggregator is not held here")
            data = {"worker": self.worker_id, "aggregator": self.agg.to_state()}
        else:
            data = {"worker": self.worker_id, "unit": self.units[name].to_state()}
        return pack("checkpoint", CHECKPOINT_VERSION, data)

    def restore(self, name: str, blob: bytes) -> None:
        """Load unit ``name``'s (or the aggregator's) checkpoint; raises ``StateError``/``EngineError`` if unusable.

        The held unit (or aggregator) is replaced only when the checkpoint loads completely.
        """
        from detector.core.engine import EngineError

        try:
            data = unpack(blob, "checkpoint", {CHECKPOINT_VERSION})
            if name == AGGREGATOR:
                agg = self.new_aggregator()
                agg.load_state(data["aggregator"])
                self.agg = agg
            else:
                unit = self.units.get(name) or self.new_unit(name)
                fresh = self.new_unit(name)
                fresh.load_state(data["unit"])
                fresh.seen, fresh.kinds = dict(unit.seen), dict(unit.kinds)
                self.units[name] = fresh
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, StateError | EngineError):
                raise
            raise StateError(f"checkpoint of {name} is invalid ({type(exc).__name__}: {exc})") from exc

    def dirty(self) -> list[str]:
        names = [n for n, u in self.units.items() if u.dirty or u.outbox]
        if self.agg is not None and self.agg.dirty:
            names.append(AGGREGATOR)
        return names

    # ------------------------------------------------------------------ views
    @property
    def engine(self) -> Any:
        """This worker's ingest, as one engine-like view over its units (status page, metrics)."""
        from detector.kafka.views import ingest_view

        return ingest_view(self)

    @property
    def evaluator(self) -> Any:
        """The engine that evaluates (the aggregator's, or an empty one on workers that do not hold it)."""
        if self.agg is not None:
            return self.agg.engine
        if self._idle_evaluator is None:
            from detector.core.engine import Engine

            self._idle_evaluator = Engine(self.cfg.detector, self.refs, self.default)
        return self._idle_evaluator

    def counts(self) -> dict[str, int]:
        """Predictions folded, rejected and late on this worker's units (cheap: no view)."""
        out = {"predictions": 0, "invalid": 0, "late": 0}
        for u in self.units.values():
            c = u.engine.counters
            out["predictions"] += c.predictions
            out["invalid"] += sum(c.invalid.values())
            out["late"] += c.late
        return out

    @property
    def duplicates(self) -> int:
        """Input messages skipped because a checkpoint already covered their offset."""
        return sum(u.duplicates for u in self.units.values())

    @property
    def sources(self) -> dict[str, Any]:
        """The units the aggregator has heard from (empty on workers that do not hold it)."""
        return dict(self.agg.sources) if self.agg is not None else {}

    @property
    def watermark(self) -> float:
        marks = [u.engine.watermark for u in self.units.values()]
        return min(marks) if marks else -math.inf


__all__ += ["KINDS"]
