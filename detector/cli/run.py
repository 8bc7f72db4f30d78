"""``skewwatch run --config C.yaml [--sidecar]``: the sidecar worker against a Kafka cluster.

Start-up never depends on the broker. In order:

1. Load the config, the references and the Kafka client settings (secrets, CA, client cert).
   An error exits with status 2 and names the field and the fix — except in **sidecar mode**
   (``--sidecar``, what the Kubernetes manifest runs), where the process stays up instead, serves
   ``/healthz``, ``/readyz`` (200), ``/metrics`` (``skewwatch_config_error 1``) and the error on
   ``/status``, logs the error, and reads the file again every 30 s: a broken config must not
   keep the model's pod from starting or serving.
2. Serve the HTTP endpoints (:mod:`detector.kafka.web`) on ``web.host:web.port``.
3. Reach the cluster (:mod:`detector.kafka.connect`): connect with TLS/SASL, check or create the
   topics; on failure log the reason and the fix, count it in
   ``skewwatch_kafka_connection_errors_total{reason}`` and retry with backoff, for ever.
4. Start the Faust worker; it restores its state from its last checkpoint and runs until
   SIGTERM/SIGINT. On SIGTERM it checkpoints, commits and exits within ``shutdown_grace`` seconds
   (a watchdog forces the exit if draining hangs). A worker that crashes while running exits
   with status 1 so the orchestrator restarts it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.config import Config, ConfigError, load_config, load_references

__all__ = ["add_arguments", "run", "run_worker", "serve", "Loaded", "load_all"]

log = logging.getLogger("skewwatch.run")
CONFIG_RETRY_SECONDS = 30.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="skewwatch YAML config")
    p.add_argument("--worker-id", help="name of this worker in logs and messages (default: $HOSTNAME); state is kept "
                   "per partition, so a new name keeps it")
    p.add_argument("--sidecar", action="store_true",
                   help="never exit on a config error: serve health endpoints and the error instead, so the "
                        "model's pod starts anyway (Kubernetes native sidecar)")
    p.add_argument("--config-retry", type=float, default=CONFIG_RETRY_SECONDS, metavar="SECONDS",
                   help="sidecar mode: how often a broken config file is read again (default 30)")
    p.add_argument("--quiet", action="store_true")


@dataclass
class Loaded:
    cfg: Config
    refs: dict[str, Any]
    default: Any
    settings: Any  # detector.kafka.clients.ClientSettings


def load_all(path: str | Path, *, warn_ignored: bool = True) -> Loaded:
    """Config, references and client settings; :class:`ConfigError` names what is wrong."""
    from detector.kafka.clients import client_settings

    cfg = load_config(path, warn_ignored=warn_ignored)
    refs, default = load_references(cfg, Path(path).parent)
    if not refs and default is None:
        raise ConfigError(f"{path}: no models configured; add `models: {{NAME: {{reference: REF.json}}}}`")
    return Loaded(cfg, refs, default, client_settings(cfg.kafka))


def run(args: argparse.Namespace) -> int:
    _log_format_from_config(args)
    try:
        loaded: Loaded | None = load_all(args.config)
        error = None
    except ConfigError as exc:
        if not args.sidecar:
            print(f"skewwatch run: error: {exc}", file=sys.stderr)
            return 2
        loaded, error = None, exc
    return asyncio.run(serve(loaded, args.config, worker_id=args.worker_id, sidecar=args.sidecar, config_error=error,
                             config_retry=max(0.1, args.config_retry)))


def run_worker(cfg: Config, refs: dict[str, Any], default: Any, worker_id: str | None = None,
               on_started: Callable[[Any], None] | None = None, sidecar: bool = False) -> int:
    """Run the worker for an in-memory config (``skewwatch demo``) until SIGTERM; returns the exit code."""
    from detector.kafka.clients import client_settings

    loaded = Loaded(cfg, refs, default, client_settings(cfg.kafka))
    return asyncio.run(serve(loaded, None, worker_id=worker_id, sidecar=sidecar, on_started=on_started))


async def serve(loaded: Loaded | None, config_path: str | Path | None, *, worker_id: str | None = None,
                sidecar: bool = False, config_error: ConfigError | None = None,
                on_started: Callable[[Any], None] | None = None, config_retry: float = CONFIG_RETRY_SECONDS) -> int:
    """Steps 2-4 of the module docstring (and step 1's sidecar-mode wait when ``loaded`` is None)."""
    from detector.kafka.health import Health
    from detector.kafka.web import WebServer

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # Faust, mode and aiokafka narrate at INFO (timer drift, fetcher starts); their warnings stay
        for name in ("faust", "mode", "aiokafka"):
            logging.getLogger(name).setLevel(logging.WARNING)
    health = Health(sidecar=sidecar)
    stop = asyncio.Event()
    grace = loaded.cfg.shutdown_grace if loaded is not None else 10.0
    _install_signals(stop, lambda: grace)
    web: WebServer | None = None
    try:
        if loaded is None:
            assert config_path is not None and config_error is not None
            health.phase, health.config_error = "config_error", str(config_error)
            host, port = _web_address_of(config_path)
            web = await _start_web(health, host, port)
            if web is None:
                return 1
            loaded = await _wait_for_config(config_path, health, stop, config_error, config_retry)
            if loaded is None:
                return 0
            grace = loaded.cfg.shutdown_grace
            if (host, port) != (loaded.cfg.web.host, loaded.cfg.web.port):
                await web.stop()
                web = None
        cfg = loaded.cfg
        health.phase, health.client = "connecting", loaded.settings.describe()
        log.info("Kafka clients configured", extra={"kafka": health.client})
        if web is None:
            web = await _start_web(health, cfg.web.host, cfg.web.port)
            if web is None:
                return 1
        return await _run_worker(loaded, health, stop, worker_id, on_started)
    finally:
        health.phase = "stopping"
        if web is not None:
            await web.stop()


async def _run_worker(loaded: Loaded, health: Any, stop: asyncio.Event, worker_id: str | None,
                      on_started: Callable[[Any], None] | None) -> int:
    from detector.kafka.connect import backoff_delays, connect, watch
    from detector.kafka.topics import required_topics
    from detector.kafka.worker import Worker

    cfg, settings = loaded.cfg, loaded.settings
    delays = backoff_delays()
    while not stop.is_set():
        if not await connect(settings, required_topics(cfg), health.kafka, stop, create=cfg.kafka.create_topics,
                             replication_factor=cfg.kafka.replication_factor, delays=delays):
            return 0
        worker = Worker(cfg, loaded.refs, loaded.default, worker_id=worker_id, settings=settings)
        health.phase = "starting"
        try:
            await worker.app.start()
        except Exception as exc:  # noqa: BLE001 - the cluster went away between the check and the start
            delay = next(delays)
            log.error("worker did not start (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay)
            health.kafka.failed("other", f"worker start: {type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await worker.app.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            health.phase = "connecting"
            continue
        health.worker, health.phase = worker, "running"
        watcher = asyncio.ensure_future(watch(settings, health.kafka, stop))
        if on_started is not None:
            on_started(worker)
        try:
            while not stop.is_set() and not worker.app.crashed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            if worker.app.crashed:
                log.error("worker crashed: %r", worker.app.crash_reason)
                return 1
            await _drain(worker, cfg.shutdown_grace)
            return 0
        finally:
            watcher.cancel()
            health.phase = "stopping"
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker.app.stop(), max(1.0, cfg.shutdown_grace / 2))
    return 0


async def _drain(worker: Any, grace: float) -> None:
    log.info("stopping: checkpointing", extra={"grace_seconds": grace})
    try:
        await asyncio.wait_for(worker.checkpoint_now(), timeout=max(1.0, grace / 2))
    except Exception as exc:  # noqa: BLE001
        log.warning("final checkpoint failed: %s", exc)


async def _wait_for_config(path: str | Path, health: Any, stop: asyncio.Event, first: ConfigError,
                           every: float = CONFIG_RETRY_SECONDS) -> Loaded | None:
    """Sidecar mode: log the error, read the file again every ``every`` s; the loaded config once valid."""
    log.error("configuration error; sidecar mode: serving health endpoints and the error, not Kafka, until "
              "the config is fixed: %s", first, extra={"config": str(path)})
    last = str(first)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        if stop.is_set():
            return None
        try:
            loaded = load_all(path, warn_ignored=False)
        except ConfigError as exc:
            if str(exc) != last:
                log.error("configuration still invalid: %s", exc, extra={"config": str(path)})
                last = str(exc)
            health.config_error = str(exc)
            continue
        log.info("configuration is valid now; starting", extra={"config": str(path)})
        health.config_error = None
        return loaded
    return None


async def _start_web(health: Any, host: str, port: int) -> Any:
    from detector.kafka.web import WebServer

    try:
        return await WebServer(health, host, port).start()
    except OSError as exc:
        log.error("cannot serve HTTP on %s:%s (%s): is another process using the port? set web.port",
                  host, port, exc.strerror or exc)
        return None


def _web_address_of(path: str | Path) -> tuple[str, int]:
    """``web.host``/``web.port`` of a config that does not validate: environment, else file, else defaults."""
    from detector.config import Web

    host, port = Web().host, Web().port
    try:
        import yaml

        web = (yaml.safe_load(Path(path).read_text()) or {}).get("web") or {}
        host, port = str(web.get("host") or host), int(web.get("port") or port)
    except Exception:  # noqa: BLE001 - the file is broken: that is the error being served
        pass
    try:
        port = int(os.environ.get("SKEWWATCH_WEB__PORT") or port)
    except ValueError:
        pass
    return os.environ.get("SKEWWATCH_WEB__HOST") or host, port


def _log_format_from_config(args: argparse.Namespace) -> None:
    """``log_format`` from the config file (or SKEWWATCH_LOG_FORMAT) unless ``--log-format`` was given."""
    if getattr(args, "log_format", None) is not None:
        return
    fmt = os.environ.get("SKEWWATCH_LOG_FORMAT")
    if fmt is None:
        try:
            import yaml

            fmt = (yaml.safe_load(Path(args.config).read_text()) or {}).get("log_format")
        except Exception:  # noqa: BLE001 - load_config reports the problem properly
            fmt = None
    if fmt in ("text", "json"):
        from detector.cli.logs import setup_logging

        setup_logging(fmt, quiet=getattr(args, "quiet", False))


def _install_signals(stop: asyncio.Event, grace: Callable[[], float]) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(sig: int) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(sig).name)
            os._exit(1)
        log.info("%s: stopping", signal.Signals(sig).name, extra={"grace_seconds": grace()})
        stop.set()
        # never hang past the grace period; a daemon thread, or every clean exit would wait for it
        watchdog = threading.Timer(grace(), lambda: os._exit(0))
        watchdog.daemon = True
        watchdog.start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
