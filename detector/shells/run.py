"""``skewwatch run --config C.yaml``: the sidecar worker against a Kafka cluster.

Creates the topics it needs when they do not exist, restores state from its last checkpoint,
and runs until SIGTERM/SIGINT. On SIGTERM it checkpoints, commits and exits within
``shutdown_grace`` seconds (a watchdog forces the exit if draining hangs). A fatal error exits
with status 1 so an orchestrator restarts it rather than leaving a hung process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from detector.config import Config, ConfigError, load_config, load_references

__all__ = ["add_arguments", "run", "run_worker", "ensure_topics"]

log = logging.getLogger("skewwatch.run")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="skewwatch YAML config")
    p.add_argument("--worker-id", help="name of this worker in logs and messages (default: $HOSTNAME); state is kept "
                   "per partition, so a new name keeps it")
    p.add_argument("--quiet", action="store_true")


def ensure_topics(cfg: Config) -> None:
    from detector.shells.broker import create_topics

    t = cfg.kafka.topics
    create_topics(",".join(cfg.kafka.brokers), {t.predictions: t.partitions, t.labels: t.partitions,
                                                t.features: t.partitions, t.alerts: 1, t.dlq: 1,
                                                f"{cfg.kafka.group_id}-partials": 1})


def run_worker(cfg: Config, refs: dict[str, Any], default: Any, worker_id: str | None = None,
               on_started: Any = None, loglevel: str = "warning") -> int:
    """Run the Faust worker in this thread until it stops; returns the exit code."""
    import faust

    from detector.stream.worker import Worker

    w = Worker(cfg, refs, default, worker_id=worker_id)
    fw = faust.Worker(w.app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    grace = cfg.shutdown_grace

    def on_term() -> None:
        log.info("SIGTERM: checkpointing and stopping", extra={"grace_seconds": grace})
        # watchdog: never hang past the grace period. A daemon thread, or the interpreter would wait
        # for it at exit and every clean shutdown would last the full grace period.
        watchdog = threading.Timer(grace, lambda: os._exit(0))
        watchdog.daemon = True
        watchdog.start()

        async def drain() -> None:
            try:
                await asyncio.wait_for(w.checkpoint_now(), timeout=max(1.0, grace / 2))
            except Exception as exc:  # noqa: BLE001
                log.warning("final checkpoint failed: %s", exc)
            fw._on_sigterm()  # noqa: SLF001 - hand over to Faust's own shutdown

        fw.loop.create_task(drain())

    @w.app.task
    async def _install() -> None:
        fw.loop.add_signal_handler(signal.SIGTERM, on_term)
        if on_started is not None:
            on_started(w)

    try:
        fw.execute_from_commandline()
    except SystemExit:
        pass
    reason = getattr(w.app, "crash_reason", None) or getattr(fw, "crash_reason", None)
    if reason is not None:
        log.error("worker crashed: %r", reason)
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        refs, default = load_references(cfg, Path(args.config).parent)
        if not refs and default is None:
            raise ConfigError(f"{args.config}: no models configured; add `models: {{NAME: {{reference: REF.json}}}}`")
    except ConfigError as exc:
        print(f"skewwatch run: error: {exc}", file=sys.stderr)
        return 2
    try:
        ensure_topics(cfg)
    except Exception as exc:  # noqa: BLE001 - broker down at start: say so, let the orchestrator retry
        print(f"skewwatch run: error: cannot reach Kafka at {','.join(cfg.kafka.brokers)}: {exc}", file=sys.stderr)
        return 1
    return run_worker(cfg, refs, default, worker_id=args.worker_id, loglevel="warning" if args.quiet else "info")
