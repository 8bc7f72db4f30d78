"""What makes the worker's counting exactly-once: checkpoints first, then steps and offsets.

:class:`Durable` is the part of :class:`detector.kafka.worker.Worker` that writes and restores state:
on assignment it reads the state topic once and restores the units (and the aggregator) it was given
(:meth:`Durable._assign`); every ``checkpoint_interval`` (and on a rebalance or SIGTERM) it writes the
checkpoint of every unit that changed, sends the steps those checkpoints hold to the partials topic, and
only then commits the offsets they cover (:meth:`Durable._checkpoint`). Faust's own commits are disabled
by :func:`gated_consumer`, so a committed offset is always covered by a durable checkpoint.

A broker may come back without its data (topics, offsets and group state gone). The worker's clients
never have a topic created by looking it up (:func:`detector.kafka.clients.refuse_auto_create`), and
:meth:`Durable._guard_topics` re-creates every topic the worker needs, with its partitions and configs,
as soon as the consumer's metadata lacks one, a rebalance starts, or a checkpoint or commit fails or
hangs. Units dropped meanwhile keep their state in memory for a while, in case the state topic has
nothing usable of them when they come back (:meth:`Durable._assign`). Every wait under the worker's lock
is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from detector.kafka.checkpoint import CHUNK, read_checkpoints, read_published_alerts, write_checkpoint
from detector.kafka.sidecar import AGGREGATOR, Outbox

__all__ = ["Durable", "gated_consumer"]

log = logging.getLogger("skewwatch.worker")
COMMIT_TIMEOUT = 15.0  # seconds an offset commit may take (the worker's lock is held) before it is left to the next one
COMMIT_SLOW = 2.0  # seconds after which a commit still going has every topic checked (a lost topic holds it up)
TOPIC_CHECK = 1.0  # seconds between looks at the consumer's metadata for topics the cluster lost
TOPIC_RETRY = 5.0  # seconds between two attempts to re-create them
KEEP_FOR = 300.0  # seconds a unit dropped while the cluster seemed to have lost its state is kept in memory


def gated_consumer(base: type) -> type:
    """Faust's consumer class without Faust's own offset commits.

    Every commit Faust makes on its own - its commit timer, ``broker_commit_every``, after an agent
    error (``on_task_error``), while draining (``wait_empty``, on revocation and on stop) - goes
    through ``Consumer.commit``; here it commits nothing. :meth:`commit_durable` commits the
    offsets the worker names, after the checkpoint that covers them is durable. Its seek back to the
    committed offsets (after a rebalance) also moves partitions committed at 0, or not at all, to their start.
    """

    class GatedConsumer(base):  # type: ignore[valid-type, misc]
        async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:  # noqa: ARG002
            return False

        async def commit_durable(self, offsets: dict[Any, int]) -> bool:
            if not offsets:
                return False
            return bool(await self._commit(offsets))

        async def seek_to_committed(self) -> Any:
            # Faust drops the records fetched while its flow is stopped (a rebalance) and moves the consumer
            # back to the committed offsets - but aiokafka's seek_to_committed skips a partition whose committed
            # offset is 0 or that has none, leaving the consumer past the records dropped: they were never read
            # (a new log read from its start during a rebalance lost every record fetched before the assignment
            # completed). Such a partition goes back to its beginning, where its reading starts
            # (auto_offset_reset is earliest).
            committed = await super().seek_to_committed()
            start = [tp for tp, off in committed.items() if not off]
            if start:
                past = self._positions(start)
                await self._thread.seek_to_beginning(*start)
                if past:  # an assignment's seek finds none: its positions are not known yet
                    log.info("back to the start of partitions committed at 0 or not at all (records Faust dropped during "
                             "the rebalance are read again): %s", ", ".join(f"{k} (was at {v})" for k, v in sorted(past.items())))
            return committed

        def _positions(self, tps: list[Any]) -> dict[str, int]:
            """``"topic:partition"`` -> the consumer's position, for those of ``tps`` past offset 0."""
            try:  # noqa: SLF001 - aiokafka's position() waits for one; this only looks
                assignment = self._thread._consumer._subscription.subscription.assignment
                states = {tp: assignment.state_value(tp) for tp in tps}
                return {f"{tp.topic}:{tp.partition}": st.position for tp, st in states.items()
                        if st.has_valid_position and st.position > 0}
            except Exception:  # noqa: BLE001 - unassigned meanwhile: nothing to say
                return {}

    return GatedConsumer


