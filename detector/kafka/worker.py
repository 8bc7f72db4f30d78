"""The Faust worker: thin agents around :class:`~detector.kafka.sidecar.Sidecar`.

Agents take raw bytes in batches (:func:`~detector.kafka.take.take_batches`: ``batch`` messages or
``fold_bytes`` of them, or what waits after ``within`` seconds or once read to the partitions' end)
and gather them per topic-partition as
columns (:class:`~detector.kafka.unit.Batch`: offsets, values, keys - no object of ours per
message). A partition's gathered messages are folded into its unit once ``fold_bytes`` of them wait
or the oldest has waited ``hold`` seconds (``hold_behind`` while more of the partition waits at the broker;
at once when a partition seen behind is read to its end - a backlog's last messages do not wait;
and always before a checkpoint, but one that only lets steps out): every fold has a fixed
cost (the columnar reader's set-up, the window fold, the outcome taps - about a millisecond), so
folding the few hundred messages one batch brings per partition cost ~10 us per event
more than folding a few thousand. Messages waiting are not folded, so no offset of theirs is ever
committed: a worker that dies with some waiting gets them again. Alerts, dead letters and
counterexamples of a fold are produced at once. Every ``checkpoint_interval`` seconds (and
on every rebalance, and on SIGTERM) the worker, holding its lock:

1. writes the checkpoint of every unit and of the aggregator that changed (:mod:`.checkpoint`);
2. sends the steps those checkpoints hold in their outboxes to the partials topic, then each
   unit's claim, and flushes the producer;
3. commits, for each unit, the offsets its checkpoint covers - and nothing else: Faust's own
   commits (its commit timer, every-N-acks, after an agent error, on revocation, on stop) are
   disabled (:func:`gated_consumer`).

So a committed offset is always covered by a durable checkpoint, and a worker killed at any point
is replaced from checkpoints whose offsets are at or past the committed ones: redelivered messages
are skipped by offset (at-least-once delivery, exactly-once counting). On assignment the worker
reads the state topic once and restores the units (and the aggregator, with partition 0 of the
partials topic) it was given, whichever worker held them before. Every Kafka client here takes its
settings from :mod:`detector.kafka.clients`. Faust's own web server is off: the HTTP endpoints are
:mod:`detector.kafka.web`'s, started before the worker by ``skewwatch run``.

The checkpoint, restore and commit steps (1-3 above, and the restore on assignment) are
:class:`detector.kafka.durable.Durable`, which the worker mixes in, as it does
:class:`detector.kafka.sending.Sending` (alerts, dead letters and counterexamples out, retried while the
broker is away); the worker's ``/status`` body is
:func:`detector.kafka.views.worker_status`. This module holds the agents, timers and folding.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import time
from typing import Any

from detector.config import Config
from detector.core.reference.profile import Reference
from detector.kafka.clients import ClientSettings, client_settings, refuse_auto_create
from detector.kafka.drain import lean_drain, quiet_monitor
from detector.kafka.durable import Durable, gated_consumer
from detector.kafka.sending import SEND_TIMEOUT, Sending
from detector.kafka.sidecar import Batch, Outbox, Sidecar
from detector.kafka.take import take_batches
from detector.kafka.views import worker_status

__all__ = ["build_app", "Worker"]

log = logging.getLogger("skewwatch.worker")
STEP_FLUSH = 1.0  # seconds: how soon a unit with steps waiting is checkpointed (so the steps can be sent)
END_REFRESH = 0.5  # seconds between end-offset queries of the labels and features partitions held
FOLD_BYTES = 2 << 20  # a partition's gathered messages are folded at this many bytes (~3,000 events of 600 B)...
HOLD = 1.0  # ... or when the oldest has waited this many seconds (while the partition is read to its end) ...
HOLD_BEHIND = 5.0  # ... or this many while more of it waits at the broker (a backlog is being read)
FETCH_BYTES = FOLD_BYTES  # a fetch brings this much per partition (Faust's 1 MiB took several per fold; <= 50 MB in all)
CHECKPOINT_TIMEOUT = 60.0  # seconds a whole checkpoint (chunks, manifests, steps) may take before it is retried


def _warm_up() -> None:
    """Import what the units, the aggregator and the web pages import lazily (river alone takes seconds)."""
    import importlib

    for mod in ("river.drift", "detector.core.state.drift", "detector.core.outcomes.monitor", "detector.core.state.snapshot",
                "detector.core.outcomes.exchange", "detector.core.outcomes.counterexamples", "detector.core.outcomes.contribution",
                "detector.core.checks.adoption", "detector.core.checks.window", "detector.exporters.prometheus", "detector.web.status"):
        importlib.import_module(mod)


class Worker(Durable, Sending):
    """Builds the Faust app for one sidecar process."""

    def __init__(self, cfg: Config, refs: dict[str, Reference], default: Reference | None, *,
                 worker_id: str | None = None, batch: int = 2000, within: float = 0.2, idle_after: float | None = None,
                 settings: ClientSettings | None = None, fold_bytes: int = FOLD_BYTES, hold: float = HOLD) -> None:
        self.cfg = cfg
        self.settings = settings if settings is not None else client_settings(cfg.kafka)
        self.worker_id = worker_id or os.environ.get("HOSTNAME") or socket.gethostname()
        self.sidecar = Sidecar(cfg, refs, default, self.worker_id)
        _warm_up()  # imports now, not on the event loop at the first assignment or checkpoint
        self.sidecar.budget = 0.25  # seconds of stepping per call: the loop keeps answering while catching up
        self.sidecar.ends_exact = False  # a fetch's end offsets may be stale: confirmed by _confirm_ends
        self.catch_up = asyncio.Event()
        self.batch = batch
        self.within = within
        self.fold_bytes = fold_bytes
        self.hold = hold
        self.hold_behind = max(hold, HOLD_BEHIND)
        self.pending: dict[tuple[str, int], _Pending] = {}  # gathered, not folded yet (see the module docstring)
        self.backlogged: set[tuple[str, int]] = set()  # partitions seen with more at the broker than gathered
        self.idle_after = idle_after if idle_after is not None else max(10.0, cfg.detector.allowed_lateness)
        self.lock = asyncio.Lock()
        self.restored = asyncio.Event()  # the start-up work is done (never waits for the broker)
        self.assigned_at: float | None = None  # monotonic time the last assignment was taken over (units restored)
        self.started_at = time.time()
        self.last_checkpoint = 0.0  # monotonic time of the last completed checkpoint (or of the start)
        self.checkpoint_due = 0.0  # monotonic time of the next one (sooner after a failed one)
        self.checkpoint_timeout = CHECKPOINT_TIMEOUT
        self.last_flush = 0.0
        self.checkpoints = 0
        self.checkpoint_failures = 0
        self.send_failures = 0
        self.send_dropped = 0
        self.send_retry_at = 0.0
        # (topic, key, value, headers, alert dict or None) not sent yet: the broker was away
        self.unsent: list[tuple[str, bytes | None, bytes | None, Any, dict[str, Any] | None]] = []
        self.chunks: dict[str, list[str]] = {}  # unit -> chunk keys of its last durable checkpoint
        self.alert_log: list[dict[str, Any]] = []  # recent alerts, for the status page / demo
        self.published: set[tuple[str, str]] = set()  # (alert_id, state) already on the alert topic at restore
        self.restored_counts: dict[str, int] = {"predictions": 0, "labels": 0, "feature_events": 0}
        self.restore_errors = 0
        self.alerts_suppressed = 0
        # Faust's data directory (it stays empty: tables are in memory) is private and temporary, removed
        # with the worker: Faust's default, `<group_id>-data/` in the working directory, litters it - and
        # fails the start where the root filesystem is read-only (the image's working directory)
        self.datadir = tempfile.TemporaryDirectory(prefix="skewwatch-faust-")
        self.app = self._build()

    @property
    def state_prefix(self) -> str:
        return self.cfg.kafka.group_id

    # ------------------------------------------------------------------ app
    def _build(self) -> Any:
        import faust

        cfg = self.cfg
        t = cfg.kafka.topics
        refuse_auto_create(self.settings.client_id)  # topics are created with their partitions and configs, never by a lookup
        app = faust.App(
            cfg.kafka.group_id, broker=self.settings.faust_brokers(), broker_credentials=self.settings.faust_credentials(),
            broker_client_id=self.settings.client_id, datadir=self.datadir.name,
            value_serializer="raw", key_serializer="raw", store="memory://", topic_partitions=t.partitions,
            # no Faust web server (detector.kafka.web serves the endpoints); its /router and /table off regardless
            web_enabled=False, web_router_enabled=False, web_tables_enabled=False,
            broker_commit_every=10**9, broker_commit_interval=10**9,  # never reached: see gated_consumer
            topic_allow_declare=cfg.kafka.create_topics, topic_replication_factor=cfg.kafka.replication_factor or 1,
            topic_disable_leader=True, producer_max_request_size=4 * 1024 * 1024,
            stream_buffer_maxsize=max(4096, 2 * self.batch), broker_max_poll_records=max(500, self.batch),
            consumer_max_fetch_size=FETCH_BYTES,
            consumer_auto_offset_reset="earliest", autodiscover=False,
            # group timings: 6 s is Kafka's minimum session timeout (group.min.session.timeout.ms); a
            # shorter one would speed up joins on the embedded broker (it answers JoinGroup after
            # session/2) but is refused by a real cluster. A dead member is noticed after 6 s.
            table_standby_replicas=0, broker_session_timeout=6.0, broker_heartbeat_interval=1.0,
            broker_rebalance_timeout=10.0, producer_request_timeout=SEND_TIMEOUT,
            Monitor=quiet_monitor(),  # Faust's per-message statistics, read by nothing here
        )
        app.transport.Consumer = lean_drain(gated_consumer(app.transport.Consumer))
        self._partials_topic = f"{cfg.kafka.group_id}-partials"
        self._topics = {
            "predictions": app.topic(t.predictions, value_serializer="raw", key_serializer="raw"),
            "labels": app.topic(t.labels, value_serializer="raw", key_serializer="raw"),
            "features": app.topic(t.features, value_serializer="raw", key_serializer="raw"),
            "partials": app.topic(self._partials_topic, partitions=1, value_serializer="raw", key_serializer="raw"),
            "alerts": app.topic(t.alerts, value_serializer="raw", key_serializer="raw"),
            "dlq": app.topic(t.dlq, value_serializer="raw", key_serializer="raw"),
            "counterexamples": app.topic(t.counterexamples, value_serializer="raw", key_serializer="raw"),
        }
        self._state_topic = f"{cfg.kafka.group_id}-state"
        for name in ("predictions", "labels", "features"):
            self._agent(app, name)

        @app.agent(self._topics["partials"], name="skewwatch.partials")
        async def partials(stream: Any) -> None:
            async for events in stream.take_events(256, within=self.within):
                async with self.lock:
                    for ev in events:
                        msg = ev.message
                        h = {k: v.decode("utf-8", "replace") for k, v in (msg.headers or [])}
                        self.sidecar.on_partials(msg.topic, msg.partition, msg.offset, h, msg.value)
                    await self._send(self.sidecar.aggregate())
                    if self.sidecar.behind:
                        self.catch_up.set()

        @app.timer(interval=max(0.5, min(5.0, cfg.checkpoint_interval / 4)))
        async def ticker() -> None:
            async with self.lock:
                try:
                    self._lags()
                    self.sidecar.tick(self.idle_after)
                    await self._send(self.sidecar.aggregate())
                    if self.sidecar.behind:
                        self.catch_up.set()
                except Exception as exc:  # noqa: BLE001 - an exception in a Faust timer crashes the app
                    log.warning("tick failed (%s: %s); retrying at the next one", type(exc).__name__, exc)
                now = time.monotonic()
                if now >= self.checkpoint_due:
                    await self._checkpoint()
                elif now - self.last_flush >= STEP_FLUSH and any(u.outbox for u in self.sidecar.units.values()):
                    # steps wait for a durable checkpoint of their unit: write those units now, not in
                    # checkpoint_interval, so windows close (and alerts fire) soon after their end
                    await self._checkpoint(only=sorted(n for n, u in self.sidecar.units.items() if u.outbox))

        @app.timer(interval=max(0.05, self.hold / 2))
        async def folder() -> None:  # what waits folds within `hold` even when no more messages come
            if self.pending and self._due(time.monotonic()):
                async with self.lock:
                    await self._fold(self._due(time.monotonic()))

        @app.task
        async def startup() -> None:
            await self._create_state_topic()
            self.last_checkpoint = time.monotonic()
            self.checkpoint_due = self.last_checkpoint + cfg.checkpoint_interval
            self.restored.set()

        @app.task
        async def guard_topics() -> None:  # re-creates what a broker that lost its data lost (Durable._guard_topics)
            await self._guard_topics()

        @app.task
        async def catch_up() -> None:  # a backlog is stepped through in slices, yielding the loop in between
            while True:
                await self.catch_up.wait()
                self.catch_up.clear()
                while True:
                    async with self.lock:
                        try:
                            self.sidecar.tick(self.idle_after)
                            await self._send(self.sidecar.aggregate())
                        except Exception as exc:  # noqa: BLE001 - a crash here would stop the app
                            log.warning("catching up failed (%s: %s)", type(exc).__name__, exc)
                            break
                        more = self.sidecar.behind
                    if not more:
                        break
                    await asyncio.sleep(0)

        @app.task
        async def confirm_ends() -> None:
            failing = 0
            while True:
                await asyncio.sleep(END_REFRESH)
                try:
                    await self._confirm_ends()
                    failing = 0
                except Exception as exc:  # noqa: BLE001 - not assigned yet, or broker trouble: next time
                    failing += 1
                    (log.warning if failing == 20 else log.debug)(
                        "end offsets of the labels and features partitions not confirmed (%s: %s); windows "
                        "with outcomes wait for them (or for the input to go idle)", type(exc).__name__, exc)

        @app.on_partitions_revoked.connect
        async def on_revoked(app_: Any, revoked: Any = None, **kw: Any) -> None:
            async with self.lock:  # bounded (checkpoint_timeout): the group's rebalance waits for this
                await self._checkpoint(all_units=True)

        @app.on_partitions_assigned.connect
        async def on_assigned(app_: Any, assigned: Any = None, **kw: Any) -> None:
            async with self.lock:
                await self._assign(set(assigned or ()))
                self.assigned_at = time.monotonic()

        return app

    def _agent(self, app: Any, name: str) -> None:
        @app.agent(self._topics[name], name=f"skewwatch.{name}")
        async def agent(stream: Any) -> None:
            async for events in take_batches(stream, self.batch, self.fold_bytes, self.within):
                due = self._gather(events, time.monotonic())
                if due:
                    async with self.lock:
                        await self._fold(due)

    def _gather(self, events: list[Any], now: float) -> list[tuple[str, int]]:
        """Append Faust's events to the waiting columns of their topic-partitions; returns the
        partitions due for a fold (``fold_bytes`` waiting, or the oldest waited ``hold`` seconds)."""
        pending = self.pending
        last: _Pending | None = None
        for e in events:
            m = e.message
            if last is None or m.partition != last.batch.partition or m.topic != last.batch.topic:
                last = pending.get((m.topic, m.partition))
                if last is None:
                    last = pending[(m.topic, m.partition)] = _Pending(Batch(m.topic, m.partition, [], [], []), now)
            v = m.value
            last.batch.offsets.append(m.offset)
            last.batch.values.append(v)
            last.batch.keys.append(m.key)
            last.size += len(v) if v is not None else 0
        return self._due(now)

    def _due(self, now: float, everything: bool = False) -> list[tuple[str, int]]:
        """Partitions whose waiting messages fold now: ``fold_bytes`` of them, or the oldest waited
        ``hold`` seconds - ``hold_behind`` while more of the partition waits at the broker: a worker
        reading a backlog (or starved of CPU, fetching slowly) keeps gathering full folds instead of
        paying a fold's fixed cost every ``hold``, which would slow it down further. A partition seen
        behind folds as soon as it is read to its end: the hold gathers what trickles in, not a backlog's tail."""
        due = []
        backlogged = self.backlogged
        for k, p in self.pending.items():
            waited = now - p.since
            behind = self._backlog(k, p)
            if behind:
                backlogged.add(k)
            if everything or p.size >= self.fold_bytes or waited >= self.hold_behind or (
                    not behind and (waited >= self.hold or k in backlogged)):  # a backlog's tail folds at once
                due.append(k)
        return due

    def _taken(self, key: tuple[str, int]) -> _Pending | None:
        """``key``'s waiting messages, taken for a fold (no longer behind if they reach the broker's end)."""
        p = self.pending.pop(key, None)
        if p is not None and key in self.backlogged and not self._backlog(key, p):
            self.backlogged.discard(key)
        return p

    def _backlog(self, key: tuple[str, int], p: _Pending) -> bool:
        """More of this topic-partition is at the broker than was gathered (as of the last fetch)."""
        try:
            from faust.types import TP

            hw = self.app.consumer.highwater(TP(key[0], key[1]))
        except Exception:  # noqa: BLE001 - not assigned (any more), no fetch yet: fold within `hold`
            return False
        return bool(hw is not None and p.batch.offsets and hw > p.batch.offsets[-1] + 1)

    async def _fold(self, keys: list[tuple[str, int]]) -> None:
        """Fold the waiting messages of these topic-partitions (caller holds the lock); send what comes out."""
        self._lags()
        out = Outbox()
        for key in keys:
            p = self._taken(key)
            if p is None:
                continue
            try:
                o = self.sidecar.on_batch(p.batch)
            except KeyError:  # not ours (any more): its owner reads it from the committed offset
                log.info("skipping %d messages of %s:%d, a partition this worker does not hold",
                         len(p.batch.offsets), key[0], key[1])
                continue
            out.dlq.extend(o.dlq)
        await self._send(out)
        if self.sidecar.behind:
            self.catch_up.set()

    def _lags(self) -> None:
        """Tell the units how many messages of each of their topic-partitions are still unread."""
        from faust.types import TP

        consumer = self.app.consumer

        def end(topic: str, partition: int) -> int | None:
            try:
                return consumer.highwater(TP(topic, partition))
            except Exception:  # noqa: BLE001 - not assigned (any more) or not fetched yet: unknown
                return None

        self.sidecar.update_lags(end)

    async def _confirm_ends(self) -> None:
        """Ask the broker for the end offsets of the labels and features partitions held: those read to
        the end are complete up to the predictions folded before the question (see :mod:`.unit`)."""
        from faust.types import TP

        side = self.sidecar
        asked = side.predictions_marks()  # no await before the query: nothing is folded in between
        keys = {tp for name in asked for tp, kind in side.units[name].kinds.items() if kind != "predictions"}
        tps = [TP(topic, int(part)) for topic, _, part in (k.rpartition(":") for k in sorted(keys))]
        if not tps:
            return
        ends = await self.app.consumer.highwaters(*tps)
        async with self.lock:
            side.confirm_ends({f"{tp.topic}:{tp.partition}": int(end) for tp, end in ends.items()}, asked)
            side.tick(self.idle_after)
            await self._send(side.aggregate())
            if side.behind:
                self.catch_up.set()

    def status(self) -> dict[str, Any]:
        """Machine-readable state (``/status?format=json``): :func:`detector.kafka.views.worker_status`."""
        return worker_status(self)

class _Pending:
    """Messages of one topic-partition gathered for the next fold: the columns, their bytes, since when."""

    __slots__ = ("batch", "size", "since")

    def __init__(self, batch: Batch, since: float) -> None:
        self.batch, self.size, self.since = batch, 0, since


def build_app(cfg: Config, refs: dict[str, Reference], default: Reference | None, **kw: Any) -> Worker:
    return Worker(cfg, refs, default, **kw)
