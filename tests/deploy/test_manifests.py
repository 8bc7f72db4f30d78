"""Dockerfile, Kubernetes manifests and the Compose file: parsed and checked, not run."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml

from detector.config import load_config
from tests.deploy.promql import ROOT

K8S = ROOT / "deploy" / "k8s" / "skewwatch.yaml"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"


def k8s_docs():
    return [d for d in yaml.safe_load_all(K8S.read_text()) if d]


def by_kind(kind):
    return [d for d in k8s_docs() if d["kind"] == kind]


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions():
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)
            if not m.group(0).lstrip().startswith("#")]


def test_dockerfile_is_multistage_pinned_nonroot_with_healthcheck():
    ins = dockerfile_instructions()
    args = dict(v.split("=", 1) for k, v in ins if k == "ARG" and "=" in v)
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    froms = [v for k, v in ins if k == "FROM"]
    assert len(froms) >= 2 and all(f.startswith("${PYTHON_IMAGE}") for f in froms)
    assert "--from=build" in " ".join(v for k, v in ins if k == "COPY")
    users = [v for k, v in ins if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (hc,) = [v for k, v in ins if k == "HEALTHCHECK"]
    assert "/healthz" in hc and ":9108" in hc and "urllib" in hc and "python" in hc
    assert ("EXPOSE", "9108") in ins
    assert [v for k, v in ins if k == "ENTRYPOINT"] == ['["skewwatch"]']
    assert [v for k, v in ins if k == "CMD"][-1] == '["run", "--config", "/etc/skewwatch/skewwatch.yaml"]'


def test_dockerignore_keeps_the_build_context_small_but_complete():
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")}
    assert {".git", "tests", "**/__pycache__", ".pytest_cache"} <= ignored
    copied = {src for k, v in dockerfile_instructions() if k == "COPY" and not v.startswith("--from")
              for src in v.split()[:-1]}
    assert copied == {"pyproject.toml", "README.md", "detector"}  # README.md: pyproject's readme, the build needs it
    assert not copied & ignored


# --------------------------------------------------------------------------- Kubernetes


def test_k8s_manifests_parse_with_the_expected_objects():
    kinds = [d["kind"] for d in k8s_docs()]
    assert sorted(kinds) == ["ConfigMap", "Deployment", "Service", "ServiceMonitor"]
    for d in k8s_docs():
        assert d["apiVersion"] and d["metadata"]["name"]


def _sidecar():
    (dep,) = by_kind("Deployment")
    spec = dep["spec"]["template"]["spec"]
    (sc,) = [c for c in spec["initContainers"] if c["name"] == "skewwatch"]
    return dep, spec, sc


def test_skewwatch_is_a_native_sidecar_with_broker_free_probes():
    dep, spec, sc = _sidecar()
    assert sc["restartPolicy"] == "Always"
    assert sc["args"] == ["run", "--config", "/etc/skewwatch/skewwatch.yaml"]
    port = {p["name"]: p["containerPort"] for p in sc["ports"]}
    assert port["metrics"] == 9108
    assert sc["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sc["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert set(sc[probe]) - {"periodSeconds", "timeoutSeconds", "failureThreshold"} == {"httpGet"}
        assert sc[probe]["httpGet"]["port"] == "metrics"
    assert spec["containers"] and all(c["name"] != "skewwatch" for c in spec["containers"])
    assert dep["spec"]["template"]["metadata"]["labels"].items() >= dep["spec"]["selector"]["matchLabels"].items()


def test_every_container_has_requests_limits_and_runs_unprivileged():
    _, spec, _ = _sidecar()
    for c in spec["initContainers"] + spec["containers"]:
        res = c["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"]), c["name"]
        sec = c["securityContext"]
        assert sec["runAsNonRoot"] and sec["allowPrivilegeEscalation"] is False and sec["readOnlyRootFilesystem"]
        assert ":" in c["image"] and not c["image"].endswith(":latest")


def test_sidecar_config_validates_and_mounts_line_up():
    _, spec, sc = _sidecar()
    (cm,) = by_kind("ConfigMap")
    cfg_text = cm["data"]["skewwatch.yaml"]
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "skewwatch.yaml"
        p.write_text(cfg_text)
        cfg = load_config(p, environ={"SKEWWATCH_KAFKA__SECURITY__SASL_PASSWORD": "x"})
    assert cfg.web.port == 9108 and cfg.kafka.security.sasl_password == "x"
    mounts = {m["mountPath"]: m["name"] for m in sc["volumeMounts"]}
    assert mounts["/etc/skewwatch/skewwatch.yaml"] == "skewwatch-config"
    ref_dir = str(Path(cfg.models["fraud"].reference).parent)
    assert ref_dir in mounts
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["skewwatch-config"]["configMap"]["name"] == cm["metadata"]["name"]
    assert set(mounts.values()) <= set(volumes)
    env = {e["name"]: e for e in sc["env"]}
    assert "secretKeyRef" in env["SKEWWATCH_KAFKA__SECURITY__SASL_PASSWORD"]["valueFrom"]


def test_service_and_servicemonitor_scrape_the_sidecar_as_job_skewwatch():
    (dep,) = by_kind("Deployment")
    (svc,) = by_kind("Service")
    (sm,) = by_kind("ServiceMonitor")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["metrics"]["port"] == 9108 and ports["metrics"]["targetPort"] == "metrics"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "metrics" and ep["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "skewwatch"} in ep["relabelings"]


# --------------------------------------------------------------------------- Compose


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_the_whole_loop(compose):
    s = compose["services"]
    assert {"kafka", "detector", "simulator", "prometheus", "alertmanager", "grafana"} <= set(s)
    assert s["kafka"]["image"].startswith("apache/kafka:")
    env = s["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert "ZOOKEEPER" not in str(env).upper()
    assert s["simulator"]["command"] == ["simulate", "--bootstrap", "kafka:9092"]
    assert s["detector"]["command"] == ["run", "--config", "/etc/skewwatch/skewwatch.yaml"]
    assert s["detector"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("detector", "simulator", "baseline"):
        assert s[name]["build"]["context"] == ".." and s[name]["image"] == "skewwatch:dev"
    for name in ("prometheus", "alertmanager", "grafana"):
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", s[name]["image"]), s[name]["image"]


def test_compose_mounts_exist_and_configs_validate(compose):
    for svc in compose["services"].values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (COMPOSE.parent / src).exists(), vol
    s = compose["services"]
    prom_dir = next(v for v in s["prometheus"]["volumes"] if v.endswith(":/etc/prometheus:ro")).split(":")[0]
    assert (COMPOSE.parent / prom_dir / "rules.yml").exists()
    prom = yaml.safe_load((COMPOSE.parent / prom_dir / "prometheus.yml").read_text())
    targets = [t for j in prom["scrape_configs"] if j["job_name"] == "skewwatch" for c in j["static_configs"] for t in c["targets"]]
    assert targets == ["detector:9108"]
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    cfg_src = next(v for v in s["detector"]["volumes"] if v.endswith(":/etc/skewwatch/skewwatch.yaml:ro")).split(":")[0]
    cfg = load_config(COMPOSE.parent / cfg_src, environ={})
    assert cfg.kafka.brokers == ["kafka:9092"] and cfg.web.port == 9108
    baseline = " ".join(s["baseline"]["command"])
    assert cfg.models["fraud"].reference in baseline and "skewwatch baseline" in baseline
    assert shlex.split(baseline)  # a well-formed shell command
