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
    # README.md: pyproject's readme, the build needs it; setup.py: the C scanner extension
    assert copied == {"pyproject.toml", "setup.py", "README.md", "detector"}
    assert not copied & ignored


# --------------------------------------------------------------------------- Kubernetes


def test_dockerfile_installs_the_built_wheel_with_the_fast_extra_only():
    """The image runs what .ci/wheel-smoke tests: the wheel, no editable install, no dev extras - with
    the `fast` extra (Arrow's columnar reader) by default, and a build argument to leave it out."""
    ins = dockerfile_instructions()
    args = [v for k, v in ins if k == "ARG"]
    assert "SKEWWATCH_EXTRAS=fast" in args and args.count("SKEWWATCH_EXTRAS") == 2  # declared again in both stages
    runs = [v for k, v in ins if k == "RUN"]
    assert any('pip wheel --wheel-dir /wheels ".[${SKEWWATCH_EXTRAS}]"' in r for r in runs)
    (install,) = [r for r in runs if "pip install" in r]
    assert '--no-index --find-links=/wheels "skewwatch[${SKEWWATCH_EXTRAS}]"' in install and " -e " not in install
    assert "dev" not in install
    # the image refuses a wheel built without the C scanner (the extension is optional only for pip)
    assert any("_scan." in r and "zipfile" in r for r in runs)


def test_k8s_manifests_parse_with_the_expected_objects():
    kinds = [d["kind"] for d in k8s_docs()]
    assert sorted(kinds) == ["ConfigMap", "Deployment", "NetworkPolicy", "Service", "ServiceMonitor"]
    for d in k8s_docs():
        assert d["apiVersion"] and d["metadata"]["name"]


def _sidecar():
    (dep,) = by_kind("Deployment")
    spec = dep["spec"]["template"]["spec"]
    (sc,) = [c for c in spec["initContainers"] if c["name"] == "skewwatch"]
    return dep, spec, sc


def test_skewwatch_is_a_native_sidecar_that_cannot_hold_the_model_back():
    dep, spec, sc = _sidecar()
    assert sc["restartPolicy"] == "Always"
    assert sc["args"] == ["run", "--config", "/etc/skewwatch/config/skewwatch.yaml", "--sidecar"]
    port = {p["name"]: p["containerPort"] for p in sc["ports"]}
    assert port["metrics"] == 9108
    # no startupProbe: the kubelet starts model-server once the skewwatch process runs; no
    # readinessProbe: a native sidecar's readiness would be the Pod's (README: "Why skewwatch ...")
    assert "startupProbe" not in sc and "readinessProbe" not in sc
    live = sc["livenessProbe"]
    assert live["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert live["initialDelaySeconds"] >= 5 and live["periodSeconds"] * live["failureThreshold"] >= 30
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
        cfg = load_config(p, environ={})
    sec = cfg.kafka.security
    assert cfg.web.port == 9108 and cfg.web.host == "0.0.0.0" and cfg.log_format == "json"
    assert sec.protocol == "SASL_SSL" and sec.sasl_password is None and sec.ssl_check_hostname
    mounts = {m["mountPath"]: m for m in sc["volumeMounts"]}
    assert all(m.get("readOnly") for path, m in mounts.items() if path.startswith("/etc/"))
    assert "subPath" not in mounts["/etc/skewwatch/config"]  # a directory: ConfigMap edits reach the pod
    assert sc["args"][2] == "/etc/skewwatch/config/" + next(iter(cm["data"]))
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[mounts["/etc/skewwatch/config"]["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    for path in (cfg.models["fraud"].reference, sec.ssl_cafile, sec.sasl_password_file):
        assert str(Path(path).parent) in mounts, path  # every file the config names is mounted
    secret = volumes[mounts[str(Path(sec.sasl_password_file).parent)]["name"]]["secret"]
    assert [i["path"] for i in secret["items"]] == [Path(sec.sasl_password_file).name]
    assert {m["name"] for m in mounts.values()} <= set(volumes)
    # the root filesystem is read-only and the worker writes only its private temporary directory: /tmp is the
    # one writable mount, and no volume is declared that no container mounts
    assert [p for p, m in mounts.items() if not m.get("readOnly")] == ["/tmp"]
    used = {m["name"] for c in spec["containers"] + spec.get("initContainers", []) for m in c.get("volumeMounts", [])}
    assert set(volumes) <= used, set(volumes) - used
    assert "env" not in sc  # the password comes from the mounted Secret, not an environment variable


def test_pod_has_no_service_account_token_and_no_service_links():
    _, spec, _ = _sidecar()
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False


def test_network_policy_admits_only_prometheus_to_the_metrics_port():
    (dep,) = by_kind("Deployment")
    (np,) = by_kind("NetworkPolicy")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert np["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert np["spec"]["policyTypes"] == ["Ingress"]  # egress is pod-wide: it would restrict the model too
    rules = np["spec"]["ingress"]
    by_port = {p["port"]: r for r in rules for p in r["ports"]}
    assert set(by_port) == {"http", "metrics"}
    metrics_rule = by_port["metrics"]
    (peer,) = metrics_rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    _, _, sc = _sidecar()
    names = {p["name"] for c in dep["spec"]["template"]["spec"]["initContainers"] + dep["spec"]["template"]["spec"][
        "containers"] for p in c.get("ports", [])}
    assert set(by_port) <= names  # named ports resolve to container ports of the pod


@pytest.mark.parametrize("version", ["1.29", "1.33"])
def test_k8s_manifests_validate_against_the_kubernetes_schema(version):
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate (dev extra)")
    from kubernetes_validate.utils import SchemaNotFoundError

    checked = []
    for doc in k8s_docs():
        try:
            kv.validate(doc, version, strict=True)  # raises ValidationError with the path on a bad field
        except SchemaNotFoundError:
            assert doc["apiVersion"].startswith("monitoring.coreos.com/"), doc["kind"]  # CRDs: no schema offline
            continue
        checked.append(doc["kind"])
    assert sorted(checked) == ["ConfigMap", "Deployment", "NetworkPolicy", "Service"]
    import copy

    (dep,) = by_kind("Deployment")
    bad = copy.deepcopy(dep)
    bad["spec"]["template"]["spec"]["automountServiceAcountToken"] = False  # a typo the API server would drop
    with pytest.raises(kv.utils.ValidationError):
        kv.validate(bad, version, strict=True)


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
