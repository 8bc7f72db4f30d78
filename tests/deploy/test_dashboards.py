"""Grafana dashboards and provisioning follow the conventions and use only exported metrics."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
import yaml

from tests.deploy.promql import (
    DASHBOARDS,
    ROOT,
    dashboards,
    exported_names,
    metric_names,
    panel_queries,
    panels,
)
from tests.deploy.traffic import SHARES_FAULTY_WORKER

RATE = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv)\s*\([^\[]*\[([^\]]+)\]")


def _build():
    spec = importlib.util.spec_from_file_location("grafana_build", ROOT / "grafana" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_dashboards_configmaps_and_chart_copies_are_up_to_date():
    mod = _build()
    assert sorted(mod.render()) == [p.name for p in DASHBOARDS]
    stale = [str(path) for path, text in mod.outputs().items() if not path.exists() or path.read_text() != text]
    assert not stale, f"{stale} differ from grafana/build.py: run python3 grafana/build.py"


def test_dashboards_are_packaged_as_configmaps_for_the_grafana_sidecar():
    docs = [d for d in yaml.safe_load_all((ROOT / "grafana/kubernetes/dashboards.yaml").read_text()) if d]
    assert len(docs) == len(DASHBOARDS)
    for cm in docs:
        assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((key, text),) = cm["data"].items()
        assert key.endswith(".json") and json.loads(text)["uid"].startswith("skewwatch-")
    assert sorted(p.name for p in (ROOT / "deploy/helm/skewwatch/dashboards").glob("*.json")) == [p.name for p in DASHBOARDS]


def test_every_query_is_scoped_to_the_cluster_and_namespace_variables():
    for dash, title, expr in panel_queries():
        for sel in re.findall(r"\b(?:skewwatch|process)_\w+(\{[^}]*\})?", expr):
            assert 'cluster=~"$cluster", namespace=~"$namespace"' in sel, (dash, title, expr)


def test_overview_incidents_drill_down_to_the_feature_dashboard():
    d = dashboards()["overview.json"]
    table = next(p for p in panels(d) if p["title"] == "What is wrong now")
    links = table["fieldConfig"]["defaults"]["links"]
    uids = {x["uid"] for x in dashboards().values()}
    feature = next(x for x in links if "/d/skewwatch-features?" in x["url"])
    for var in ("var-model=${__data.fields.model}", "var-feature=${__data.fields.feature}",
                "var-slice=${__data.fields.slice}", "${__url_time_range}", "${namespace:queryparam}"):
        assert var in feature["url"]
    assert {x["url"].split("?")[0].removeprefix("/d/") for x in links} <= uids


def test_feature_dashboard_repeats_a_row_per_selected_feature():
    d = dashboards()["features.json"]
    rows = [p for p in d["panels"] if p["type"] == "row"]
    assert [r.get("repeat") for r in rows] == ["feature"]
    after = d["panels"][d["panels"].index(rows[0]) + 1:]
    assert len(after) >= 3 and all("$feature" in p["title"] for p in after)
    feature_var = next(v for v in d["templating"]["list"] if v["name"] == "feature")
    assert feature_var["multi"] and feature_var["includeAll"]  # repeating needs a multi-value variable


def test_distributions_are_read_with_histogram_quantile():
    exprs = [e for _, _, e in panel_queries()]
    for family in ("skewwatch_latency_seconds_bucket", "skewwatch_label_delay_seconds_bucket", "skewwatch_score_bucket"):
        uses = [e for e in exprs if family in e]
        assert uses and all("histogram_quantile" in e or "increase(" in e for e in uses), family
        assert all(re.search(r"by \([^)]*\ble\b", e) for e in uses), family  # aggregate over replicas, keep le


def test_four_dashboards_with_unique_uids_and_titles():
    ds = dashboards()
    assert set(ds) == {"overview.json", "features.json", "outcomes.json", "pipeline.json"}
    uids = [d["uid"] for d in ds.values()]
    assert len(set(uids)) == len(uids) and all(0 < len(u) <= 40 for u in uids)
    assert len({d["title"] for d in ds.values()}) == len(ds)
    for d in ds.values():
        assert d["schemaVersion"] >= 39
        assert "__inputs" not in d and "${DS_" not in str(d)


@SHARES_FAULTY_WORKER
@pytest.mark.parametrize("name", [p.name for p in DASHBOARDS])
def test_template_variables(name):
    d = dashboards()[name]
    tv = {v["name"]: v for v in d["templating"]["list"]}
    assert tv["datasource"]["type"] == "datasource" and tv["datasource"]["query"] == "prometheus"
    assert tv["model"]["type"] == "query"
    used = set(re.findall(r"\$\{?(\w+)", str([t["expr"] for p in panels(d) for t in p.get("targets", [])])))
    used.discard("__rate_interval")
    assert used <= set(tv), f"undefined variables {used - set(tv)}"
    for v in tv.values():
        if v["type"] == "query":
            assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert metric_names(v["definition"]) <= exported_names()
    if name == "features.json":
        assert {"model", "feature", "slice"} <= set(tv)


@pytest.mark.parametrize("name", [p.name for p in DASHBOARDS])
def test_every_panel_has_unit_description_datasource_and_targets(name):
    d = dashboards()[name]
    ids = []
    for p in panels(d):
        ids.append(p["id"])
        where = f"{name} / {p['title']}"
        assert p.get("description", "").strip(), where
        assert p["fieldConfig"]["defaults"].get("unit"), where
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert p["targets"], where
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), where
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], where
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, where
    assert len(set(ids)) == len(ids)


def test_every_range_function_uses_rate_interval():
    for dash, title, expr in panel_queries():
        for fn, rng in RATE.findall(expr):
            assert rng == "$__rate_interval", f"{dash} / {title}: {fn}(...[{rng}])"


@SHARES_FAULTY_WORKER
def test_dashboards_query_only_exported_metrics():
    exported = exported_names()
    for dash, title, expr in panel_queries():
        names = metric_names(expr)
        assert names, f"{dash} / {title}: no metric in {expr}"
        assert names <= exported, f"{dash} / {title}: {names - exported} are not exported"


def test_provisioning_points_at_the_dashboards_and_a_fixed_datasource_uid():
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/skewwatch.yaml").read_text())
    (src,) = ds["datasources"]
    assert src["type"] == "prometheus" and src["uid"] == "skewwatch-prometheus" and src["url"].startswith("http")
    for d in dashboards().values():
        current = next(v for v in d["templating"]["list"] if v["name"] == "datasource")["current"]
        assert current["value"] == src["uid"]
    prov = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/skewwatch.yaml").read_text())
    (provider,) = prov["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
