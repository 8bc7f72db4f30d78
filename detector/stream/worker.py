"""The Faust worker: thin agents around :class:`~detector.stream.sidecar.Sidecar`.

Agents take raw bytes in batches (``stream.take_events``) and hand them to the sidecar; what
comes back is produced to the alert, dead-letter, counterexample (worst errors of matured
cohorts, ``kafka.topics.counterexamples``) and partials topics. A timer checkpoints the
state (engines + offsets) to the state topic and only then commits the consumer offsets, so a
worker killed at any point restarts from a checkpoint whose offsets are never behind the
committed ones (at-least-once without double counting). Every Kafka client here takes its
settings from :mod:`detector.stream.clients`. Faust's own web server is off: the HTTP endpoints
are :mod:`detector.stream.web`'s, started before the worker by ``skewwatch run``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

import orjson

from detector.config import Config
from detector.core.engine import Partial
from detector.core.reference import Reference
from detector.stream.checkpoint import read_checkpoint, read_published_alerts, write_checkpoint
from detector.stream.clients import ClientSettings, client_settings
from detector.stream.sidecar import Message, Outbox, Sidecar

__all__ = ["build_app", "Worker"]

log = logging.getLogger("skewwatch.worker")


class Worker:
    """Builds the Faust app for one sidecar process."""

    def __init__(self, cfg: Config, refs: dict[str, Reference], default: Reference | None, *,
                 worker_id: str | None = None, batch: int = 2000, within: float = 0.2, idle_after: float | None = None,
                 settings: ClientSettings | None = None) -> None:
        self.cfg = cfg
        self.settings = settings if settings is not None else client_settings(cfg.kafka)
        self.worker_id = worker_id or os.environ.get("HOSTNAME") or socket.gethostname()
        self.sidecar = Sidecar(cfg, refs, default, self.worker_id)
        self.batch = batch
        self.within = within
        self.idle_after = idle_after if idle_after is not None else max(10.0, cfg.detector.allowed_lateness)
        self.lock = asyncio.Lock()
        self.restored = asyncio.Event()
        self.started_at = time.time()
        self.last_checkpoint = 0.0
        self.checkpoints = 0
        self.alert_log: list[dict[str, Any]] = []  # recent alerts, for the status page / demo
        self.published: set[tuple[str, str]] = set()  # (alert_id, state) already on the alert topic at restore
        self.restored_counts: dict[str, int] = {}  # ingest counters the checkpoint held (status page)
        self.alerts_suppressed = 0
        self.app = self._build()

    @property
    def state_key(self) -> str:
        return f"{self.cfg.kafka.group_id}/{self.worker_id}"

    # ------------------------------------------------------------------ app
    def _build(self) -> Any:
        import faust

        cfg = self.cfg
        t = cfg.kafka.topics
        app = faust.App(
            cfg.kafka.group_id, broker=self.settings.faust_brokers(), broker_credentials=self.settings.faust_credentials(),
            broker_client_id=self.settings.client_id,
            value_serializer="raw", key_serializer="raw", store="memory://", topic_partitions=t.partitions,
            # no Faust web server (detector.stream.web serves the endpoints); its /router and /table off regardless
            web_enabled=False, web_router_enabled=False, web_tables_enabled=False,
            broker_commit_every=10**9, broker_commit_interval=10**9,  # we commit after checkpoints
            topic_allow_declare=cfg.kafka.create_topics, topic_replication_factor=cfg.kafka.replication_factor or 1,
            topic_disable_leader=True, producer_max_request_size=4 * 1024 * 1024,
            stream_buffer_maxsize=max(4096, 2 * self.batch), broker_max_poll_records=max(500, self.batch),
            consumer_auto_offset_reset="earliest", autodiscover=False,
            # group timings: 6 s is Kafka's minimum session timeout (group.min.session.timeout.ms); a
            # shorter one would speed up joins on the embedded broker (it answers JoinGroup after
            # session/2) but is refused by a real cluster. A dead member is noticed after 6 s.
            table_standby_replicas=0, broker_session_timeout=6.0, broker_heartbeat_interval=1.0,
            broker_rebalance_timeout=10.0,
        )
        self._topics = {
            "predictions": app.topic(t.predictions, value_serializer="raw", key_serializer="raw"),
            "labels": app.topic(t.labels, value_serializer="raw", key_serializer="raw"),
            "features": app.topic(t.features, value_serializer="raw", key_serializer="raw"),
            "partials": app.topic(f"{cfg.kafka.group_id}-partials", partitions=1, value_serializer="raw", key_serializer="raw"),
            "alerts": app.topic(t.alerts, value_serializer="raw", key_serializer="raw"),
            "dlq": app.topic(t.dlq, value_serializer="raw", key_serializer="raw"),
            "counterexamples": app.topic(t.counterexamples, value_serializer="raw", key_serializer="raw"),
        }
        self._state_topic = f"{cfg.kafka.group_id}-state"
        handlers = {"predictions": self.sidecar.on_predictions, "labels": self.sidecar.on_labels,
                    "features": self.sidecar.on_features}
        for name, handler in handlers.items():
            self._agent(app, name, handler)

        @app.agent(self._topics["partials"], name="skewwatch.partials")
        async def partials(stream: Any) -> None:
            async for events in stream.take_events(64, within=self.within):
                await self.restored.wait()
                async with self.lock:
                    out = Outbox()
                    for ev in events:
                        msg = ev.message
                        h = {k: v.decode() for k, v in (msg.headers or [])}
                        off_key = f"{msg.topic}:{msg.partition}"
                        if msg.offset <= self.sidecar.offsets.get(off_key, -1):
                            continue
                        self.sidecar.offsets[off_key] = msg.offset
                        p = Partial.from_bytes(msg.value) if h.get("skewwatch-kind") == "partial" else None
                        o = self.sidecar.on_partial(h.get("skewwatch-worker", "?"), float(h.get("skewwatch-watermark", "-inf")), p)
                        out.alerts.extend(o.alerts)
                    await self._send(out)

        @app.timer(interval=max(0.5, min(5.0, cfg.checkpoint_interval / 4)))
        async def ticker() -> None:
            if not self.restored.is_set():
                return
            async with self.lock:
                try:
                    out = self.sidecar.tick(self.idle_after)
                    await self._send(out)
                    await self._heartbeat()
                except Exception as exc:  # noqa: BLE001 - an exception in a Faust timer crashes the app
                    log.warning("tick failed (%s: %s); retrying at the next one", type(exc).__name__, exc)
                if time.monotonic() - self.last_checkpoint >= cfg.checkpoint_interval:
                    await self._checkpoint()

        @app.task
        async def restore() -> None:
            await self._restore()

        return app

    def _agent(self, app: Any, name: str, handler: Any) -> None:
        topic = getattr(self.cfg.kafka.topics, name)

        @app.agent(self._topics[name], name=f"skewwatch.{name}")
        async def agent(stream: Any) -> None:
            async for events in stream.take_events(self.batch, within=self.within):
                await self.restored.wait()
                msgs = [Message(e.message.topic, e.message.partition, e.message.offset, e.message.value, e.message.key)
                        for e in events]
                async with self.lock:
                    if name == "predictions":  # the watermark follows the slowest owned partition
                        self.sidecar.assigned({f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()
                                               if tp.topic == topic})
                    out = handler(msgs)
                    await self._send(out)

    def status(self) -> dict[str, Any]:
        """Machine-readable state (``/status?format=json``): ingest and label-join counters, alerts."""
        side = self.sidecar
        c = side.engine.counters
        counters = {"predictions": c.predictions, "labels": c.labels, "feature_events": c.feature_events,
                    "invalid": dict(c.invalid), "late": c.late, "max_event_ts": c.max_event_ts
                    if c.max_event_ts != float("-inf") else None}
        join: dict[str, Any] = {}
        mon = side.engine.outcomes
        if mon is not None:
            join = {k: int(v) for k, v in mon.join.counters.items()}
            join.update(pending=len(mon.join.store), early_held=len(mon.join.early))
        wm = side.watermark
        return {
            "worker": self.worker_id, "group": self.cfg.kafka.group_id, "restored": self.restored.is_set(),
            "uptime_seconds": round(time.time() - self.started_at, 1), "checkpoints": self.checkpoints,
            "counters": counters, "label_join": join, "duplicates": side.duplicates, "dlq_total": side.dlq_total,
            "alerts_suppressed": self.alerts_suppressed, "restored_counts": self.restored_counts,
            "watermark": wm if wm != float("-inf") else None, "offsets": dict(side.offsets),
            "aggregator": {"windows_closed": side.agg.counters.windows_closed, "late": side.agg.counters.late,
                           "alerts_fired": side.agg.counters.alerts_fired,
                           "alerts_resolved": side.agg.counters.alerts_resolved, "sources": sorted(side.sources)},
            "firing": side.agg.alerts.firing(), "recent": self.alert_log[-50:],
        }

    # ------------------------------------------------------------------ output
    async def _send(self, out: Outbox) -> None:
        t = self._topics
        for a in out.alerts:
            if self.published and (a.alert_id, a.state) in self.published:
                self.alerts_suppressed += 1  # re-raised while replaying what followed the checkpoint
                log.info("not re-sending alert %s %s", a.state, a.alert_id)
                continue
            d = a.to_dict()
            self.alert_log.append(d)
            del self.alert_log[:-500]
            await t["alerts"].send(key=a.key.encode(), value=orjson.dumps(d))
            log.info("alert %s %s", d["state"], d["summary"],
                     extra={"kind": d["kind"], "feature": d["feature"], "slice": d["slice"], "alert_id": d["alert_id"]})
        for m, e in out.dlq:
            headers = [("source-topic", m.topic.encode()), ("source-partition", str(m.partition).encode()),
                       ("source-offset", str(m.offset).encode()), ("reason", e.reason.encode()),
                       ("detail", e.detail[:500].encode())]
            await t["dlq"].send(key=m.key, value=m.value if m.value is not None else e.raw, headers=headers)
        if out.dlq:
            log.warning("dead-lettered %d messages", len(out.dlq), extra={"reasons": sorted({e.reason for _, e in out.dlq})})
        for rec in out.counterexamples:  # worst false positives / negatives of a matured cohort
            await t["counterexamples"].send(key=f"{rec['model']}/{rec['prediction_id']}".encode(), value=orjson.dumps(rec))
        ps = out.partials
        for i, p in enumerate(ps):
            # The aggregator advances to a partial's watermark as soon as it has merged it, and
            # then takes any window that starts before the watermark's window as closed: a later
            # partial of the same batch (several windows close at once when a backlog is read)
            # would be dropped as late. So each partial but the last carries a watermark no later
            # than the start of the next one.
            wm = self.sidecar.watermark
            if i + 1 < len(ps):
                wm = min(wm, ps[i + 1].window.start)
            await self._send_partial(p, wm)

    async def _send_partial(self, p: Partial | None, watermark: float | None = None) -> None:
        wm = self.sidecar.watermark if watermark is None else watermark
        headers = [("skewwatch-worker", self.worker_id.encode()),
                   ("skewwatch-watermark", repr(wm).encode()),
                   ("skewwatch-kind", b"partial" if p is not None else b"heartbeat")]
        await self._topics["partials"].send(key=(p.model if p else "heartbeat").encode(),
                                            value=p.to_bytes() if p is not None else b"", headers=headers)

    async def _heartbeat(self) -> None:
        await self._send_partial(None)

    # ------------------------------------------------------------------ state
    async def _restore(self) -> None:
        from detector.stream.topics import ensure_topics, required_topics

        try:  # `skewwatch run` checked every topic before starting; this covers workers built directly
            spec = [s for s in required_topics(self.cfg) if s.name == self._state_topic]
            await ensure_topics(self.settings, spec, create=self.cfg.kafka.create_topics,
                                replication_factor=self.cfg.kafka.replication_factor)
        except Exception as exc:  # noqa: BLE001 - the broker may refuse configs; the topic may exist
            log.debug("state topic check: %s", exc)
        kw = self.settings.aiokafka()
        bootstrap = kw.pop("bootstrap_servers")
        try:
            data = await asyncio.wait_for(read_checkpoint(bootstrap, self._state_topic, self.state_key, **kw), timeout=45.0)
        except Exception as exc:  # noqa: BLE001
            log.error("could not read checkpoints (%s); starting from empty state", type(exc).__name__)
            data = None
        if data:
            try:
                self.sidecar.restore(data)
                log.info("restored state from checkpoint", extra={"bytes": len(data), "offsets": len(self.sidecar.offsets)})
            except Exception as exc:  # noqa: BLE001
                log.error("checkpoint unusable (%s); starting from empty state", exc)
            try:
                self.published = await read_published_alerts(bootstrap, self.cfg.kafka.topics.alerts, **kw)
            except Exception as exc:  # noqa: BLE001 - worst case: an alert is sent twice
                log.warning("could not read the alert topic (%s); alerts raised again after the checkpoint are re-sent",
                            type(exc).__name__)
        c = self.sidecar.engine.counters
        self.restored_counts = {"predictions": c.predictions, "labels": c.labels, "feature_events": c.feature_events}
        self.last_checkpoint = time.monotonic()
        self.restored.set()

    async def _checkpoint(self) -> None:
        """Snapshot (under the lock), write, then commit the offsets the snapshot covers."""
        data = self.sidecar.checkpoint()
        try:
            await write_checkpoint(self.app.producer, self._state_topic, self.state_key, data)
        except Exception as exc:  # noqa: BLE001 - broker away: keep running, commit nothing, retry soon
            log.warning("checkpoint not written (%s: %s); offsets not committed; retrying in 5 s",
                        type(exc).__name__, exc)
            self.last_checkpoint = time.monotonic() - self.cfg.checkpoint_interval + min(5.0, self.cfg.checkpoint_interval)
            return
        try:
            await self.app.consumer.commit()
        except Exception as exc:  # noqa: BLE001 - a failed commit only means more redelivery (deduplicated)
            log.warning("offset commit failed: %s", exc)
        self.last_checkpoint = time.monotonic()
        self.checkpoints += 1

    async def checkpoint_now(self) -> None:
        async with self.lock:
            await self._checkpoint()


def build_app(cfg: Config, refs: dict[str, Reference], default: Reference | None, **kw: Any) -> Worker:
    return Worker(cfg, refs, default, **kw)
