"""The Helm chart, rendered by the real Helm library and validated against the Kubernetes schemas."""

from __future__ import annotations

import re

import pytest
import yaml

from detector.config import Config
from tests.deploy.promql import ROOT, RULES

CHART = ROOT / "deploy" / "helm" / "skewwatch"
K8S = "1.31.0"
helm = pytest.importorskip("helm_sdkpy", reason="helm-sdkpy not installed: pip install --ignore-requires-python helm-sdkpy")
kv = pytest.importorskip("kubernetes_validate")


def render(values, tmp_path):
    from tests.deploy.fakekube import render as _render

    return _render(CHART, values, tmp_path)


def by_kind(objs):
    out: dict[str, list] = {}
    for o in objs:
        out.setdefault(o["kind"], []).append(o)
    return out


def validate(objs):
    """Every built-in kind against the Kubernetes OpenAPI schema (strict: no unknown fields)."""
    checked = 0
    for o in objs:
        if o["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # CRDs: checked field by field below
        clean = {k: v for k, v in o.items() if k != "metadata"} | {
            "metadata": {k: v for k, v in o["metadata"].items() if k not in ("uid", "resourceVersion")}}
        kv.validate(clean, K8S, strict=True)
        checked += 1
    return checked


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    return render({}, tmp_path_factory.mktemp("helm"))


def test_standalone_renders_valid_manifests(standalone):
    objs, notes = standalone
    kinds = by_kind(objs)
    assert {"StatefulSet", "Service", "ServiceAccount", "ConfigMap", "NetworkPolicy", "ServiceMonitor",
            "PrometheusRule"} <= set(kinds)
    assert validate(objs) >= 9
    assert "standalone mode" in notes


def test_statefulset_workers_have_stable_ids_no_token_and_broker_free_probes(standalone):
    (sts,) = by_kind(standalone[0])["StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["args"] == ["run", "--config", "/etc/skewwatch/skewwatch.yaml", "--worker-id", "$(POD_NAME)"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # sts-0, sts-1: stable
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["image"] == "skewwatch:0.1.0"
    (sa,) = by_kind(standalone[0])["ServiceAccount"]
    assert sa["automountServiceAccountToken"] is False
    (svc,) = by_kind(standalone[0])["Service"]
    assert svc["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()


def test_config_map_is_a_valid_skewwatch_config(standalone):
    cm = next(o for o in by_kind(standalone[0])["ConfigMap"] if o["metadata"]["name"].endswith("-config"))
    cfg = Config.model_validate(yaml.safe_load(cm["data"]["skewwatch.yaml"]))
    assert cfg.kafka.group_id == "skewwatch-fraud" and cfg.web.port == 9108


def test_network_policy_allows_scrapes_in_and_kafka_and_dns_out(standalone):
    (np_,) = by_kind(standalone[0])["NetworkPolicy"]
    spec = np_["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    ports = {(p["port"], p["protocol"]) for e in spec["egress"] for p in e["ports"]}
    assert {(9092, "TCP"), (9093, "TCP"), (53, "UDP"), (53, "TCP")} <= ports


def test_prometheus_rule_is_rules_yml_with_the_configured_runbook_base(tmp_path):
    objs, _ = render({"prometheusRule": {"runbookBaseUrl": "https://wiki.example.org/ml/skewwatch/"}}, tmp_path)
    (rule,) = by_kind(objs)["PrometheusRule"]
    want = yaml.safe_load(RULES.read_text().replace("https://runbooks.example.com/skewwatch",
                                                    "https://wiki.example.org/ml/skewwatch"))["groups"]
    assert rule["spec"]["groups"] == want
    urls = {r["annotations"]["runbook_url"] for g in want for r in g["rules"]}
    assert urls and all(u.startswith("https://wiki.example.org/ml/skewwatch#skewwatch") for u in urls)
    (sm,) = by_kind(objs)["ServiceMonitor"]
    assert sm["spec"]["endpoints"][0]["relabelings"][0]["replacement"] == "skewwatch"


def test_dashboards_as_configmaps_for_the_grafana_sidecar(standalone):
    dash = [o for o in by_kind(standalone[0])["ConfigMap"] if "-dashboard-" in o["metadata"]["name"]]
    assert len(dash) == 4 and all(o["metadata"]["labels"]["grafana_dashboard"] == "1" for o in dash)
    assert all('"uid": "skewwatch-' in next(iter(o["data"].values())) for o in dash)


def test_sidecar_mode_secrets_and_a_valid_injection_snippet(tmp_path):
    values = {"mode": "sidecar", "kafka": {"saslPassword": "s3cret", "tls": {"enabled": True, "ca": "PEM"}},
              "reference": {"files": {"reference.json": "{}"}}}
    objs, notes = render(values, tmp_path)
    kinds = by_kind(objs)
    assert "StatefulSet" not in kinds and "NetworkPolicy" not in kinds  # the pod (and its policy) are the model's
    secrets = {o["metadata"]["name"]: o for o in kinds["Secret"]}
    assert secrets["sw-skewwatch-kafka"]["stringData"] == {"sasl-password": "s3cret"}
    assert secrets["sw-skewwatch-kafka-tls"]["stringData"] == {"ca.crt": "PEM"}
    (svc,) = kinds["Service"]
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "fraud-model"} and "clusterIP" not in svc["spec"]
    validate(objs)
    # the snippet from NOTES, pasted into a model Deployment, is a valid native sidecar
    snippet = yaml.safe_load(re.search(r"^  initContainers:\n.*?(?=^\nand on the pod)", notes, re.S | re.M).group(0))
    (side,) = snippet["initContainers"]
    assert side["restartPolicy"] == "Always" and side["name"] == "skewwatch"
    assert side["args"][-1] == "--sidecar"  # never exits on a config error
    assert "startupProbe" not in side and "readinessProbe" not in side  # cannot hold the model back
    assert side["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in side["env"]}
    assert env["SKEWWATCH_KAFKA__SECURITY__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "sw-skewwatch-kafka"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fraud-model"},
                  "spec": {"selector": {"matchLabels": {"app": "m"}}, "template": {
                      "metadata": {"labels": {"app": "m"}},
                      "spec": {"automountServiceAccountToken": False, "initContainers": snippet["initContainers"],
                               "containers": [{"name": "model-server", "image": "example/model:1"}],
                               "volumes": snippet["volumes"]}}}}
    kv.validate(deployment, K8S, strict=True)


def test_values_are_checked_against_the_schema(tmp_path):
    with pytest.raises(helm.HelmError, match="mode"):
        render({"mode": "daemonset"}, tmp_path)
    with pytest.raises(helm.HelmError, match="kafka.tls.ca"):
        render({"kafka": {"tls": {"enabled": True}}}, tmp_path)
