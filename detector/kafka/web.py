"""The sidecar's HTTP server: ``/healthz``, ``/readyz``, ``/metrics``, ``/status``; nothing else.

It is skewwatch's own small aiohttp server, not Faust's web (which is switched off, and with it
Faust's ``/router`` and ``/table`` endpoints: they reveal the cluster's layout and table data).
It starts before any Kafka I/O, on the same event loop as the worker, so it answers while the
broker is unreachable, while the worker starts, and — in sidecar mode — when the configuration
is broken (it then serves the error). Every endpoint is read-only and shows counts, names and
statistics, never an event payload or a secret. Any other path is 404; only GET and HEAD.

* ``/healthz``: 200 while the event loop answers (liveness).
* ``/readyz``: 200 unless the process is stopping (see :meth:`Health.ready`); the JSON body says
  what is going on (phase, Kafka reachability and last error, state restored, partitions held).
* ``/metrics``: the detector's metrics, the process' and :class:`~detector.kafka.health.HealthCollector`'s.
* ``/status``: the status page (``?format=json`` for machines).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from detector.exporters.prometheus import SkewwatchCollector
from detector.kafka.health import Health, HealthCollector
from detector.web import esc, page

__all__ = ["WebServer"]

log = logging.getLogger("skewwatch.web")
_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class WebServer:
    """Serve :class:`Health` (and its worker, once running) on ``host:port`` (``port=0``: any free port)."""

    def __init__(self, health: Health, host: str, port: int) -> None:
        self.health = health
        self.host = host
        self.port = port
        self._runner: Any = None
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(SkewwatchCollector(self._aggregator, worker_getter=lambda: self.health.worker))
        self._registry.register(HealthCollector(health))
        ProcessCollector(registry=self._registry)

    def _aggregator(self) -> Any:
        w = self.health.worker
        return None if w is None else w.sidecar.evaluator

    async def start(self) -> WebServer:
        from aiohttp import web

        app = web.Application()
        for path, handler in (("/healthz", self._healthz), ("/readyz", self._readyz), ("/metrics", self._metrics),
                              ("/status", self._status)):
            app.router.add_get(path, handler)  # GET also answers HEAD
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        if self.port == 0 and server is not None and server.sockets:
            self.port = int(server.sockets[0].getsockname()[1])
        log.info("serving /healthz /readyz /metrics /status", extra={"host": self.host, "port": self.port})
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ handlers
    async def _healthz(self, request: Any) -> Any:
        from aiohttp import web

        h = self.health
        return web.json_response({"status": "ok", "phase": h.phase, "config_error": h.config_error is not None,
                                  "uptime_seconds": h.as_dict()["uptime_seconds"]})

    async def _readyz(self, request: Any) -> Any:
        from aiohttp import web

        body = self.health.as_dict()
        return web.Response(body=orjson.dumps(body), status=200 if body["ready"] else 503,
                            content_type="application/json")

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web

        return web.Response(body=generate_latest(self._registry), headers={"Content-Type": _METRICS_TYPE})

    async def _status(self, request: Any) -> Any:
        from aiohttp import web

        h = self.health
        w = h.worker
        if request.query.get("format") == "json":
            body = {**(w.status() if w is not None else {}), "health": h.as_dict(), "kafka_client": h.client}
            return web.Response(body=orjson.dumps(body, default=str), content_type="application/json")
        if w is None or h.config_error:
            return web.Response(text=_waiting_page(h), content_type="text/html")
        from detector.web.status import render_status

        html = render_status(w.sidecar.evaluator, recent=w.alert_log[-50:], ingest=w.sidecar.engine)
        return web.Response(text=html, content_type="text/html")


def _waiting_page(h: Health) -> str:
    """The status page before the worker runs: the config error, or why Kafka is not reached yet."""
    if h.config_error:
        title = "skewwatch: configuration error"
        body = (f"<h1>Configuration error</h1><p>skewwatch is running in sidecar mode without a usable "
                f"configuration: it watches nothing until this is fixed. The model is not affected.</p>"
                f"<pre>{esc(h.config_error)}</pre><p>Fix the config, then restart the container (or wait: "
                f"the file is read again periodically).</p>")
    else:
        k = h.kafka
        state = "reachable" if k.reachable else f"not reached yet ({esc(k.reason) or 'connecting'})"
        body = (f"<h1>Connecting to Kafka</h1><p>Cluster {esc(', '.join(h.client.get('bootstrap', [])))}: "
                f"{state}; attempts {k.attempts}.</p>" + (f"<pre>{esc(k.error)}</pre>" if k.error else "")
                + "<p>skewwatch retries with backoff; the model is not affected.</p>")
        title = "skewwatch: connecting"
    return page(title, body, refresh=10)
