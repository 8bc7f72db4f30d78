"""Secured Kafka over the wire: TLS (server verification, hostname check, mutual TLS), SASL PLAIN and
SCRAM, topic creation and checks, and a whole ``skewwatch run`` over SASL_SSL.

The embedded broker speaks neither TLS nor SASL, so a front (:mod:`tests.stream.kafka_front`)
terminates both in front of it with real certificates (:mod:`tests.stream.pki`) and a real SCRAM
verifier; the broker advertises the front, so every client comes back through it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.config import Kafka
from detector.kafka.broker import EmbeddedBroker, free_port
from detector.kafka.clients import ClientSettings, client_settings
from detector.kafka.connect import ClusterError, check_cluster, handshake
from detector.kafka.topics import TopicSpec
from tests.stream.kafka_front import KafkaFront
from tests.stream.pki import PKI
from tests.stream.sidecar_proc import metric, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

USER, PASSWORD, KEY_PASSWORD = "skewwatch-fraud", "scram-pass-123", "key-pass-456"


class Secured:
    """Broker + secured front + PKI shared by the module."""

    def __init__(self, folder: Path) -> None:
        self.pki = PKI(folder / "pki")
        self.server = self.pki.server(["localhost", "127.0.0.1"])
        self.client = self.pki.client("skewwatch-client", password=KEY_PASSWORD)
        self.port = free_port()
        self.bootstrap = f"localhost:{self.port}"
        self.broker = EmbeddedBroker(advertised=self.bootstrap)
        self.front: KafkaFront | None = None

    def __enter__(self) -> Secured:
        self.broker.start()
        self.front = KafkaFront(("127.0.0.1", self.broker.port), port=self.port, server_cert=self.server.cert,
                                server_key=self.server.key, client_ca=self.pki.ca, users={USER: PASSWORD}).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.front is not None:
            self.front.stop()
        self.broker.stop()

    def security(self, **over: Any) -> dict[str, Any]:
        sec = {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": USER,
               "sasl_password": PASSWORD, "ssl_cafile": str(self.pki.ca), "ssl_certfile": str(self.client.cert),
               "ssl_keyfile": str(self.client.key), "ssl_key_password": KEY_PASSWORD}
        sec.update(over)
        return {k: v for k, v in sec.items() if v is not None}

    def settings(self, bootstrap: str | None = None, **over: Any) -> ClientSettings:
        return client_settings(Kafka.model_validate({"brokers": [bootstrap or self.bootstrap],
                                                     "security": self.security(**over)}))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    with Secured(tmp_path_factory.mktemp("secured")) as s:
        yield s


def run(coro: Any, timeout: float = 60.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def reason_of(settings: ClientSettings, timeout: float = 10.0) -> str:
    with pytest.raises(ClusterError) as err:
        run(handshake(settings, timeout=timeout))
    return f"{err.value.reason}: {err.value}"


# --------------------------------------------------------------------------------------------- TLS


def test_tls_verifies_the_broker_and_presents_the_client_certificate(secured: Secured) -> None:
    seen = secured.front.seen
    n = len(seen.tls_clients)
    run(handshake(secured.settings()))
    assert seen.tls_clients[n:] == ["skewwatch-client"]  # mutual TLS: the front verified our certificate
    assert ("SCRAM-SHA-512", USER, True) in seen.logins


def test_a_broker_certificate_from_another_ca_is_rejected(secured: Secured, tmp_path: Path) -> None:
    other = PKI(tmp_path / "other", "some-other-ca")
    r = reason_of(secured.settings(ssl_cafile=str(other.ca)))
    assert r.startswith("tls: ") and "certificate" in r and "ssl_cafile" in r


def test_hostname_check_on_and_off(secured: Secured, tmp_path: Path) -> None:
    """A certificate for kafka.internal only, dialled as 127.0.0.1: refused unless the check is off."""
    cert = secured.pki.server(["kafka.internal"], stem="wrong-name")
    port = free_port()
    with KafkaFront(("127.0.0.1", secured.broker.port), port=port, server_cert=cert.cert, server_key=cert.key,
                    users={USER: PASSWORD}):
        r = reason_of(secured.settings(f"127.0.0.1:{port}", ssl_certfile=None, ssl_keyfile=None,
                                       ssl_key_password=None))
        assert r.startswith("tls: ") and "127.0.0.1" in r
        run(handshake(secured.settings(f"127.0.0.1:{port}", ssl_certfile=None, ssl_keyfile=None,
                                       ssl_key_password=None, ssl_check_hostname=False)))


def test_mutual_tls_without_a_client_certificate_fails(secured: Secured) -> None:
    r = reason_of(secured.settings(ssl_certfile=None, ssl_keyfile=None, ssl_key_password=None))
    assert r.split(":")[0] in ("tls", "unreachable", "authentication"), r  # the broker hangs up during/after TLS
    assert None not in secured.front.seen.tls_clients  # no connection got past the front without a certificate


def test_a_plaintext_client_on_a_tls_listener_is_told_why(secured: Secured) -> None:
    plain = client_settings(Kafka.model_validate({"brokers": [secured.bootstrap]}))
    r = reason_of(plain, timeout=2.0)
    assert r.startswith("unreachable: ") and "set kafka.security.protocol" in r


# --------------------------------------------------------------------------------------------- SASL


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_mechanisms_log_in_on_the_wire(secured: Secured, mechanism: str) -> None:
    seen = secured.front.seen
    n_hs, n_login = len(seen.handshakes), len(seen.logins)
    run(handshake(secured.settings(sasl_mechanism=mechanism)))
    assert seen.handshakes[n_hs:] == [mechanism]  # the SaslHandshake request carried our mechanism
    assert seen.logins[n_login:] == [(mechanism, USER, True)]  # and the front verified the credentials


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_a_wrong_password_is_an_authentication_error(secured: Secured, mechanism: str) -> None:
    r = reason_of(secured.settings(sasl_mechanism=mechanism, sasl_password="wrong-password"))
    assert r.startswith("authentication: ") and USER in r and "wrong-password" not in r
    assert secured.front.seen.logins[-1] == (mechanism, USER, False)


def test_a_mechanism_the_broker_does_not_offer(secured: Secured) -> None:
    port = free_port()
    with KafkaFront(("127.0.0.1", secured.broker.port), port=port, server_cert=secured.server.cert,
                    server_key=secured.server.key, users={USER: PASSWORD}, mechanisms=("SCRAM-SHA-512",)):
        r = reason_of(secured.settings(f"localhost:{port}", sasl_mechanism="PLAIN"))
    assert r.startswith("authentication: ") and "PLAIN" in r


# --------------------------------------------------------------------------------------------- topics


def test_topics_are_created_over_sasl_ssl_with_the_replication_factor(secured: Secured, monkeypatch) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    requested: list[Any] = []
    real = AIOKafkaAdminClient.create_topics

    async def spy(self: Any, new_topics: list[Any], *a: Any, **kw: Any) -> Any:  # records, then the real request
        requested.extend(new_topics)
        return await real(self, new_topics, *a, **kw)

    monkeypatch.setattr(AIOKafkaAdminClient, "create_topics", spy)
    tag = uuid.uuid4().hex[:8]
    specs = [TopicSpec(f"in-{tag}", 3), TopicSpec(f"state-{tag}", 1, {"cleanup.policy": "compact"})]
    created = run(check_cluster(secured.settings(), specs, create=True, replication_factor=None))
    assert created == [s.name for s in specs]
    assert [(t.name, t.num_partitions, t.replication_factor) for t in requested] == \
        [(f"in-{tag}", 3, 1), (f"state-{tag}", 1, 1)]  # default: min(3, brokers) = 1 here
    assert requested[1].topic_configs == {"cleanup.policy": "compact"}
    assert run(check_cluster(secured.settings(), specs, create=True, replication_factor=None)) == []  # exist now
    requested.clear()
    more = [TopicSpec(f"rf-{tag}", 1)]
    run(check_cluster(secured.settings(), more, create=True, replication_factor=2))
    assert [t.replication_factor for t in requested] == [2]
    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(**secured.settings().aiokafka())
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    assert {s.name for s in specs + more} <= run(listed())


def test_create_topics_false_names_the_missing_topics_and_the_fix(secured: Secured) -> None:
    tag = uuid.uuid4().hex[:8]
    specs = [TopicSpec(f"pred-{tag}", 4), TopicSpec(f"g-{tag}-state", 1, {"cleanup.policy": "compact"})]
    with pytest.raises(ClusterError) as err:
        run(check_cluster(secured.settings(), specs, create=False, replication_factor=3))
    msg = str(err.value)
    assert err.value.reason == "topics_missing"
    assert f"kafka-topics.sh --create --topic pred-{tag} --partitions 4 --replication-factor 3" in msg
    assert f"--topic g-{tag}-state --partitions 1 --replication-factor 3 --config cleanup.policy=compact" in msg
    assert "kafka.create_topics" in msg
    run(check_cluster(secured.settings(), specs, create=True, replication_factor=None))
    assert run(check_cluster(secured.settings(), specs, create=False, replication_factor=None)) == []


# --------------------------------------------------------------------------------------------- the sidecar


def test_skewwatch_run_end_to_end_over_sasl_ssl_with_mutual_tls(secured: Secured, tmp_path: Path, sidecars) -> None:
    """The shipped k8s setup (SASL_SSL, SCRAM-SHA-512, CA file), plus a client certificate with an
    encrypted key: the worker creates its topics, consumes, and its alert reaches the alert topic."""
    from detector.cli.demo import demo_reference
    from detector.cli.simulate import produce_scenario

    ref = tmp_path / "reference.json"
    demo_reference().save(ref)
    (tmp_path / "kafka-password").write_text(PASSWORD + "\n")
    tag = uuid.uuid4().hex[:8]
    topics = {k: f"sec-{tag}-{k}" for k in ("predictions", "labels", "features", "alerts", "dlq")}
    sec = secured.security(sasl_password=None, sasl_password_file=str(tmp_path / "kafka-password"),
                           ssl_key_password=None, ssl_key_password_env="CLIENT_KEY_PASSWORD")
    port = free_port()
    cfg = tmp_path / "skewwatch.yaml"
    cfg.write_text(json.dumps({
        "default_reference": str(ref), "log_format": "json",
        "kafka": {"brokers": [secured.bootstrap], "group_id": f"sec-{tag}", "security": sec,
                  "topics": {**topics, "partitions": 2}},
        "web": {"host": "127.0.0.1", "port": port}, "labels": {"early_label_hold": "30d"},
        "checkpoint_interval": 4.0, "shutdown_grace": 10.0}))
    logins_before = len(secured.front.seen.logins)
    w = sidecars(cfg, port, "--worker-id", "sec-1", "--sidecar", env={"CLIENT_KEY_PASSWORD": KEY_PASSWORD})
    w.wait_http()
    wait_until("the worker to hold partitions", lambda: w.json("/readyz")["partitions_assigned"], 90, w.tail)
    sent = run(produce_scenario(secured.settings(), "unit_change", rate_per_hour=500.0, speedup=40_000.0,
                                hours=44.0, topics={k: topics[k] for k in ("predictions", "labels", "features")}),
               timeout=120)
    assert sent > 10_000

    def unit_alert() -> dict[str, Any] | None:
        for a in read_alerts(secured.settings(), topics["alerts"]):
            if a["kind"] == "unit_shift" and a["state"] == "firing":
                return a
        return None

    alert = wait_until("a firing unit_shift alert, read back over SASL_SSL", unit_alert, 150, w.tail, interval=2.0)
    assert alert["feature"] == "amount" and alert["cause"] == "pipeline_skew"
    ready = w.json("/readyz")
    assert ready["kafka"]["reachable"] is True and ready["phase"] == "running" and ready["restored"] is True
    assert metric(w.metrics(), "skewwatch_kafka_reachable") == 1.0
    logins = secured.front.seen.logins[logins_before:]
    assert len(logins) >= 4 and all(ok and user == USER and mech == "SCRAM-SHA-512" for mech, user, ok in logins)
    log = w.log()
    assert PASSWORD not in log and KEY_PASSWORD not in log  # secrets never logged
    lines = [ln for ln in log.splitlines() if ln.startswith("{")]
    assert lines and all(json.loads(ln)["level"] for ln in lines)  # log_format: json from the file


def test_sidecar_with_a_wrong_password_stays_up_and_says_why(secured: Secured, tmp_path: Path, sidecars) -> None:
    from detector.cli.demo import demo_reference

    ref = tmp_path / "reference.json"
    demo_reference().save(ref)
    port = free_port()
    cfg = tmp_path / "skewwatch.yaml"
    cfg.write_text(json.dumps({"default_reference": str(ref), "web": {"host": "127.0.0.1", "port": port},
                               "kafka": {"brokers": [secured.bootstrap], "group_id": "wrong-pw",
                                         "security": secured.security(sasl_password="not-the-password")}}))
    w = sidecars(cfg, port, "--sidecar")
    w.wait_http()

    def failures() -> float:
        return metric(w.metrics(), "skewwatch_kafka_connection_errors_total", 'reason="authentication"') or 0.0

    wait_until("authentication failures counted", lambda: failures() >= 2, 60, w.tail)  # it keeps retrying
    ready = w.json("/readyz")
    assert ready["_status"] == 200 and ready["kafka"]["reason"] == "authentication" and ready["phase"] == "connecting"
    assert "check sasl_username, the password" in ready["kafka"]["error"]
    assert metric(w.metrics(), "skewwatch_kafka_reachable") == 0.0
    assert w.alive and "not-the-password" not in w.log() and "authentication" in w.log()


def read_alerts(settings: ClientSettings, topic: str) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def main() -> list[dict[str, Any]]:
        c = AIOKafkaConsumer(**settings.aiokafka(enable_auto_commit=False, group_id=None))
        await c.start()
        try:
            await c._client.force_metadata_update()  # noqa: SLF001 - no public call in aiokafka
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
            if not tps:
                return []
            c.assign(tps)
            ends = await c.end_offsets(tps)
            await c.seek_to_beginning(*tps)
            out: list[dict[str, Any]] = []
            todo = {tp for tp in tps if ends[tp] > 0}
            while todo:
                for tp, recs in (await c.getmany(*todo, timeout_ms=500)).items():
                    out.extend(orjson.loads(r.value) for r in recs)
                    if recs and recs[-1].offset + 1 >= ends[tp]:
                        todo.discard(tp)
            return out
        finally:
            await c.stop()

    return run(main(), 30)


def test_simulate_cli_takes_the_cluster_and_its_security_from_a_config(secured: Secured, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.stream.sidecar_proc import REPO

    tag = uuid.uuid4().hex[:8]
    cfg = tmp_path / "skewwatch.yaml"
    cfg.write_text(json.dumps({"kafka": {"brokers": [secured.bootstrap], "security": secured.security(),
                                         "topics": {"predictions": f"sim-{tag}-p", "labels": f"sim-{tag}-l",
                                                    "features": f"sim-{tag}-f"}}}))
    n = len(secured.front.seen.logins)
    r = subprocess.run([sys.executable, "-m", "detector", "simulate", "--config", str(cfg), "--scenario", "stable",
                        "--hours", "2", "--rate", "300", "--speedup", "1000000", "--quiet"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert ("SCRAM-SHA-512", USER, True) in secured.front.seen.logins[n:]
    assert PASSWORD not in r.stderr + r.stdout
    bad = subprocess.run([sys.executable, "-m", "detector", "simulate", "--bootstrap", secured.bootstrap, "--quiet",
                          "--hours", "1"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "kafka.security.protocol" in bad.stderr  # plaintext against the TLS listener
