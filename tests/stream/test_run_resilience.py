"""``skewwatch run`` must never hold the model back: real processes, their HTTP endpoints and exit codes.

* Kafka unreachable: the process starts, serves /healthz and /readyz (200), counts and logs the
  failures, retries with backoff, and connects once a broker appears.
* A config error: exit 2 naming the field in plain mode; in sidecar mode the process stays up,
  serves health and the error (``skewwatch_config_error 1``) and starts once the file is fixed.
* Only our endpoints are served: Faust's /router and /table are 404.
* Kubernetes service-link variables do not break start-up; log_format comes from the file.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from detector.kafka.broker import EmbeddedBroker, free_port
from tests.stream.sidecar_proc import metric, wait_until

pytestmark = [pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from detector.cli.demo import demo_reference

    path = tmp_path_factory.mktemp("ref") / "reference.json"
    demo_reference().save(path)
    return path


def config(path: Path, reference: Path, broker: str, port: int, **extra: Any) -> Path:
    tag = uuid.uuid4().hex[:8]
    cfg: dict[str, Any] = {
        "default_reference": str(reference), "web": {"host": "127.0.0.1", "port": port},
        "kafka": {"brokers": [broker], "group_id": f"res-{tag}",
                  "topics": {k: f"res-{tag}-{k}" for k in ("predictions", "labels", "features", "alerts", "dlq")}},
        "checkpoint_interval": 4.0, "shutdown_grace": 8.0,
    }
    cfg.update(extra)
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.kafka
def test_kafka_unreachable_start_ready_retry_then_connect(reference: Path, tmp_path: Path, sidecars) -> None:
    kafka_port, port = free_port(), free_port()
    cfg = config(tmp_path / "cfg.yaml", reference, f"127.0.0.1:{kafka_port}", port)
    w = sidecars(cfg, port, "--worker-id", "res-1")  # plain mode: not even --sidecar is needed for this
    w.wait_http()
    ready = w.json("/readyz")
    assert ready["_status"] == 200 and ready["ready"] is True and ready["phase"] == "connecting"
    wait_until("two failed attempts", lambda: (metric(w.metrics(), "skewwatch_kafka_connection_errors_total",
                                                      'reason="unreachable"') or 0) >= 2, 30, w.tail)
    m = w.metrics()
    assert metric(m, "skewwatch_kafka_reachable") == 0.0 and metric(m, "skewwatch_config_error") == 0.0
    assert metric(m, "skewwatch_build_info", 'version="0.1.0"') == 1.0
    assert w.json("/readyz")["kafka"]["reason"] == "unreachable"
    assert "retrying in" in w.log() and f"127.0.0.1:{kafka_port}" in w.log()
    code, body, ctype = w.get("/status")
    assert code == 200 and "text/html" in ctype and b"Connecting to Kafka" in body
    with EmbeddedBroker(port=kafka_port):  # the broker comes up: the same process connects and runs
        wait_until("the worker to run and hold partitions",
                   lambda: (r := w.json("/readyz"))["phase"] == "running" and r["partitions_assigned"], 90, w.tail)
        assert metric(w.metrics(), "skewwatch_kafka_reachable") == 1.0
        st = w.json("/status?format=json")
        assert st["health"]["kafka"]["reachable"] is True and st["worker"] == "res-1"
        w.signal(signal.SIGTERM)
        assert w.wait_exit(30) == 0


def test_sigterm_while_connecting_exits_promptly(reference: Path, tmp_path: Path, sidecars) -> None:
    port = free_port()
    w = sidecars(config(tmp_path / "cfg.yaml", reference, f"127.0.0.1:{free_port()}", port), port)
    w.wait_http()
    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    assert w.wait_exit(20) == 0
    assert time.monotonic() - t0 < 15  # well within the pod's terminationGracePeriodSeconds


def test_only_our_endpoints_are_served(reference: Path, tmp_path: Path, sidecars) -> None:
    port = free_port()
    w = sidecars(config(tmp_path / "cfg.yaml", reference, f"127.0.0.1:{free_port()}", port), port)
    w.wait_http()
    for path in ("/router", "/router/", "/router/some-table/key", "/table", "/table/", "/table/x", "/graph",
                 "/performance/", "/assignment/", "/", "/metrics/../router"):
        assert w.get(path)[0] == 404, path
    assert w.get("/healthz", method="POST")[0] == 405
    assert w.get("/healthz", method="HEAD")[0] == 200
    code, body, ctype = w.get("/metrics")
    assert code == 200 and ctype.startswith("text/plain") and b"process_resident_memory_bytes" in body
    listening = listen_addresses(port)
    if listening is not None:  # Linux: the socket is bound to web.host (127.0.0.1 here), not to every interface
        assert listening == {"127.0.0.1"}, listening


def listen_addresses(port: int) -> set[str] | None:
    """Local IPv4 addresses with a listening TCP socket on ``port`` (from /proc/net/tcp; None elsewhere)."""
    import socket
    import struct

    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    out = set()
    for ln in lines:
        local, state = ln.split()[1], ln.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":  # 0A = LISTEN
            out.add(socket.inet_ntoa(struct.pack("<I", int(addr, 16))))
    return out


def test_config_error_exits_2_in_plain_mode(reference: Path, tmp_path: Path, sidecars) -> None:
    port = free_port()
    cfg = config(tmp_path / "cfg.yaml", reference, "127.0.0.1:1", port, detector={"windw": "1h"})
    w = sidecars(cfg, port)
    assert w.wait_exit(60) == 2
    assert "unknown key 'detector.windw'" in w.log() and "did you mean 'window'" in w.log()


def test_config_error_in_sidecar_mode_serves_the_error_and_recovers(reference: Path, tmp_path: Path, sidecars) -> None:
    port = free_port()
    cfg = tmp_path / "cfg.yaml"
    good = config(tmp_path / "good.yaml", reference, f"127.0.0.1:{free_port()}", port).read_text()
    bad = json.loads(good)
    bad["kafka"]["security"] = {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u",
                                "sasl_password_file": str(tmp_path / "missing-secret")}
    cfg.write_text(json.dumps(bad))
    w = sidecars(cfg, port, "--sidecar", "--config-retry", "0.5")
    w.wait_http()
    ready = w.json("/readyz")  # ready: a native sidecar's readiness is the model pod's
    assert ready["_status"] == 200 and ready["phase"] == "config_error" and ready["mode"] == "sidecar"
    assert "sasl_password_file" in ready["config_error"]
    assert metric(w.metrics(), "skewwatch_config_error") == 1.0
    code, body, _ = w.get("/status")
    assert code == 200 and b"Configuration error" in body and b"sasl_password_file" in body
    assert "configuration error" in w.log() and "missing-secret" in w.log()
    time.sleep(1.5)
    assert w.alive  # re-reading the broken file does not end the process
    cfg.write_text(good)  # fixed (e.g. the Secret is mounted now)
    wait_until("the worker to leave the config error", lambda: w.json("/readyz")["phase"] in ("connecting", "running"),
               30, w.tail)
    assert metric(w.metrics(), "skewwatch_config_error") == 0.0
    assert w.json("/readyz")["config_error"] is None


def test_a_config_that_is_not_yaml_in_sidecar_mode(tmp_path: Path, sidecars) -> None:
    port = free_port()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("web: {port: [unclosed\n")
    w = sidecars(cfg, port, "--sidecar", env={"SKEWWATCH_WEB__PORT": str(port), "SKEWWATCH_WEB__HOST": "127.0.0.1"})
    w.wait_http()
    assert w.json("/readyz")["phase"] == "config_error" and metric(w.metrics(), "skewwatch_config_error") == 1.0
    assert "not valid YAML" in w.json("/readyz")["config_error"]


def test_service_links_do_not_break_start_and_log_format_comes_from_the_file(reference: Path, tmp_path: Path,
                                                                           sidecars) -> None:
    port = free_port()
    cfg = config(tmp_path / "cfg.yaml", reference, f"127.0.0.1:{free_port()}", port, log_format="json")
    links = {"SKEWWATCH_PORT": "tcp://10.96.0.12:9108", "SKEWWATCH_PORT_9108_TCP_ADDR": "10.96.0.12",
             "SKEWWATCH_SERVICE_HOST": "10.96.0.12", "SKEWWATCH_SERVICE_PORT": "9108", "SKEWWATCH_TANSU_BIN": "/no/tansu"}
    w = sidecars(cfg, port, env=links)
    w.wait_http()
    records = [json.loads(ln) for ln in w.log().splitlines() if ln.strip()]  # every line is JSON
    warning = [r for r in records if r["logger"] == "skewwatch.config"]
    assert len(warning) == 1 and warning[0]["level"] == "warning"
    assert warning[0]["variables"] == ["SKEWWATCH_PORT", "SKEWWATCH_PORT_9108_TCP_ADDR", "SKEWWATCH_SERVICE_HOST",
                                       "SKEWWATCH_SERVICE_PORT"]
    assert any(r["logger"] == "skewwatch.web" for r in records)
