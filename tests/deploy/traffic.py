"""A detector fed with simulated faulty traffic, built once per test process.

A ``unit_change`` scenario (amount served in cents from hour 22) stops at hour 26, so the
critical ``unit_shift`` incident is firing and one window is still open. It goes through the
Kafka worker's own code path without Kafka (:class:`detector.kafka.local.LocalGroup`: a unit
with the outcome monitor, steps after checkpoints, the aggregator); a few broken, late, empty and
redelivered messages exercise the pipeline counters.
"""

from __future__ import annotations

import asyncio
import threading
import time
from functools import lru_cache
from typing import Any

import orjson
import pytest

from detector.config import Config, ModelConfig
from detector.core.reference.build import build_reference
from detector.kafka.health import Health
from detector.kafka.local import LocalGroup
from detector.kafka.sidecar import Message, Sidecar
from detector.kafka.web import WebServer
from detector.sim import Fault, get_scenario, simulate, training_table

#: Mark of every test that reads :func:`faulty_worker` (directly or through ``promql.exported_names``):
#: under pytest-xdist they run in one process, which builds it once (about 40 s on two busy cores).
SHARES_FAULTY_WORKER = pytest.mark.xdist_group("faulty-worker")

HOURS = 26.0
ONSET_H = 22.0  # after ~1 day: label maturity and seasonal slots have history
RATE = 400.0
SLICES = ("region", "channel", "tier")


@lru_cache(maxsize=1)
def reference() -> Any:
    cols = training_table(12_000, seed=3)
    return build_reference(cols, label_column="label", score_column="score", slice_columns=SLICES,
                           time_column="ts", model="fraud")


@lru_cache(maxsize=1)
def messages() -> tuple[tuple[float, str, bytes], ...]:
    """The scenario's events in event-time order, then a broken, an incomplete and a late one."""
    sc = get_scenario("unit_change", rate_per_hour=RATE, hours=HOURS)
    sc = sc.with_(faults=(Fault("unit_change", ONSET_H, None),))  # cents from ONSET_H to the end
    out = [(ts, topic, orjson.dumps(ev)) for ts, topic, ev in simulate(sc)]
    _, _, first = next(m for m in out if m[1] == "predictions")
    late = orjson.loads(first) | {"prediction_id": "late-1"}  # for a window closed long ago
    end = out[-1][0]
    out += [(end, "predictions", b"not json"), (end, "predictions", b"{}"), (end, "predictions", orjson.dumps(late))]
    return tuple(out)


def config() -> Config:
    costs = ModelConfig(reference="unused.json", cost_fp=1.0, cost_fn=20.0, review_capacity=60)
    return Config(models={"fraud": costs})


def _batches() -> Any:
    """One batch per event-time window, as live traffic arrives (a batch never spans two windows).

    A batch that spans several windows hands out several partials under one watermark and the
    aggregator takes all but the first as late (detector/kafka/sidecar.py; reported).
    """
    buf: dict[str, list[bytes]] = {"predictions": [], "labels": [], "features": []}
    window = None
    for ts, topic, raw in messages():
        w = ts // 3600
        if topic == "predictions" and w != window and buf["predictions"]:
            yield buf
            buf = {k: [] for k in buf}
        window = w if topic == "predictions" else window
        buf[topic].append(raw)
    yield buf


class Worker:
    """What the exporter and the HTTP server read from a :class:`detector.kafka.worker.Worker` (no Kafka needed)."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar
        self.checkpoints = 3
        self.last_checkpoint = time.monotonic() - 5.0
        self.restored = threading.Event()
        self.restored.set()
        self.app = None  # no Kafka consumer: the server reports no partitions assigned
        self.alert_log: list[dict[str, Any]] = []

    def status(self) -> dict[str, Any]:
        return {"worker": "w0", "checkpoints": self.checkpoints}


class Served:
    """The worker's own HTTP server (:class:`detector.kafka.web.WebServer`, what ``skewwatch run`` serves)
    on an event loop in a thread, for tests that speak HTTP to it. ``worker=None``: still starting."""

    def __init__(self, worker: Any, phase: str = "running") -> None:
        self.health = Health(phase=phase)
        self.health.worker = worker
        if worker is not None:
            self.health.kafka.ok()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="web", daemon=True)
        self.thread.start()
        self.server = self._run(WebServer(self.health, "127.0.0.1", 0).start())
        self.port = self.server.port
        self.base = f"http://127.0.0.1:{self.port}"

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@lru_cache(maxsize=1)
def faulty_worker() -> Worker:
    """The Kafka worker's path without Kafka (:class:`detector.kafka.local.LocalGroup`, one partition):
    the unit folds batches and packs closed windows and joins into steps; after each checkpoint the
    aggregator applies them, evaluates and raises the alerts."""
    g = LocalGroup(config(), {"fraud": reference()}, None, partitions=1)
    for buf in _batches():
        for t, msgs in buf.items():
            if msgs:
                g.feed(t, 0, list(msgs))
        g.checkpoint()
    side = g.sidecars["w0"]
    g.feed("predictions", 0, [b""])  # empty: dead-lettered
    g.redeliver("predictions", 0, [Message(g.topics["predictions"], 0, 0, b"{}")])  # an offset already folded: redelivery
    g.checkpoint()
    return Worker(side)


TASK_RATE = 300.0  # predictions per hour of each task model


@lru_cache(maxsize=1)
def task_worker() -> Worker:
    """A worker watching a regression (``eta``) and a multiclass (``intent``) model (the demo's), 30 h of clean
    traffic with labels, through the same path as :func:`faulty_worker`: their outcome, per-class and estimate
    families (realised at maturity too) are on its exposition."""
    from detector.cli.demo_models import task_reference
    from detector.sim.tasks import TaskScenario
    from detector.sim.tasks.demo import demo_events

    scs = [TaskScenario("deploy", m, hours=30.0, rate_per_hour=TASK_RATE, label_names_model=True) for m in ("eta", "intent")]
    g = LocalGroup(Config(), {m: task_reference(m) for m in ("eta", "intent")}, None, partitions=1)
    buf: dict[str, list[bytes]] = {"predictions": [], "labels": [], "features": []}
    window = None
    for ts, topic, ev in demo_events((), scs):
        w = ts // 3600
        if topic == "predictions" and w != window and buf["predictions"]:
            for t, msgs in buf.items():
                if msgs:
                    g.feed(t, 0, msgs)
            g.checkpoint()
            buf = {k: [] for k in buf}
        window = w if topic == "predictions" else window
        buf[topic].append(orjson.dumps(ev))
    for t, msgs in buf.items():
        if msgs:
            g.feed(t, 0, msgs)
    g.checkpoint()
    return Worker(g.sidecars["w0"])
