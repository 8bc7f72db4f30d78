"""The topics the sidecar reads and writes, and making sure they exist.

:func:`required_topics` lists them with their partitions and configs. :func:`ensure_topics`
connects with the shared client settings (:mod:`detector.kafka.clients`) and either creates the
missing ones (``kafka.create_topics: true``, the default) or, for a principal without CREATE
rights (``false``), only checks: a missing topic is then a :class:`TopicsMissing` error that names
each topic and the command that creates it. The replication factor of created topics is
``kafka.replication_factor``, by default ``min(3, brokers in the cluster)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from detector.config import Config
from detector.kafka.clients import ClientSettings

__all__ = ["TopicSpec", "TopicsMissing", "TopicsError", "required_topics", "ensure_topics", "create_topics"]

_TOPIC_ALREADY_EXISTS = 36
_NOT_AUTHORIZED = {29: "TOPIC_AUTHORIZATION_FAILED", 31: "CLUSTER_AUTHORIZATION_FAILED"}
_INVALID_REPLICATION_FACTOR = 38


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)

    def create_command(self, replication_factor: int | str) -> str:
        """The ``kafka-topics.sh`` line that creates it (for error messages and docs)."""
        cfgs = "".join(f" --config {k}={v}" for k, v in sorted(self.configs.items()))
        return (f"kafka-topics.sh --create --topic {self.name} --partitions {self.partitions} "
                f"--replication-factor {replication_factor}{cfgs}")


class TopicsError(RuntimeError):
    """Topics could not be checked or created; ``reason`` is a short fixed word for metrics."""

    reason = "topics"


class TopicsMissing(TopicsError):
    """Required topics do not exist and may not (or could not) be created here."""

    reason = "topics_missing"

    def __init__(self, missing: list[TopicSpec], replication_factor: int | None, why: str = "") -> None:
        self.missing = missing
        rf: int | str = replication_factor or "N"
        lines = "\n  ".join(s.create_command(rf) for s in missing)
        super().__init__(
            f"{len(missing)} topic(s) missing: {', '.join(s.name for s in missing)}{why}. Create them, e.g.\n  {lines}\n"
            "or let skewwatch create them: grant its principal CREATE and set kafka.create_topics: true")


def required_topics(cfg: Config) -> list[TopicSpec]:
    """Every topic ``skewwatch run`` reads or writes, with the partitions it needs."""
    t, g = cfg.kafka.topics, cfg.kafka.group_id
    inputs = [TopicSpec(n, t.partitions) for n in (t.predictions, t.labels, t.features)]
    outputs = [TopicSpec(n, 1) for n in (t.alerts, t.dlq, t.counterexamples)]
    internal = [TopicSpec(f"{g}-partials", 1), TopicSpec(f"{g}-state", 1, {"cleanup.policy": "compact"})]
    return inputs + outputs + internal


async def ensure_topics(settings: ClientSettings, specs: Iterable[TopicSpec], *, create: bool = True,
                        replication_factor: int | None = None, timeout: float = 30.0) -> list[str]:
    """Make sure every topic of ``specs`` exists; returns the names it created (empty when none).

    Raises :class:`TopicsMissing` when some are missing and ``create`` is false or the principal
    may not create them, :class:`TopicsError` for other refusals, and the client's own exception
    (connection, TLS, authentication) when the cluster cannot be reached.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    specs = list(specs)
    admin = AIOKafkaAdminClient(**settings.aiokafka(request_timeout_ms=int(timeout * 1000)))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout))
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        if not create:
            raise TopicsMissing(missing, replication_factor, " and kafka.create_topics is false")
        rf = replication_factor or min(3, max(1, len((await admin.describe_cluster()).get("brokers", ()))))
        new = [NewTopic(s.name, s.partitions, rf, topic_configs=dict(s.configs)) for s in missing]
        response = await asyncio.wait_for(admin.create_topics(new, timeout_ms=int(timeout * 1000)), timeout)
        errors = {e[0]: (e[1], e[2] if len(e) > 2 else None) for e in map(tuple, response.topic_errors)}
        refused = [s for s in missing if errors.get(s.name, (0,))[0] in _NOT_AUTHORIZED]
        if refused:
            code = errors[refused[0].name][0]
            raise TopicsMissing(refused, rf, f" and this principal may not create them ({_NOT_AUTHORIZED[code]})")
        failed = {n: err for n, err in errors.items() if err[0] not in (0, _TOPIC_ALREADY_EXISTS)}
        if failed:
            hint = ""
            if any(code == _INVALID_REPLICATION_FACTOR for code, _ in failed.values()):
                hint = f"; replication factor {rf} is more than the cluster allows: set kafka.replication_factor"
            raise TopicsError("creating topics failed: " + "; ".join(
                f"{n}: error {code}{f' {msg}' if msg else ''}" for n, (code, msg) in sorted(failed.items())) + hint)
        # created here: one someone else created since the list above was not (its log is not new to the caller)
        return [s.name for s in missing if errors.get(s.name, (0,))[0] != _TOPIC_ALREADY_EXISTS]
    finally:
        await admin.close()


async def create_topics(settings: ClientSettings, topics: Mapping[str, int], *, replication_factor: int | None = None,
                        configs: Mapping[str, str] | None = None, timeout: float = 30.0) -> list[str]:
    """Create ``{name: partitions}`` (all with ``configs``); existing topics are left as they are."""
    specs = [TopicSpec(n, p, dict(configs or {})) for n, p in topics.items()]
    return await ensure_topics(settings, specs, create=True, replication_factor=replication_factor, timeout=timeout)
