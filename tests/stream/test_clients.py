"""The one client-settings builder: what every Kafka client of the process receives.

Certificates are real (a throwaway CA from :mod:`tests.stream.pki`); the handshakes on the wire
are in ``test_secured_kafka.py``.
"""

from __future__ import annotations

import logging
import ssl

import pytest

from detector.config import ConfigError, Kafka, load_config
from detector.kafka.clients import client_settings, plaintext
from tests.stream.pki import PKI


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = PKI(tmp_path_factory.mktemp("pki"))
    pki.client_pair = pki.client("skewwatch-client", password="key-pass")
    pki.plain_client = pki.client("plain-client", stem="plain")
    return pki


def kafka(**security) -> Kafka:
    return Kafka.model_validate({"brokers": ["kafka-0.kafka:9093", "kafka-1.kafka:9093"], "client_id": "sw-fraud",
                                 "security": security})


def test_plaintext_settings():
    s = plaintext("127.0.0.1:9092,127.0.0.1:9093")
    kw = s.aiokafka(linger_ms=5)
    assert kw == {"bootstrap_servers": "127.0.0.1:9092,127.0.0.1:9093", "client_id": "skewwatch",
                  "security_protocol": "PLAINTEXT", "linger_ms": 5}
    assert s.faust_credentials() is None and s.faust_brokers() == ["kafka://127.0.0.1:9092", "kafka://127.0.0.1:9093"]
    with pytest.raises(ConfigError, match="bootstrap"):
        plaintext(" , ")


def test_tls_context_loads_the_ca_and_the_client_certificate(pki):
    s = client_settings(kafka(protocol="SSL", ssl_cafile=str(pki.ca), ssl_certfile=str(pki.client_pair.cert),
                              ssl_keyfile=str(pki.client_pair.key), ssl_key_password="key-pass"))
    ctx = s.ssl_context
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    subjects = [dict(x[0] for x in c["subject"]).get("commonName") for c in ctx.get_ca_certs()]
    assert subjects == ["skewwatch-test-ca"]  # our CA only, not the system store
    kw = s.aiokafka()
    assert kw["security_protocol"] == "SSL" and kw["ssl_context"] is ctx and "sasl_mechanism" not in kw
    assert kw["bootstrap_servers"] == "kafka-0.kafka:9093,kafka-1.kafka:9093" and kw["client_id"] == "sw-fraud"


def test_hostname_check_can_be_turned_off_with_a_warning(pki, caplog):
    with caplog.at_level(logging.WARNING, logger="skewwatch.kafka"):
        s = client_settings(kafka(protocol="SSL", ssl_cafile=str(pki.ca), ssl_check_hostname=False))
    assert s.ssl_context.check_hostname is False and s.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert "ssl_check_hostname is false" in caplog.text


def test_without_a_ca_file_the_system_trust_store_is_used(pki):
    s = client_settings(kafka(protocol="SSL"))
    assert s.ssl_context.verify_mode == ssl.CERT_REQUIRED and s.describe()["ssl_cafile"] == "(system trust store)"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_settings_reach_aiokafka_and_faust(pki, mechanism):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    s = client_settings(kafka(protocol="SASL_SSL", sasl_mechanism=mechanism, sasl_username="sw",
                              sasl_password="pw-123", ssl_cafile=str(pki.ca)))
    kw = s.aiokafka()
    assert (kw["security_protocol"], kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == \
        ("SASL_SSL", mechanism, "sw", "pw-123")
    assert kw["ssl_context"] is s.ssl_context
    # what Faust's consumer and producer are built with (its own conversion function)
    auth = credentials_to_aiokafka_auth(s.faust_credentials())
    assert auth == {"security_protocol": "SASL_SSL", "sasl_mechanism": mechanism, "sasl_plain_username": "sw",
                    "sasl_plain_password": "pw-123", "ssl_context": s.ssl_context}


def test_sasl_plaintext_faust_credentials_and_clear_text_warning(caplog):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    with caplog.at_level(logging.WARNING, logger="skewwatch.kafka"):
        s = client_settings(kafka(protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
                                  sasl_password="p"))
    assert s.ssl_context is None and "clear text" in caplog.text
    assert credentials_to_aiokafka_auth(s.faust_credentials())["security_protocol"] == "SASL_PLAINTEXT"


def test_ssl_only_faust_credentials(pki):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    s = client_settings(kafka(protocol="SSL", ssl_cafile=str(pki.ca)))
    assert credentials_to_aiokafka_auth(s.faust_credentials()) == {"security_protocol": "SSL",
                                                                   "ssl_context": s.ssl_context}


def test_secrets_from_a_file_or_an_environment_variable(pki, tmp_path):
    pw = tmp_path / "password"
    pw.write_text("from-file\n")  # `kubectl create secret --from-file` keeps a trailing newline
    s = client_settings(kafka(**{"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "sw",
                                 "sasl_password_file": str(pw), "ssl_cafile": str(pki.ca)}))
    assert s.aiokafka()["sasl_plain_password"] == "from-file"
    kp = tmp_path / "keypass"
    kp.write_text("key-pass")
    s = client_settings(kafka(protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="sw",
                              sasl_password_env="KAFKA_PW", ssl_cafile=str(pki.ca),
                              ssl_certfile=str(pki.client_pair.cert), ssl_keyfile=str(pki.client_pair.key),
                              ssl_key_password_file=str(kp)),
                        environ={"KAFKA_PW": "from-env"})
    assert s.sasl_password == "from-env"


@pytest.mark.parametrize("security, environ, message", [
    ({"protocol": "SSL", "ssl_cafile": "/nonexistent/ca.crt"}, {}, r"kafka.security.ssl_cafile: cannot read /nonexistent"),
    ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password_file": "/nonexistent/pw"},
     {}, r"kafka.security.sasl_password_file: cannot read /nonexistent/pw"),
    ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password_env": "NOPE_PW"},
     {}, r"kafka.security.sasl_password_env: environment variable NOPE_PW is not set"),
])
def test_missing_files_and_variables_name_the_setting(security, environ, message):
    with pytest.raises(ConfigError, match=message):
        client_settings(kafka(**security), environ=environ)


