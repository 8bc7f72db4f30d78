"""A consumer group of sidecars wired through in-memory topics: the worker's protocol without Kafka.

:class:`LocalGroup` holds one :class:`~detector.kafka.sidecar.Sidecar` per worker, a partials
log and a state store (the last checkpoint of every unit and of the aggregator), and does what
:class:`~detector.kafka.worker.Worker` does around them: route input to the unit that owns the
partition, checkpoint and only then send the steps and claims, feed the partials log to the
worker holding the aggregator, move units on a rebalance and lose a worker's memory on a kill.
Tests use it to check exactness and order-independence quickly; ``skewwatch bench`` uses it to
time the core path. Everything over the wire is tested against the real worker.
"""

from __future__ import annotations

from typing import Any

from detector.config import Config
from detector.core.decisions.alerts import Alert
from detector.core.reference.profile import Reference
from detector.kafka.sidecar import AGGREGATOR, Batch, Message, Sidecar

__all__ = ["LocalGroup"]


class LocalGroup:
    def __init__(self, cfg: Config, refs: dict[str, Reference], default: Reference | None, partitions: int,
                 workers: int = 1) -> None:
        self.cfg, self.refs, self.default = cfg, refs, default
        t = cfg.kafka.topics
        self.topics = {"predictions": t.predictions, "labels": t.labels, "features": t.features}
        self.n = partitions
        self.offsets: dict[tuple[str, int], int] = {}
        self.log: list[tuple[int, dict[str, str], bytes]] = []  # the partials topic: (offset, headers, value)
        self.read = 0  # partials log position of the aggregator
        self.store: dict[str, bytes] = {}  # unit / aggregator -> last durable checkpoint
        self.sidecars: dict[str, Sidecar] = {}
        self.owner: dict[str, str] = {}  # unit / aggregator -> worker
        self.alerts: list[Alert] = []
        self.counterexamples: list[dict[str, Any]] = []
        self.dlq: list[Any] = []
        self.time = 0.0  # simulated wall time for the aggregator (liveness, claim caps)
        self.assign({f"w{i}": [k for k in range(partitions) if k % workers == i] for i in range(workers)}, aggregator="w0")

    # ------------------------------------------------------------------ membership
    def assign(self, plan: dict[str, list[int]], aggregator: str) -> None:
        """Rebalance: every worker checkpoints, then holds exactly the partitions of ``plan``."""
        for side in self.sidecars.values():
            self.checkpoint(side)
        counts = {t: self.n for t in self.topics.values()}
        for wid in plan:
            if wid not in self.sidecars:
                self.sidecars[wid] = Sidecar(self.cfg, self.refs, self.default, wid)
                self.sidecars[wid].set_partitions(counts)
        for wid, side in self.sidecars.items():
            mine = {f"p{k}" for k in plan.get(wid, [])}
            for name in list(side.units):
                if name not in mine:
                    side.drop_unit(name)
            if wid != aggregator and side.agg is not None:
                side.agg = None
            for name in sorted(mine - set(side.units)):
                side.add_unit(side.new_unit(name), [f"{t}:{name[1:]}" for t in self.topics.values()])
                if name in self.store:
                    side.restore(name, self.store[name])
                self.owner[name] = wid
            if wid == aggregator and side.agg is None:
                side.agg = side.new_aggregator()
                if AGGREGATOR in self.store:
                    side.restore(AGGREGATOR, self.store[AGGREGATOR])
                side.agg.clock = lambda: self.time
                side.agg.started = self.time
                self.read = side.agg.offsets.get("partials:0", -1) + 1
                self.owner[AGGREGATOR] = wid

    def kill(self, wid: str, replacement: str) -> None:
        """``wid`` dies (its memory is lost); ``replacement`` (a new worker id) takes all it held."""
        side = self.sidecars.pop(wid)
        plan = {w: [int(n[1:]) for n in s.units] for w, s in self.sidecars.items()}
        plan[replacement] = [int(n[1:]) for n in side.units]
        agg = replacement if side.agg is not None else self.owner[AGGREGATOR]
        self.assign(plan, agg)

    # ------------------------------------------------------------------ traffic
    def feed(self, kind: str, partition: int, values: list[bytes]) -> None:
        """New messages on partition ``partition`` of the ``kind`` topic, handed over as columns (as the worker does)."""
        topic = self.topics[kind]
        start = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = start + len(values)
        side = self.sidecars[self.owner[f"p{partition}"]]
        side.update_lags(lambda t, p: self.offsets.get((t, p), 0))  # everything produced is delivered at once here
        batch = Batch(topic, partition, list(range(start, start + len(values))), list(values), [None] * len(values))
        self.dlq.extend(side.on_batch(batch).dlq)

    def redeliver(self, kind: str, partition: int, msgs: list[Message]) -> None:
        side = self.sidecars[self.owner[f"p{partition}"]]
        side.update_lags(lambda t, p: self.offsets.get((t, p), 0))  # everything produced is delivered at once here
        self.dlq.extend(side.on_messages(self.topics[kind], partition, msgs).dlq)

    def checkpoint(self, side: Sidecar | None = None) -> None:
        """What the worker does every ``checkpoint_interval``: store, send outboxes and claims, then pump."""
        for s in [side] if side is not None else list(self.sidecars.values()):
            s.update_lags(lambda t, p: self.offsets.get((t, p), 0))
            s.tick(float("inf"))
            for name in s.dirty():
                self.store[name] = s.checkpoint(name)
                (s.agg if name == AGGREGATOR else s.units[name]).dirty = False  # type: ignore[union-attr]
            for name in sorted(s.units):
                msgs, upto, claim = s.outgoing(name)
                for _, value, headers in msgs:
                    self.log.append((len(self.log), {k: v.decode() for k, v in headers}, value))
                s.sent(name, upto, claim)
        self.pump()

    def finish(self, quiet: float) -> None:
        """The input stops and ``quiet`` seconds pass: every unit moves on, the aggregator follows.

        (Event time then goes on at wall speed: the simulated wall clock moves on by ``quiet`` too.)
        """
        W = float(self.cfg.detector.window)
        for until in (W, quiet):  # the last windows close (their steps arrive), then time goes on
            for side in self.sidecars.values():
                for u in side.units.values():
                    top = max(u.marks.values(), default=float("-inf"))
                    u.advance(top + until - float(self.cfg.detector.allowed_lateness))
            self.time += until
            self.checkpoint()
            self.checkpoint()

    def tick(self, idle_after: float) -> None:
        for side in self.sidecars.values():
            side.tick(idle_after)

    def pump(self) -> None:
        side = self.sidecars.get(self.owner.get(AGGREGATOR, ""))
        if side is None or side.agg is None:
            return
        while self.read < len(self.log):
            off, headers, value = self.log[self.read]
            side.on_partials("partials", 0, off, headers, value)
            self.read += 1
        out = side.aggregate()
        self.alerts.extend(out.alerts)
        self.counterexamples.extend(out.counterexamples)

    @property
    def aggregator(self) -> Any:
        return self.sidecars[self.owner[AGGREGATOR]].agg
