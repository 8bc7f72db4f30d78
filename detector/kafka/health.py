"""What the sidecar process is doing: the answer behind /healthz, /readyz, /status and a few metrics.

Nothing here asks the broker. The process is *live* while its event loop answers, and *ready*
once its configuration is loaded and its web server runs, whatever Kafka does: a native sidecar's
readiness is part of the model's pod, so a broker outage (or, in sidecar mode, a broken config)
must never take the model out of its Service. What is wrong is reported instead — in the
``/readyz`` and ``/status`` bodies, in the logs and in these metrics:

``skewwatch_config_error``
    1 while the process runs without a usable configuration (sidecar mode): it only serves
    health, this error and metrics until the config is fixed.
``skewwatch_kafka_reachable``
    1 when the last attempt to reach the cluster (connect, TLS, SASL, topic check) succeeded.
``skewwatch_kafka_connection_errors_total{reason}``
    failed attempts by reason: ``unreachable``, ``tls``, ``authentication``, ``authorization``,
    ``topics_missing``, ``topics``, ``other``.
``skewwatch_kafka_last_contact_timestamp_seconds``
    when the cluster last answered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Health", "KafkaHealth", "HealthCollector", "REASONS"]

REASONS = ("unreachable", "tls", "authentication", "authorization", "topics_missing", "topics", "other")
PHASES = ("config_error", "connecting", "starting", "running", "stopping")


@dataclass
class KafkaHealth:
    """The outcome of the latest attempts to reach the cluster."""

    reachable: bool = False
    checked: bool = False
    reason: str | None = None
    error: str | None = None  # the last failure, as logged (never a secret)
    failures: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    last_contact: float | None = None
    last_failure: float | None = None

    def ok(self, now: float | None = None) -> None:
        self.reachable = self.checked = True
        self.reason = self.error = None
        self.last_contact = time.time() if now is None else now

    def failed(self, reason: str, error: str, now: float | None = None) -> None:
        reason = reason if reason in REASONS else "other"
        self.reachable, self.checked = False, True
        self.reason, self.error = reason, error
        self.failures[reason] += 1
        self.attempts += 1
        self.last_failure = time.time() if now is None else now

    def as_dict(self) -> dict[str, Any]:
        return {"reachable": self.reachable, "checked": self.checked, "reason": self.reason, "error": self.error,
                "failures": dict(self.failures), "last_contact": self.last_contact}


@dataclass
class Health:
    """Process state shared by the start-up supervisor, the worker and the web endpoints."""

    sidecar: bool = False
    phase: str = "starting"
    config_error: str | None = None
    kafka: KafkaHealth = field(default_factory=KafkaHealth)
    started_at: float = field(default_factory=time.time)
    worker: Any = None  # the running detector.kafka.worker.Worker, once there is one
    client: dict[str, Any] = field(default_factory=dict)  # ClientSettings.describe(): no secrets

    def ready(self) -> bool:
        """Ready unless stopping. Never gated on the broker; a config error is ready only in sidecar mode."""
        if self.phase == "stopping":
            return False
        return self.phase != "config_error" or self.sidecar

    def as_dict(self) -> dict[str, Any]:
        w = self.worker
        restored = bool(w is not None and w.restored.is_set())
        assigned = False
        if w is not None:
            try:
                assigned = bool(w.app.consumer.assignment())
            except Exception:  # noqa: BLE001 - no consumer yet
                assigned = False
        return {"ready": self.ready(), "phase": self.phase, "mode": "sidecar" if self.sidecar else "plain",
                "config_error": self.config_error, "kafka": self.kafka.as_dict(), "restored": restored,
                "partitions_assigned": assigned, "checkpoints": getattr(w, "checkpoints", 0),
                "uptime_seconds": round(time.time() - self.started_at, 1)}


class HealthCollector(Collector):
    """The metrics of :class:`Health`, read at scrape time."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Iterable[Metric]:
        h = self.health
        g = GaugeMetricFamily("skewwatch_config_error", "1 while the process runs without a usable config "
                              "(sidecar mode serves only health, the error and metrics).")
        g.add_metric([], 1.0 if h.config_error else 0.0)
        yield g
        if h.config_error:
            return
        k = h.kafka
        g = GaugeMetricFamily("skewwatch_kafka_reachable", "1 when the last attempt to reach the Kafka cluster "
                              "(connect, TLS, SASL, topic check) succeeded.")
        g.add_metric([], 1.0 if k.reachable else 0.0)
        yield g
        c = CounterMetricFamily("skewwatch_kafka_connection_errors", "Failed attempts to reach the Kafka cluster, "
                                "by reason.", labels=("reason",))
        for reason in REASONS:
            c.add_metric([reason], float(k.failures.get(reason, 0)))
        yield c
        if k.last_contact is not None:
            g = GaugeMetricFamily("skewwatch_kafka_last_contact_timestamp_seconds",
                                  "Unix time the Kafka cluster last answered.")
            g.add_metric([], k.last_contact)
            yield g
