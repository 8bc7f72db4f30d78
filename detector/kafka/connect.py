"""Reaching the Kafka cluster without ever giving up: check, classify the failure, back off, retry.

:func:`check_cluster` makes one complete attempt — a direct connection to a bootstrap server with
the real security settings (TCP, then TLS, then SASL), then the topic check or creation — and
raises :class:`ClusterError` with a fixed ``reason`` (``unreachable``, ``tls``, ``authentication``,
``authorization``, ``topics_missing``, ``topics``, ``other``) and a message that names the fix.
:func:`connect` repeats it with capped exponential backoff (1 s doubling to 30 s, jittered) until
it succeeds or the process is asked to stop, recording each outcome in
:class:`~detector.kafka.health.KafkaHealth` for ``/readyz`` and the metrics. :func:`watch`
re-checks reachability while the worker runs, so the metric stays true during an outage (the
worker's own clients reconnect by themselves).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Iterable

from detector.kafka.clients import ClientSettings
from detector.kafka.health import KafkaHealth
from detector.kafka.topics import TopicsError, TopicsMissing, TopicSpec, ensure_topics

__all__ = ["ClusterError", "check_cluster", "connect", "handshake", "watch", "backoff_delays"]

log = logging.getLogger("skewwatch.kafka")


class ClusterError(RuntimeError):
    """One failed attempt to use the cluster; ``reason`` is a metric label value."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def backoff_delays(base: float = 1.0, cap: float = 30.0, rng: random.Random | None = None) -> Iterable[float]:
    """1, 2, 4, … seconds up to ``cap``, each jittered down by up to half (many pods, one broker)."""
    r = rng or random.Random()
    n = 0
    while True:
        d = min(cap, base * 2**n)
        yield d * r.uniform(0.5, 1.0)
        n = min(n + 1, 30)


async def handshake(settings: ClientSettings, timeout: float = 10.0) -> None:
    """Open one connection to a bootstrap server with every security setting, then close it.

    aiokafka's own bootstrap only says "Unable to bootstrap"; a direct connection raises the real
    cause (refused, timed out, certificate rejected, SASL refused), which :func:`_classify` names.
    """
    from aiokafka.conn import create_conn

    errors: list[tuple[str, BaseException]] = []
    kw = settings.aiokafka(request_timeout_ms=int(timeout * 1000))
    kw.pop("bootstrap_servers")
    for hostport in settings.bootstrap:
        host, _, port = hostport.rpartition(":")
        try:
            conn = await asyncio.wait_for(create_conn(host.strip("[]"), int(port or 9092), **kw), timeout)
        except Exception as exc:  # noqa: BLE001 - classified below
            errors.append((hostport, exc))
            continue
        conn.close()
        return
    # the most telling failure: one that got past TCP (TLS, SASL) beats "refused"
    hostport, exc = max(errors, key=lambda e: _rank(e[1]))
    raise _classify(settings, hostport, exc, timeout) from exc


