"""Render a Helm chart with the real Helm library (``helm-sdkpy``) against a recording fake API server.

``helm-sdkpy`` exposes ``install`` but not ``template``; an install needs an API server. This one
answers discovery for the kinds the chart uses, keeps Helm's release Secret, and records every
object Helm creates: exactly the manifests ``helm install`` would apply, rendered by Helm itself
(Go templates, sprig, ``.Files``, values schema, ``required``). Loopback only, one thread per test.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GROUPS = {  # group/version -> [(resource, kind, namespaced)]
    "v1": [("configmaps", "ConfigMap", True), ("secrets", "Secret", True), ("services", "Service", True),
           ("serviceaccounts", "ServiceAccount", True), ("namespaces", "Namespace", False)],
    "apps/v1": [("statefulsets", "StatefulSet", True), ("deployments", "Deployment", True)],
    "networking.k8s.io/v1": [("networkpolicies", "NetworkPolicy", True)],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True), ("prometheusrules", "PrometheusRule", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
}


_RESOURCES = {r for rs in GROUPS.values() for r, _, _ in rs}


class FakeKube:
    """A minimal API server on 127.0.0.1: discovery, create, get (404 until created), list, update."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}  # path -> object
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, obj: Any) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                code, obj = fake.get(self.path.split("?", 1)[0], "labelSelector" in self.path)
                self._send(code, obj)

            def _write(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                ctype = self.headers.get("Content-Type", "")
                if "protobuf" in ctype:  # Helm's release record (a Secret): echo it back as created
                    self.send_response(201 if self.command == "POST" else 200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self._send(*fake.write(self.command, self.path.split("?", 1)[0], json.loads(body or b"{}")))

            do_POST = do_PUT = do_PATCH = _write

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKube:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "u", "namespace": "default"}}],
            "users": [{"name": "u", "user": {"token": "x"}}]}))
        return path

    # ------------------------------------------------------------------ the API
    def get(self, path: str, listing: bool) -> tuple[int, Any]:
        if path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = [{"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                       "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}}
                      for gv in GROUPS if "/" in gv]
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        gv = path.removeprefix("/api/").removeprefix("/apis/")
        if gv in GROUPS:
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
                {"name": r, "singularName": k.lower(), "namespaced": ns, "kind": k,
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]} for r, k, ns in GROUPS[gv]]}
        with self.lock:
            if path in self.objects:
                return 200, self.objects[path]
            if listing or path.rsplit("/", 1)[-1] in _RESOURCES:
                items = [o for p, o in self.objects.items() if p.rsplit("/", 1)[0] == path]
                return 200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                     "message": f"{path} not found"}

    def write(self, method: str, path: str, obj: dict[str, Any]) -> tuple[int, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{len(self.objects)}")
        meta.setdefault("resourceVersion", "1")
        key = f"{path}/{meta.get('name')}" if method == "POST" else path
        with self.lock:
            self.objects[key] = obj
        return (201 if method == "POST" else 200), obj

    def created(self) -> list[dict[str, Any]]:
        """Objects the chart created (Helm's own release Secrets left out)."""
        return [o for o in self.objects.values()
                if not (o.get("kind") == "Secret" and o.get("type") == "helm.sh/release.v1")]


def render(chart: Path, values: dict[str, Any], tmp: Path, release: str = "sw") -> tuple[list[dict[str, Any]], str]:
    """Install ``chart`` with ``values`` into a fake cluster: (created objects, NOTES text)."""
    import helm_sdkpy as helm

    with FakeKube() as kube:
        cfg = helm.Configuration(namespace="default", kubeconfig=str(kube.kubeconfig(tmp / "kubeconfig")))
        result = asyncio.run(helm.Install(cfg).run(release, str(chart), values=values, wait=False, timeout=60))
        notes = (result.get("info") or {}).get("notes", "") if isinstance(result, dict) else ""
        return kube.created(), notes
