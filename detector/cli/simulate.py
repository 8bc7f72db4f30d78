"""``skewwatch simulate``: the demo's traffic (a simulated model with injected faults) into any broker.

Events keep their simulated event times; wall-clock pacing compresses the scenario's timeline
by ``--speedup`` (the demo's 86 hours play in about three minutes by default), so windows close
and faults show within a minute or two. Predictions, labels and offline features are keyed by
``prediction_id`` so the three topics are co-partitioned, as the sidecar expects.

``--config C.yaml`` takes the cluster (``kafka.brokers``), its security settings (TLS, SASL) and the
topic names from a skewwatch config, so the traffic goes where ``skewwatch run --config C.yaml``
reads; ``--bootstrap`` alone is an unsecured cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from detector.sim import get_scenario, list_scenarios, simulate

__all__ = ["add_arguments", "run", "produce_scenario", "produce_file"]

log = logging.getLogger("skewwatch.simulate")


async def produce_scenario(
    bootstrap: Any,
    scenario: str = "demo",
    *,
    seed: int = 0,
    rate_per_hour: float = 3600.0,
    speedup: float = 1800.0,
    topics: dict[str, str] | None = None,
    hours: float | None = None,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[float, int], None] | None = None,
    producer_kwargs: dict[str, Any] | None = None,
    events: Iterable[tuple[float, str, dict[str, Any]]] | None = None,
    throttle: Callable[[float], Awaitable[None]] | None = None,
) -> int:
    """Produce a scenario's events (or ``events``, time-ordered, in its place); returns the number of messages sent.

    ``throttle(ts)``, when given, is awaited after each batch (event time ``ts``): a consumer that falls
    behind can hold the producer back (``skewwatch demo`` does, so its timeline stays in step on a slow machine).

    ``bootstrap`` is ``"host:port[,…]"`` (unsecured) or a :class:`~detector.kafka.clients.ClientSettings`.
    """
    from aiokafka import AIOKafkaProducer

    from detector.kafka.clients import ClientSettings, plaintext

    settings = bootstrap if isinstance(bootstrap, ClientSettings) else plaintext(str(bootstrap))
    names = {"predictions": "predictions", "labels": "labels", "features": "features", **(topics or {})}
    sc = get_scenario(scenario, seed=seed, rate_per_hour=rate_per_hour, hours=hours)
    prod = AIOKafkaProducer(**settings.aiokafka(linger_ms=20, max_batch_size=512 * 1024, **(producer_kwargs or {})))
    await prod.start()
    sent = 0
    t_wall0 = time.monotonic()
    t_ev0: float | None = None
    batch: list[Any] = []
    try:
        for ts, topic, ev in (simulate(sc) if events is None else events):
            if t_ev0 is None:
                t_ev0 = ts
            batch.append(prod.send(names[topic], orjson.dumps(ev), key=str(ev["prediction_id"]).encode()))
            sent += 1
            if len(batch) >= 500:
                await asyncio.gather(*batch)
                batch = []
                if stop is not None and stop.is_set():
                    break
                # pace: event time advances ``speedup`` times faster than the wall clock
                ahead = (ts - t_ev0) / speedup - (time.monotonic() - t_wall0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
                if on_progress is not None:
                    on_progress(ts, sent)
                if throttle is not None:
                    await throttle(ts)
        if batch:
            await asyncio.gather(*batch)
        await prod.flush()
    finally:
        await prod.stop()
    return sent


async def produce_file(bootstrap: Any, path: str, topic: str = "predictions") -> int:
    """Send a file of events as they are (the way any client would); ``topic`` fields pick the topic.

    ``bootstrap`` is ``"host:port[,…]"`` (unsecured) or a :class:`~detector.kafka.clients.ClientSettings`.
    """
    from aiokafka import AIOKafkaProducer

    from detector.io.eventrows import EventFile
    from detector.kafka.clients import ClientSettings, plaintext

    settings = bootstrap if isinstance(bootstrap, ClientSettings) else plaintext(str(bootstrap))
    prod = AIOKafkaProducer(**settings.aiokafka(linger_ms=20))
    await prod.start()
    sent = 0
    try:
        for _, chunk in EventFile(path, "predictions").chunks(500):
            futs = []
            for raw in chunk:
                try:
                    ev = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    ev = None  # sent as it is: the sidecar dead-letters it, as it would from any producer
                to, key = topic, None
                if isinstance(ev, dict):
                    named = ev.pop("topic", None)
                    to = named if isinstance(named, str) and named else topic
                    key = str(ev.get("prediction_id", "")).encode() or None
                    raw = orjson.dumps(ev)
                futs.append(await prod.send(to, raw, key=key))
            await asyncio.gather(*futs)
            sent += len(chunk)
        await prod.flush()
    finally:
        await prod.stop()
    return sent


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT] (unsecured; overrides the config's)")
    p.add_argument("--config", help="skewwatch YAML config: its kafka brokers, security and topic names")
    p.add_argument("--from-file", metavar="EVENTS", help="send these events instead of the simulator's: JSONL, CSV or "
                   "Parquet; each event goes to the topic named by its `topic` field (or --topic), keyed by prediction_id")
    p.add_argument("--topic", default=None, help="topic for --from-file events without a `topic` field "
                   "(default: the config's predictions topic, else predictions)")
    p.add_argument("--scenario", default="demo", choices=list_scenarios(), help="fault timeline (default: demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=3600.0, help="predictions per simulated hour")
    p.add_argument("--speedup", type=float, default=1800.0, help="simulated seconds per wall-clock second")
    p.add_argument("--hours", type=float, help="simulated hours (default: the scenario's length)")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.speedup <= 0 or args.rate <= 0:
        print("skewwatch simulate: error: --speedup and --rate must be positive", file=sys.stderr)
        return 2
    from detector.config import ConfigError
    from detector.kafka.clients import plaintext

    if not args.bootstrap and not args.config:
        print("skewwatch simulate: error: give --bootstrap HOST:PORT or --config C.yaml", file=sys.stderr)
        return 2
    topics: dict[str, str] = {}
    try:
        if args.config:
            from detector.config import load_config
            from detector.kafka.clients import client_settings

            cfg = load_config(args.config)
            kafka = cfg.kafka.model_copy(update={"brokers": args.bootstrap.split(",")}) if args.bootstrap else cfg.kafka
            settings = client_settings(kafka)
            t = cfg.kafka.topics
            topics = {"predictions": t.predictions, "labels": t.labels, "features": t.features}
        else:
            settings = plaintext(args.bootstrap)
    except ConfigError as exc:
        print(f"skewwatch simulate: error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_reachable(settings))
    except Exception as exc:  # noqa: BLE001 - ClusterError names the reason and the fix
        print(f"skewwatch simulate: error: {exc}", file=sys.stderr)
        return 1

    def progress(ts: float, n: int) -> None:
        if not args.quiet:
            from detector.core.inputs.timeparse import format_ts

            print(f"\r  simulated time {format_ts(ts)[:16]}Z, {n:,} messages sent", end="", file=sys.stderr)

    try:
        if getattr(args, "from_file", None):
            n = asyncio.run(produce_file(settings, args.from_file, args.topic or topics.get("predictions", "predictions")))
        else:
            n = asyncio.run(produce_scenario(settings, args.scenario, seed=args.seed, rate_per_hour=args.rate,
                                             speedup=args.speedup, hours=args.hours, topics=topics, on_progress=progress))
    except KeyboardInterrupt:
        return 130
    if not args.quiet:
        print(f"\nsent {n:,} messages", file=sys.stderr)
    return 0


async def _reachable(settings: Any, timeout: float = 20.0) -> None:
    """Fail fast with the reason (unreachable, TLS, SASL) instead of a producer timing out later."""
    from detector.kafka.connect import ClusterError, handshake

    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await handshake(settings, timeout=5.0)
            return
        except ClusterError as exc:
            if exc.reason != "unreachable" or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.5)
