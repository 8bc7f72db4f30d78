"""Retrying the cluster: backoff, what is recorded per attempt, stopping."""

from __future__ import annotations

import asyncio
import random

from detector.kafka.broker import free_port
from detector.kafka.clients import plaintext
from detector.kafka.connect import backoff_delays, connect
from detector.kafka.health import Health, HealthCollector
from detector.kafka.topics import TopicSpec


def test_backoff_doubles_to_the_cap_with_jitter_below():
    delays = backoff_delays(base=1.0, cap=30.0, rng=random.Random(1))
    got = [next(delays) for _ in range(12)]
    nominal = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30, 30]
    assert all(n / 2 <= g <= n for g, n in zip(got, nominal, strict=True)), got
    assert len({round(g, 6) for g in got[5:]}) > 1  # jittered: pods do not retry in lockstep


def test_connect_records_each_failure_and_stops_when_asked():
    health = Health()
    settings = plaintext(f"127.0.0.1:{free_port()}")  # nothing listens there

    async def main() -> bool:
        stop = asyncio.Event()

        async def stopper() -> None:
            while health.kafka.attempts < 3:
                await asyncio.sleep(0.01)
            stop.set()

        task = asyncio.ensure_future(stopper())
        ok = await connect(settings, [TopicSpec("t", 1)], health.kafka, stop, create=True, replication_factor=None,
                           timeout=2.0, delays=iter([0.01] * 100))
        await task
        return ok

    assert asyncio.run(asyncio.wait_for(main(), 30)) is False
    k = health.kafka
    assert k.attempts >= 3 and k.failures["unreachable"] == k.attempts and not k.reachable
    assert "cannot connect to 127.0.0.1" in k.error and "kafka.brokers" in k.error
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for m in HealthCollector(health).collect()
               for s in m.samples}
    assert samples[("skewwatch_kafka_reachable", ())] == 0.0
    assert samples[("skewwatch_kafka_connection_errors_total", (("reason", "unreachable"),))] == k.attempts
    assert samples[("skewwatch_config_error", ())] == 0.0
    assert ("skewwatch_kafka_last_contact_timestamp_seconds", ()) not in samples  # never reached


def test_a_config_error_exports_only_that():
    h = Health(sidecar=True, phase="config_error", config_error="kafka.brokers: ...")
    names = {m.name for m in HealthCollector(h).collect()}
    assert names == {"skewwatch_config_error"} and h.ready()
    assert not Health(sidecar=False, phase="config_error", config_error="x").ready()
    assert not Health(phase="stopping").ready() and Health(phase="connecting").ready()
