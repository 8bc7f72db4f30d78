"""Alert rules: promtool-valid, unit-tested on both sides of every `for:`, documented, routed."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.promql import PROMETHEUS_SYNTHETIC, ROOT, RULES, exported_names, metric_names, rules
from tests.deploy.traffic import SHARES_FAULTY_WORKER

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
NO_PROMTOOL = "promtool not installed: apt-get update && apt-get install -y prometheus"
README_BASE = "https://runbooks.example.com/skewwatch#"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.skip(NO_PROMTOOL)
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=RULES.parent)


def test_promtool_check_rules():
    r = _promtool("check", "rules", "rules.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_promtool_test_rules():
    r = _promtool("test", "rules", "rules_test.yml")
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_promtool_check_prometheus_config():
    r = _promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_rule_has_severity_for_keep_firing_and_annotations():
    for r in rules():
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert re.fullmatch(r"\d+[smh]", r["for"]) and re.fullmatch(r"\d+[smh]", r["keep_firing_for"]), r["alert"]
        a = r["annotations"]
        assert a["summary"].strip() and a["description"].strip(), r["alert"]
        assert a["runbook_url"] == README_BASE + r["alert"].lower(), r["alert"]


def test_runbook_anchors_exist_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+\s+(.+)$", readme, flags=re.M)}
    missing = {r["annotations"]["runbook_url"].split("#", 1)[1] for r in rules()} - anchors
    assert not missing, f"README.md has no heading for {missing}"


@SHARES_FAULTY_WORKER
def test_rules_reference_only_exported_metrics():
    allowed = exported_names() | PROMETHEUS_SYNTHETIC
    for r in rules():
        names = metric_names(r["expr"])
        assert names and names <= allowed, (r["alert"], names - allowed)


def test_every_for_is_tested_on_both_sides():
    """rules_test.yml checks each alert before its `for:` elapses (no alert) and after (firing)."""
    tests = yaml.safe_load((RULES.parent / "rules_test.yml").read_text())["tests"]
    seen: dict[str, set[str]] = {}
    for t in tests:
        for case in t["alert_rule_test"]:
            seen.setdefault(case["alertname"], set()).add("after" if case["exp_alerts"] else "before")
    for r in rules():
        assert seen.get(r["alert"]) == {"before", "after"}, r["alert"]
    severities = {(c["alertname"], a["exp_labels"]["severity"]) for t in tests for c in t["alert_rule_test"]
                  for a in c["exp_alerts"]}
    assert {(r["alert"], r["labels"]["severity"]) for r in rules()} <= severities


def test_prometheus_operator_rule_matches_rules_yml():
    doc = yaml.safe_load((ROOT / "deploy/k8s/prometheusrule.yaml").read_text())
    assert doc["kind"] == "PrometheusRule"
    assert doc["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_alertmanager_routes_by_severity_and_action():
    cfg = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    matchers = {m for r in cfg["route"]["routes"] for m in r.get("matchers", [])}
    assert {'severity="critical"', 'action="fix_data"', 'action="fix_model"', 'action="fix_system"',
            'component="skewwatch"'} <= matchers
    if AMTOOL is None:
        pytest.skip("amtool not installed: apt-get install -y prometheus-alertmanager")
    path = str(ROOT / "deploy/alertmanager/alertmanager.yml")
    r = subprocess.run([AMTOOL, "check-config", path], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    for labels, want in ((["severity=critical", "action=fix_data", "cause=pipeline_skew"], "pager,data-owners"),
                         (["severity=warning", "action=fix_model"], "model-owners"),
                         (["severity=warning", "action=fix_system"], "serving-oncall"),
                         (["severity=warning", "component=skewwatch"], "platform")):
        r = subprocess.run([AMTOOL, "config", "routes", "test", f"--config.file={path}", *labels],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == want, (labels, r.stdout, r.stderr)