async def check_cluster(settings: ClientSettings, specs: Iterable[TopicSpec], *, create: bool,
                        replication_factor: int | None, timeout: float = 15.0) -> list[str]:
    """One full attempt: :func:`handshake`, then the topics. Returns the topics created."""
    await handshake(settings, timeout)
    try:
        return await ensure_topics(settings, specs, create=create, replication_factor=replication_factor,
                                   timeout=timeout)
    except TopicsMissing as exc:
        raise ClusterError("authorization" if "may not create" in str(exc) else exc.reason, str(exc)) from exc
    except TopicsError as exc:
        raise ClusterError(exc.reason, str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - lost between the handshake and here
        raise ClusterError("other", f"checking topics on {settings.bootstrap_servers} failed: "
                                    f"{type(exc).__name__}: {exc}") from exc


async def connect(settings: ClientSettings, specs: Iterable[TopicSpec], health: KafkaHealth, stop: asyncio.Event, *,
                  create: bool, replication_factor: int | None, timeout: float = 15.0,
                  delays: Iterable[float] | None = None) -> bool:
    """Retry :func:`check_cluster` until it succeeds (True) or ``stop`` is set (False)."""
    specs = list(specs)
    waits = iter(delays if delays is not None else backoff_delays())
    last_reason: str | None = None
    while not stop.is_set():
        try:
            created = await check_cluster(settings, specs, create=create, replication_factor=replication_factor,
                                          timeout=timeout)
        except ClusterError as exc:
            health.failed(exc.reason, str(exc))
            delay = next(waits)
            level = logging.ERROR if exc.reason != last_reason else logging.WARNING
            log.log(level, "Kafka not usable yet (%s): %s; retrying in %.1f s", exc.reason, exc, delay,
                    extra={"reason": exc.reason, "attempt": health.attempts, "retry_in_seconds": round(delay, 1)})
            last_reason = exc.reason
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            continue
        health.ok()
        log.info("Kafka cluster reachable%s", f"; created topics {', '.join(created)}" if created else "",
                 extra={"bootstrap": settings.bootstrap_servers, "attempts": health.attempts + 1})
        return True
    return False


async def watch(settings: ClientSettings, health: KafkaHealth, stop: asyncio.Event, interval: float = 30.0,
                timeout: float = 10.0) -> None:
    """Every ``interval`` seconds, :func:`handshake` again and record the outcome (logs on change only)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
            return
        except TimeoutError:
            pass
        was = health.reachable
        try:
            await handshake(settings, timeout)
        except ClusterError as exc:
            health.failed(exc.reason, str(exc))
            if was:
                log.warning("Kafka cluster lost (%s): %s", exc.reason, exc, extra={"reason": exc.reason})
            continue
        health.ok()
        if not was:
            log.info("Kafka cluster reachable again", extra={"bootstrap": settings.bootstrap_servers})


# -------------------------------------------------------------------------------------------- classify


def _rank(exc: BaseException) -> int:
    if isinstance(exc, ssl.SSLError):
        return 3
    if isinstance(exc, OSError) and not _is_kafka_error(exc):
        return 1
    return 2


def _is_kafka_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("aiokafka")


def _classify(settings: ClientSettings, hostport: str, exc: BaseException, timeout: float) -> ClusterError:
    what = f"{type(exc).__name__}: {exc}".rstrip(": ")
    tls = settings.ssl_context is not None
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ClusterError("tls", f"TLS: the certificate of {hostport} was rejected ({exc.verify_message or exc}); "
                                   "check kafka.security.ssl_cafile (the CA that signed the brokers' certificates) "
                                   "and that the certificate names this host (ssl_check_hostname)")
    if isinstance(exc, ssl.SSLError):
        return ClusterError("tls", f"TLS handshake with {hostport} failed ({exc.reason or what}); if the broker "
                                   "requires a client certificate, set ssl_certfile/ssl_keyfile")
    if isinstance(exc, TimeoutError):
        hint = (" (a TLS listener may answer a plaintext client with silence: set kafka.security.protocol "
                "to SSL or SASL_SSL?)" if not tls else "")
        return ClusterError("unreachable", f"no answer from {hostport} within {timeout:.0f} s{hint}; check "
                                           "kafka.brokers and the network path (egress, firewall, DNS)")
    if isinstance(exc, OSError) and not _is_kafka_error(exc):
        return ClusterError("unreachable", f"cannot connect to {hostport} ({exc.strerror or what}); check "
                                           "kafka.brokers and the network path (egress, firewall, DNS)")
    if settings.sasl_mechanism is not None:
        return ClusterError("authentication", f"SASL {settings.sasl_mechanism} login as {settings.sasl_username!r} "
                                              f"at {hostport} failed ({what}); check sasl_username, the password and "
                                              "sasl_mechanism (the broker must enable it)")
    if _is_kafka_error(exc) and "closed" in str(exc).lower():
        return ClusterError("unreachable", f"{hostport} closed the connection ({what}); if the listener uses TLS "
                                           "or SASL, set kafka.security.protocol (SSL, SASL_SSL, SASL_PLAINTEXT)")
    return ClusterError("other", f"{hostport}: {what}")
