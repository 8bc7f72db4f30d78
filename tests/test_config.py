"""The config file and its environment overrides: only known keys, clear errors, secrets kept secret."""

from __future__ import annotations

import logging

import pytest

from detector.config import ConfigError, load_config

SERVICE_LINKS = {  # what Kubernetes injects for a Service named "skewwatch" in the namespace
    "SKEWWATCH_PORT": "tcp://10.96.12.7:9108",
    "SKEWWATCH_PORT_9108_TCP": "tcp://10.96.12.7:9108",
    "SKEWWATCH_PORT_9108_TCP_ADDR": "10.96.12.7",
    "SKEWWATCH_PORT_9108_TCP_PORT": "9108",
    "SKEWWATCH_PORT_9108_TCP_PROTO": "tcp",
    "SKEWWATCH_SERVICE_HOST": "10.96.12.7",
    "SKEWWATCH_SERVICE_PORT": "9108",
    "SKEWWATCH_SERVICE_PORT_METRICS": "9108",
}
SASL = {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "sw"}


def write(tmp_path, text):
    p = tmp_path / "skewwatch.yaml"
    p.write_text(text)
    return p


def test_service_links_and_our_own_variables_do_not_break_loading(tmp_path, caplog):
    env = {**SERVICE_LINKS, "SKEWWATCH_TANSU_BIN": "/opt/tansu", "SKEWWATCH_TEST_BOOTSTRAP": "x:1",
           "SKEWWATCH_DETECTOR__WINDOW": "5m", "SKEWWATCH_WEB__PORT": "9200"}
    with caplog.at_level(logging.WARNING, logger="skewwatch.config"):
        cfg = load_config(write(tmp_path, "web: {port: 9108}\n"), environ=env)
    assert cfg.detector.window == 300.0 and cfg.web.port == 9200  # known keys still apply, env over file
    assert cfg.ignored_env == tuple(sorted(SERVICE_LINKS))
    warnings = [r for r in caplog.records if r.name == "skewwatch.config"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one warning, naming each of them
    msg = warnings[0].getMessage()
    assert all(k in msg for k in SERVICE_LINKS) and "enableServiceLinks" in msg
    assert "SKEWWATCH_TANSU_BIN" not in msg and "SKEWWATCH_TEST_BOOTSTRAP" not in msg


def test_no_warning_when_every_variable_is_a_setting(caplog):
    with caplog.at_level(logging.WARNING, logger="skewwatch.config"):
        cfg = load_config(None, environ={"SKEWWATCH_KAFKA__BROKERS": '["k1:9092", "k2:9092"]',
                                         "SKEWWATCH_MODELS__FRAUD__REFERENCE": "ref.json",
                                         "SKEWWATCH_KAFKA__TOPICS__PARTITIONS": "12", "SKEWWATCH_LOG_FORMAT": "json",
                                         "SKEWWATCH_KAFKA__CREATE_TOPICS": "false"})
    assert not caplog.records
    assert cfg.kafka.brokers == ["k1:9092", "k2:9092"] and cfg.models["fraud"].reference == "ref.json"
    assert cfg.kafka.topics.partitions == 12 and cfg.log_format == "json" and cfg.kafka.create_topics is False


@pytest.mark.parametrize("var", ["SKEWWATCH_KAFKA__BROKER", "SKEWWATCH_DETECTOR__WINDOWS", "SKEWWATCH_KAFKA__",
                                 "SKEWWATCH_WEB__PORT__X", "SKEWWATCH_MODELS__FRAUD__REFERENCES"])
def test_misspelled_keys_are_ignored_and_named(var, caplog):
    with caplog.at_level(logging.WARNING, logger="skewwatch.config"):
        cfg = load_config(None, environ={var: "1"})
    assert cfg.ignored_env == (var,) and var in caplog.text
    assert cfg.models == {}


def test_a_bad_value_names_the_environment_variable():
    with pytest.raises(ConfigError, match=r"environment variable SKEWWATCH_WEB__PORT \(sets web.port\)"):
        load_config(None, environ={"SKEWWATCH_WEB__PORT": "tcp://10.0.0.1:9108"})
    with pytest.raises(ConfigError, match="SKEWWATCH_KAFKA__BROKERS: not valid JSON"):
        load_config(None, environ={"SKEWWATCH_KAFKA__BROKERS": "[unclosed"})


def test_log_format_and_web_bind_address_come_from_the_file(tmp_path):
    cfg = load_config(write(tmp_path, "log_format: json\nweb: {host: 127.0.0.1, port: 0}\n"), environ={})
    assert cfg.log_format == "json" and cfg.web.host == "127.0.0.1" and cfg.web.port == 0
    default = load_config(None, environ={})
    assert default.web.host == "0.0.0.0" and default.web.port == 9108  # pod IP: kubelet probes, Prometheus
    with pytest.raises(ConfigError, match="log_format"):
        load_config(write(tmp_path, "log_format: yaml\n"), environ={})


@pytest.mark.parametrize("security, message", [
    ({"sasl_mechanism": "PLAIN"}, "sasl_mechanism set but protocol is PLAINTEXT"),
    ({"protocol": "SASL_SSL"}, "needs sasl_mechanism and sasl_username"),
    ({**SASL}, "needs a password: set sasl_password_file"),
    ({**SASL, "sasl_password": "a", "sasl_password_file": "/p"}, "sasl_password and sasl_password_file are both set"),
    ({"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "p",
      "ssl_cafile": "/ca"}, "ssl_cafile set but protocol is SASL_PLAINTEXT"),
    ({"ssl_check_hostname": False}, "ssl_check_hostname set but protocol is PLAINTEXT"),
    ({"protocol": "SSL", "ssl_keyfile": "/k"}, "ssl_keyfile needs ssl_certfile"),
    ({"protocol": "SSL", "ssl_key_password": "x"}, "ssl_key_password\\* needs ssl_certfile"),
    ({"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": "p"},
     "sasl_mechanism"),
])
def test_inconsistent_security_settings_are_refused_with_the_fix(security, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, environ={}, overrides={"kafka": {"security": security}})


def test_secrets_never_show_in_repr_or_dumps():
    cfg = load_config(None, environ={"SKEWWATCH_KAFKA__SECURITY__SASL_PASSWORD": "hunter2-secret"},
                      overrides={"kafka": {"security": {**SASL}}})
    sec = cfg.kafka.security
    assert sec.sasl_password.get_secret_value() == "hunter2-secret"
    for text in (repr(cfg), str(cfg), repr(sec), str(cfg.model_dump()), str(cfg.model_dump(mode="json"))):
        assert "hunter2-secret" not in text


def test_replication_factor_and_create_topics():
    cfg = load_config(None, environ={})
    assert cfg.kafka.create_topics is True and cfg.kafka.replication_factor is None  # None: min(3, brokers)
    cfg = load_config(None, environ={}, overrides={"kafka": {"replication_factor": 3, "create_topics": False}})
    assert cfg.kafka.replication_factor == 3 and cfg.kafka.create_topics is False
    with pytest.raises(ConfigError, match="replication_factor"):
        load_config(None, environ={}, overrides={"kafka": {"replication_factor": 0}})
