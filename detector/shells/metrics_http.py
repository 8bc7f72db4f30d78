"""Serving the exposition without a web framework: ``/metrics``, ``/healthz``, ``/readyz``.

The Kafka worker mounts :func:`detector.exporters.prometheus.exposition` in its own web server; this
module is for shells that have none (replay-driven tests, a standalone exporter): a WSGI
endpoint and a threaded server on the standard library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder

from detector.exporters.prometheus import SkewwatchCollector

__all__ = ["MetricsEndpoint", "MetricsServer", "Response", "serve"]


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes


Route = Callable[[], "Response | bytes"]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
            503: "Service Unavailable"}


class MetricsEndpoint:
    """``/metrics``, ``/healthz``, ``/readyz`` (+ ``extra_routes``) as framework-free responses.

    ``ready()`` decides readiness (default: the engine exists, i.e. config and references are
    loaded); it must not call the broker. ``extra_routes`` maps a path to a callable returning a
    :class:`Response` or bytes (served as ``text/plain``).
    """

    def __init__(self, engine_getter: Callable[[], Any], ready: Callable[[], bool] | None = None,
                 extra_routes: Mapping[str, Route] | None = None, registry: CollectorRegistry | None = None,
                 lock: Any = None, worker_getter: Callable[[], Any] | None = None, process: bool = True) -> None:
        self.engine_getter = engine_getter
        self.ready = ready or (lambda: engine_getter() is not None)
        self.routes = dict(extra_routes or {})
        self.registry = registry or CollectorRegistry(auto_describe=False)
        self.registry.register(SkewwatchCollector(engine_getter, lock, worker_getter))
        if process:
            ProcessCollector(registry=self.registry)

    def handle(self, path: str, accept: str = "") -> Response:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/metrics":
            encoder, ctype = choose_encoder(accept)
            return Response(200, ctype, encoder(self.registry))
        if path == "/healthz":
            return Response(200, "text/plain; charset=utf-8", b"ok\n")
        if path == "/readyz":
            ok = bool(self.ready())
            return Response(200 if ok else 503, "text/plain; charset=utf-8", b"ready\n" if ok else b"not ready\n")
        route = self.routes.get(path)
        if route is not None:
            r = route()
            return r if isinstance(r, Response) else Response(200, "text/plain; charset=utf-8", bytes(r))
        return Response(404, "text/plain; charset=utf-8", b"not found: try /metrics, /healthz or /readyz\n")

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            r = Response(405, "text/plain; charset=utf-8", b"GET only\n")
        else:
            try:
                r = self.handle(environ.get("PATH_INFO", "/"), environ.get("HTTP_ACCEPT", ""))
            except Exception as exc:  # noqa: BLE001 - a scrape must get an answer, not a dropped connection
                r = Response(500, "text/plain; charset=utf-8", f"error: {type(exc).__name__}: {exc}\n".encode())
        start_response(f"{r.status} {_REASONS.get(r.status, '')}".strip(),
                       [("Content-Type", r.content_type), ("Content-Length", str(len(r.body)))])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else r.body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never blocks shutdown


class MetricsServer:
    """A running :func:`serve`: ``.port`` (the bound one), ``.close()``."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, endpoint: MetricsEndpoint) -> None:
        self.server, self.thread, self.endpoint = server, thread, endpoint

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(engine_getter: Callable[[], Any], host: str = "0.0.0.0", port: int = 9108,
          extra_routes: Mapping[str, Route] | None = None, ready: Callable[[], bool] | None = None,
          lock: Any = None, worker_getter: Callable[[], Any] | None = None, process: bool = True) -> MetricsServer:
    """Serve :class:`MetricsEndpoint` on a daemon thread (``port=0`` picks a free port)."""
    ep = MetricsEndpoint(engine_getter, ready, extra_routes, lock=lock, worker_getter=worker_getter, process=process)
    httpd = make_server(host, port, ep.wsgi, server_class=_ThreadingWSGIServer, handler_class=_Quiet)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="skewwatch-metrics",
                         daemon=True)
    t.start()
    return MetricsServer(httpd, t, ep)


__all__ += ["MetricsServer", "CONTENT_TYPE_LATEST"]