def test_wrong_key_password_or_bad_pem_name_the_setting(pki, tmp_path):
    with pytest.raises(ConfigError, match="ssl_key_password is right"):
        client_settings(kafka(protocol="SSL", ssl_cafile=str(pki.ca), ssl_certfile=str(pki.client_pair.cert),
                              ssl_keyfile=str(pki.client_pair.key), ssl_key_password="wrong"))
    with pytest.raises(ConfigError, match="ssl_certfile/ssl_keyfile"):  # a key of another certificate
        client_settings(kafka(protocol="SSL", ssl_cafile=str(pki.ca), ssl_certfile=str(pki.client_pair.cert),
                              ssl_keyfile=str(pki.plain_client.key)))
    with pytest.raises(ConfigError, match="ssl_key_password is right"):  # encrypted key, no password: no prompt
        client_settings(kafka(protocol="SSL", ssl_cafile=str(pki.ca), ssl_certfile=str(pki.client_pair.cert),
                              ssl_keyfile=str(pki.client_pair.key)))
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="is not a PEM CA bundle"):
        client_settings(kafka(protocol="SSL", ssl_cafile=str(bad)))


def test_password_never_in_repr_describe_or_logs(pki, caplog):
    with caplog.at_level(logging.DEBUG):
        s = client_settings(kafka(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256", sasl_username="sw",
                                  sasl_password="pw-very-secret", ssl_cafile=str(pki.ca),
                                  ssl_certfile=str(pki.client_pair.cert), ssl_keyfile=str(pki.client_pair.key),
                                  ssl_key_password="key-pass"))
    for text in (repr(s), str(s.describe()), caplog.text, repr(s.faust_credentials())):
        assert "pw-very-secret" not in text and "key-pass" not in text
    assert s.describe()["sasl_username"] == "sw" and s.describe()["security_protocol"] == "SASL_SSL"


def test_the_worker_builds_faust_with_the_shared_settings_and_no_web(pki, tmp_path):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from detector.cli.demo import demo_reference
    from detector.kafka.worker import Worker

    cfg = load_config(None, environ={}, overrides={"kafka": {
        "brokers": ["kafka-0:9093"], "client_id": "sw-fraud", "create_topics": False, "replication_factor": 3,
        "security": {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "sw",
                     "sasl_password": "pw", "ssl_cafile": str(pki.ca)}}})
    w = Worker(cfg, {}, demo_reference(), worker_id="t")
    conf = w.app.conf
    auth = credentials_to_aiokafka_auth(conf.broker_credentials, conf.ssl_context)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["ssl_context"] is w.settings.ssl_context and auth["ssl_context"].get_ca_certs()
    assert conf.broker_client_id == "sw-fraud" and [str(u) for u in conf.broker] == ["kafka://kafka-0:9093"]
    assert conf.web_enabled is False and conf.web_router_enabled is False and conf.web_tables_enabled is False
    assert conf.topic_allow_declare is False and conf.topic_replication_factor == 3