class Durable:
    """Checkpoints, restore on assignment and the steps they release (mixed into the worker; see the module)."""

    lost_at = -KEEP_FOR  # monotonic time the cluster was last seen without topics the worker needs
    topics_recreated = 0  # topics this worker re-created after the cluster lost them
    log_resets = 0  # partitions found holding a new log (re-created or truncated): read again from its start
    topics_suspect = False  # a rebalance, or a checkpoint or commit that failed: _guard_topics checks every topic
    kept: dict[str, tuple[Any, float]]  # unit -> (its state, when dropped): see _assign
    new_logs: set[str]  # topics the worker reads that it found missing and created: their logs start again at 0

    async def _send_steps(self, name: str) -> None:
        """A unit's outbox (chunked), then its claim; only called right after a durable checkpoint."""
        msgs, upto, claim = self.sidecar.outgoing(name, CHUNK, self.idle_after)
        futs = [await self.app.producer.send(self._partials_topic, key=k, value=v, partition=0, timestamp=None, headers=h)
                for k, v, h in msgs]
        await asyncio.gather(*futs)
        self.sidecar.sent(name, upto, claim)

    async def _create_state_topic(self) -> None:
        from detector.kafka.topics import ensure_topics, required_topics

        try:  # `skewwatch run` checked every topic before starting; this covers workers built directly
            spec = [s for s in required_topics(self.cfg) if s.name == self._state_topic]
            await ensure_topics(self.settings, spec, create=self.cfg.kafka.create_topics,
                                replication_factor=self.cfg.kafka.replication_factor)
        except Exception as exc:  # noqa: BLE001 - the broker may refuse configs; the topic may exist
            log.debug("state topic check: %s", exc)

    def _missing_topics(self) -> set[str]:
        """The topics the consumer reads that its latest metadata says the cluster does not have (empty when
        the metadata is not known: no broker in it)."""
        try:
            cluster = self.app.consumer._thread._consumer._client.cluster  # noqa: SLF001 - Faust/aiokafka expose no call
            if not cluster.brokers():
                return set()
            known = cluster.topics()
        except Exception:  # noqa: BLE001 - not started yet, or stopping
            return set()
        return (set(self.sidecar.kind_of) | {self._partials_topic}) - set(known)

    async def _guard_topics(self) -> None:
        """Re-create the topics the cluster lost (a broker back without its data), with their partitions and configs.

        The worker's clients never have a topic created by looking it up
        (:func:`~detector.kafka.clients.refuse_auto_create`): the broker would give it its default partition
        count and configs. When the consumer's metadata lacks a topic it reads, on a rebalance, and after a
        checkpoint or an offset commit failed, the worker checks every topic it needs and creates the missing
        ones (``kafka.create_topics``); a principal that may not create them gets the error naming each topic
        and the command that creates it.
        """
        from detector.kafka.topics import ensure_topics, required_topics

        last, said = -TOPIC_RETRY, ""
        while True:
            await asyncio.sleep(TOPIC_CHECK)
            if not self.lock.locked():  # never waits for it: a checkpoint holding it may wait for the topics made below
                try:
                    await self._check_log_ends()
                except Exception as exc:  # noqa: BLE001 - a task that raises stops the app: next time
                    log.debug("log ends not checked: %s", exc)
            missing = self._missing_topics()
            if missing:  # a hint only (the metadata may not list them yet): the admin client's list decides
                self.lost_at = time.monotonic()
            if not (missing or self.topics_suspect) or time.monotonic() - last < TOPIC_RETRY:
                continue
            last = time.monotonic()
            try:
                created = await asyncio.wait_for(ensure_topics(
                    self.settings, required_topics(self.cfg), create=self.cfg.kafka.create_topics,
                    replication_factor=self.cfg.kafka.replication_factor, timeout=TOPIC_RETRY * 2), TOPIC_RETRY * 3)
            except Exception as exc:  # noqa: BLE001 - unreachable, or not allowed to create: said once, retried
                text = f"{type(exc).__name__}: {exc}"
                if text != said:
                    log.error("topics the worker needs could not be checked or re-created (%s); retrying every %.0f s",
                              text, TOPIC_RETRY)
                said = text
                continue
            self.topics_suspect, said = False, ""
            if created:
                self.lost_at = time.monotonic()
                self._lost_logs(set(created))
                self.topics_recreated += len(created)
                log.warning("re-created topics %s: the cluster had lost them (a broker back without its data?)",
                            ", ".join(created), extra={"topics": created})

    def _lost_logs(self, topics: set[str]) -> None:
        """Topics the worker reads that it found missing and created: their logs start again at offset 0."""
        read = set(self.sidecar.kind_of) | {self._partials_topic}
        self.new_logs = getattr(self, "new_logs", set()) | (topics & read)

    async def _start_new_logs(self) -> None:
        """Read the partitions this worker holds of the topics it re-created from their start (caller holds the lock).

        Done before the group rejoins when it can (the rebalance's checkpoint: the consumer then starts at
        offset 0 after the rebalance, from the committed offset), else at the next assignment.
        """
        new = getattr(self, "new_logs", set())
        if not new:
            return
        self.new_logs = set()
        keys = {k: None for k in self._read_offsets() if k.rpartition(":")[0] in new}
        await self._new_logs(keys, seek=False)

    def _states(self) -> list[Any]:
        """The units, the aggregator and the units kept: everything holding offsets read."""
        side = self.sidecar
        return [*side.units.values(), *([side.agg] if side.agg is not None else []),
                *(k[0] for k in getattr(self, "kept", {}).values())]

    def _read_offsets(self) -> dict[str, int]:
        """``"topic:partition"`` -> the last offset read of it."""
        return {k: v for state in self._states() for k, v in state.offsets.items()}

    async def _check_log_ends(self) -> None:
        """A held partition whose log ends before the offset this worker read of it holds a new log (the topic
        was re-created, by whoever, or truncated): its records are read from its start."""
        from faust.types import TP

        consumer, ends = self.app.consumer, {}
        for key, off in self._read_offsets().items():
            topic, _, part = key.rpartition(":")
            try:
                end = consumer.highwater(TP(topic, int(part)))  # as of the last fetch of it
            except Exception:  # noqa: BLE001 - not held (any more)
                continue
            if end is not None and end < off + 1:
                ends[key] = int(end)
        if ends:
            async with self.lock:
                await self._new_logs(ends, seek=True)

    async def _new_logs(self, ends: dict[str, int | None], seek: bool) -> None:
        """Partitions whose log is new: forget the old log's offsets (the duplicate check of the units and of
        the aggregator, what waits to be folded) and set the group's offset to 0 - overwriting an old one a
        commit that waited for the topic may have written - and, with ``seek``, the consumer's position
        (the embedded broker answers a fetch past a log's end with nothing, not OFFSET_OUT_OF_RANGE)."""
        from faust.types import TP

        tps: dict[Any, int] = {}
        for key, end in ends.items():
            topic, _, part = key.rpartition(":")
            old = None
            for state in self._states():
                if key in state.offsets:
                    old = state.offsets.pop(key)
                    state.dirty = True
            self.pending.pop((topic, int(part)), None)  # gathered from the old log's position
            tp = TP(topic, int(part))
            tps[tp] = 0
            if seek:
                try:
                    await asyncio.wait_for(self.app.consumer.seek(tp, 0), COMMIT_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - then the committed 0 places it at the next rebalance
                    log.warning("could not move the consumer to the start of %s (%s)", key, exc)
            self.log_resets += 1
            why = "this worker re-created its topic" if end is None else f"it ends at offset {end}"
            log.warning("%s holds a new log (%s; this worker had read up to offset %s of the old one): its records are "
                        "read from its start", key, why, old,
                        extra={"topic": topic, "partition": int(part), "old_offset": old, "new_end": end})
        if tps:
            try:
                await asyncio.wait_for(self.app.consumer.commit_durable(tps), COMMIT_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - without a committed offset the consumer starts at the earliest
                log.debug("offset 0 of the new logs not committed: %s", exc)

    def _client(self) -> tuple[str, dict[str, Any]]:
        """Bootstrap servers and the other settings for a raw aiokafka client (checkpoint and alert readers)."""
        kw = self.settings.aiokafka()
        return kw.pop("bootstrap_servers"), kw

    async def _assign(self, assigned: set[Any]) -> None:
        """Hold exactly the units (and the aggregator) of ``assigned``, restoring the new ones."""
        side = self.sidecar
        self.topics_suspect = True  # after a rebalance (a broker may be back without its data) every topic is checked
        inputs = set(side.kind_of)
        try:
            side.set_partitions({tp: self.app.consumer.topic_partitions(tp) or 0 for tp in inputs})
        except Exception as exc:  # noqa: BLE001 - metadata not there yet: keep the last known counts
            log.debug("partition counts: %s", exc)
        tps: dict[str, list[str]] = {}
        for tp in assigned:
            if tp.topic in inputs:
                tps.setdefault(side.unit_of(tp.topic, tp.partition), []).append(f"{tp.topic}:{tp.partition}")
        want_agg = any(tp.topic == self._partials_topic and tp.partition == 0 for tp in assigned)
        # A unit (or the aggregator) dropped while its last checkpoint failed, or while the cluster seems to
        # have lost its state (topics missing now or lately: the state topic may be gone too), is kept for
        # KEEP_FOR seconds: if it comes back and the state topic has no usable checkpoint of it, it goes on
        # from this copy - the only one there is - instead of from empty state
        now = time.monotonic()
        kept = self.kept = {n: k for n, k in getattr(self, "kept", {}).items() if now - k[1] < KEEP_FOR}
        lost = now - self.lost_at < KEEP_FOR or bool(self._missing_topics())
        for name in list(side.units):
            if name not in tps:
                if lost or side.units[name].dirty:
                    kept[name] = (side.units[name], now)
                side.drop_unit(name)
                self.chunks.pop(name, None)
        held = {(tp.topic, tp.partition) for tp in assigned}
        self.backlogged &= held
        for key in [k for k in self.pending if k not in held]:  # never folded, never committed: the new owner reads them
            del self.pending[key]
        if not want_agg and side.agg is not None:
            if lost or side.agg.dirty:
                kept[AGGREGATOR] = (side.agg, now)
            side.agg = None
            self.chunks.pop(AGGREGATOR, None)
        todo = {n for n in tps if n not in side.units} | ({AGGREGATOR} if want_agg and side.agg is None else set())
        found: dict[str, Any] = {}
        bootstrap, kw = self._client()
        if todo:
            try:
                found = await asyncio.wait_for(
                    read_checkpoints(bootstrap, self._state_topic, self.state_prefix, todo, **kw), timeout=60.0)
            except Exception as exc:  # noqa: BLE001 - broker trouble: start these units fresh, loudly
                log.error("could not read checkpoints (%s: %s); starting %s from empty state", type(exc).__name__, exc,
                          sorted(todo))
                self.restore_errors += 1
        for name in sorted(todo):
            got = found.get(name)
            held = kept.pop(name, None)
            if held is not None and (got is None or isinstance(got, Exception)):
                if name == AGGREGATOR:
                    side.agg = held[0]
                    side.agg.expected = side.expected_units()
                else:
                    side.add_unit(held[0], tps[name])
                held[0].dirty = True  # checkpointed again soon: the state topic has nothing usable of it
                log.warning("%s has no usable checkpoint in the state topic (%s); it goes on from the state this "
                            "worker kept", name, "none" if got is None else got)
                continue
            if name == AGGREGATOR:
                side.agg = side.new_aggregator()
            else:
                side.add_unit(side.new_unit(name), tps[name])
            if isinstance(got, Exception):
                self.restore_errors += 1
                log.error("checkpoint of %s refused (%s); it starts from empty state", name, got)
            elif got is not None:
                blob, keys = got
                self.chunks[name] = keys  # tombstoned by the next checkpoint
                try:
                    side.restore(name, blob)
                    log.info("restored %s from its checkpoint", name, extra={"bytes": len(blob)})
                except Exception as exc:  # noqa: BLE001 - never trust a checkpoint enough to crash on it
                    self.restore_errors += 1
                    log.error("checkpoint of %s unusable (%s: %s); it starts from empty state", name, type(exc).__name__, exc)
            if name != AGGREGATOR:
                u = side.units[name]
                for k, attr in (("predictions", "predictions"), ("labels", "labels"), ("feature_events", "feature_events")):
                    self.restored_counts[k] += int(getattr(u.engine.counters, attr))
        if AGGREGATOR in todo and side.agg is not None:
            try:
                self.published = await asyncio.wait_for(
                    read_published_alerts(bootstrap, self.cfg.kafka.topics.alerts, **kw), timeout=60.0)
            except Exception as exc:  # noqa: BLE001 - worst case: an alert is sent twice
                log.warning("could not read the alert topic (%s); alerts raised again after the checkpoint are re-sent",
                            type(exc).__name__)
        for name, t_ in tps.items():
            side.assign_tps(name, t_)
        if getattr(self, "new_logs", None):
            await self._start_new_logs()

    async def _checkpoint(self, all_units: bool = False, only: list[str] | None = None) -> None:
        """Checkpoint (caller holds the lock), send what the checkpoints hold, then commit what they cover.

        ``only``: just these units (their steps are waiting); otherwise every unit and the aggregator
        that changed (``all_units``: all of them).
        """
        side = self.sidecar
        # what waits is folded first, so the checkpoint covers every message received - except for a
        # checkpoint that only lets waiting steps out (``only``): it covers what its units folded (no
        # offset of a waiting message is committed), and the messages keep gathering towards a full fold
        if self.pending and only is None:
            await self._fold(self._due(0.0, everything=True))
        self.last_flush = time.monotonic()
        if only is not None:
            names = [n for n in only if n in side.units]
        elif all_units:  # a rebalance (a broker may be back without its data; the commit below waits for its topics)
            self.topics_suspect = True
            names = sorted(side.units) + ([AGGREGATOR] if side.agg is not None else [])
        else:
            names = side.dirty()
        written: list[str] = []

        async def write() -> None:
            for name in names:
                blob = side.checkpoint(name)
                self.chunks[name] = await write_checkpoint(self.app.producer, self._state_topic, self.state_prefix, name,
                                                           blob, self.chunks.get(name), worker=self.worker_id)
                written.append(name)
                if name == AGGREGATOR:
                    side.agg.dirty = False  # type: ignore[union-attr]
                else:
                    side.units[name].dirty = False
            for name in sorted(side.units):  # steps the durable checkpoints hold, and every unit's claim (liveness)
                await self._send_steps(name)

        try:  # bounded: the lock is held, and a revocation waits for this (a stuck send must not stall the group)
            if self.unsent:
                self.send_retry_at = 0.0  # a checkpoint always tries them
                await self._send(Outbox())
                if self.unsent:
                    raise ConnectionError(f"{len(self.unsent)} alert/dead-letter messages not sent yet")
            await asyncio.wait_for(write(), self.checkpoint_timeout)
        except Exception as exc:  # noqa: BLE001 - broker away: keep running, commit nothing, retry soon
            self.checkpoint_failures += 1
            log.warning("checkpoint not completed (%s: %s); offsets not committed; retrying in 5 s", type(exc).__name__,
                        str(exc) or f"no answer within {self.checkpoint_timeout:.0f} s")
            self.topics_suspect = True
            for name in written:
                (side.agg if name == AGGREGATOR else side.units.get(name)).dirty = True  # type: ignore[union-attr]
            if only is None:
                self.checkpoint_due = time.monotonic() + min(5.0, self.cfg.checkpoint_interval)
            return
        offsets: dict[Any, int] = {}
        from faust.types import TP

        for name in written:
            src = side.agg.offsets if name == AGGREGATOR else side.units[name].offsets  # type: ignore[union-attr]
            for key, off in src.items():
                topic, _, part = key.rpartition(":")
                if part.isdigit():
                    offsets[TP(topic, int(part))] = off + 1
        commit = asyncio.ensure_future(self.app.consumer.commit_durable(offsets))
        try:  # bounded: the lock is held, and aiokafka retries a commit for as long as the group's coordinator
            # or one of its topics is missing - a broker back without its data: _guard_topics looks at once
            if not (await asyncio.wait({commit}, timeout=COMMIT_SLOW))[0]:
                self.topics_suspect = True
            await asyncio.wait_for(commit, COMMIT_TIMEOUT - COMMIT_SLOW)
        except Exception as exc:  # noqa: BLE001 - a failed commit only means more redelivery (skipped by offset)
            self.topics_suspect = True
            log.warning("offset commit failed (%s: %s); the next checkpoint of these units commits them",
                        type(exc).__name__, str(exc) or f"no answer within {COMMIT_TIMEOUT:.0f} s")
        if getattr(self, "new_logs", None):
            await self._start_new_logs()
        if only is None:
            self.last_checkpoint = time.monotonic()
            self.checkpoint_due = self.last_checkpoint + self.cfg.checkpoint_interval
        self.checkpoints += 1

    async def checkpoint_now(self) -> None:
        async with self.lock:
            await self._checkpoint(all_units=True)
