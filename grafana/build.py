"""Generate the skewwatch Grafana dashboards (``grafana/dashboards/*.json``).

The JSON files are committed (Grafana provisions them as they are); this script is their source,
so every panel gets the same datasource variable, unit, description and legend conventions.
Run ``python3 grafana/build.py`` after editing; ``tests/deploy`` fails when the files are stale.

Conventions: one ``datasource`` variable (type datasource, Prometheus); ``cluster`` and
``namespace`` variables (the labels kube-prometheus-stack puts on every scraped series; "All"
matches series without them too) scope every query; ``model``, ``feature`` and ``slice`` query
variables read label values from the exporter; every ``rate()`` uses ``$__rate_interval``;
``slice="all"`` is the whole traffic, ``slice="region=eu"`` one slice. Distributions are
Prometheus histograms read with ``histogram_quantile`` (aggregated over replicas first).

The same run packages the dashboards for Kubernetes: ``grafana/kubernetes/dashboards.yaml`` (one
ConfigMap per dashboard with the ``grafana_dashboard: "1"`` label the kube-prometheus-stack
Grafana sidecar loads) and ``deploy/helm/skewwatch/dashboards/`` plus the chart's copy of
``deploy/prometheus/rules.yml`` (a chart can only read files inside itself).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's own package, installed or not
from detector.core.decisions import kinds  # noqa: E402 - after the path above

OUT = HERE / "dashboards"
CONFIGMAPS = HERE / "kubernetes" / "dashboards.yaml"
CHART_COPY = HERE.parent / "deploy" / "helm" / "skewwatch" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39
M = 'model=~"$model"'
MS = 'model=~"$model", slice=~"$slice"'
MFS = 'model=~"$model", feature=~"$feature", slice=~"$slice"'
OUTCOME_KINDS = "|".join(k for k in kinds.KINDS if k in kinds.OUTCOME_KINDS)
SCOPE = 'cluster=~"$cluster", namespace=~"$namespace"'
_METRIC = re.compile(r"\b((?:skewwatch|process)_[a-zA-Z0-9_]+)(\{)?")


def scoped(expr: str) -> str:
    """Add the cluster / namespace matchers to every skewwatch_* / process_* selector of ``expr``.

    >>> scoped('sum(rate(skewwatch_events_total[5m])) / skewwatch_x{model="a"}')
    'sum(rate(skewwatch_events_total{cluster=~"$cluster", namespace=~"$namespace"}[5m])) / skewwatch_x{cluster=~"$cluster", namespace=~"$namespace", model="a"}'
    """
    def add(m: re.Match[str]) -> str:
        return f"{m.group(1)}{{{SCOPE}, " if m.group(2) else f"{m.group(1)}{{{SCOPE}}}"

    return _METRIC.sub(add, expr).replace(", }", "}")


# --------------------------------------------------------------------------- building blocks


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, fmt: str = "time_series") -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": scoped(expr), "legendFormat": legend or "__auto", "refId": ref,
                         "range": not instant, "instant": instant, "editorMode": "code"}
    if fmt != "time_series":
        t["format"] = fmt
    return t


def panel(kind: str, title: str, description: str, unit: str, targets: list[dict[str, Any]], w: int = 12, h: int = 8,
          **extra: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "type": kind, "title": title, "description": description, "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "fieldConfig": {"defaults": {"unit": unit, **extra.pop("defaults", {})}, "overrides": extra.pop("overrides", [])},
        "targets": targets,
    }
    if kind == "timeseries":
        p["fieldConfig"]["defaults"].setdefault("custom", {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0,
                                                           "showPoints": "never", "spanNulls": True})
        p["options"] = {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                                   "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    elif kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "area", "textMode": "auto", "justifyMode": "auto",
                        "orientation": "auto"}
    elif kind == "table":
        p["options"] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"]}}
    p.update(extra)
    return p


def ts(title: str, description: str, unit: str, *targets: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return panel("timeseries", title, description, unit, list(targets), **kw)


def stat(title: str, description: str, unit: str, expr: str, steps: list[tuple[str, float | None]], w: int = 6,
         h: int = 5) -> dict[str, Any]:
    return panel("stat", title, description, unit, [target(expr, instant=True)], w=w, h=h,
                 defaults={"thresholds": {"mode": "absolute",
                                          "steps": [{"color": c, "value": v} for c, v in steps]}})


def threshold_style(regex: str = ".*threshold.*") -> list[dict[str, Any]]:
    """Draw series whose name matches ``regex`` as dashed lines (the alerting thresholds)."""
    return [{"matcher": {"id": "byRegexp", "options": regex},
             "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                            {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]}]


def ratio_max1() -> dict[str, Any]:
    return {"min": 0, "max": 1}


def layout(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flow panels left to right, top to bottom; ids in order."""
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        g = p["gridPos"]
        if p["type"] == "row" and x > 0:
            x, y, row_h = 0, y + row_h, 0
        if x + g["w"] > 24:
            x, y, row_h = 0, y + row_h, 0
        g["x"], g["y"] = x, y
        x += g["w"]
        row_h = max(row_h, g["h"])
        p["id"] = i
    return panels


def row(title: str, repeat: str | None = None) -> dict[str, Any]:
    """A (non-collapsed) row: the panels after it, up to the next row, belong to it; ``repeat`` makes
    one copy of the row and its panels per selected value of that variable."""
    r: dict[str, Any] = {"type": "row", "title": title, "collapsed": False, "panels": [],
                         "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}}
    if repeat:
        r["repeat"] = repeat
    return r


def var_query(name: str, label: str, query: str, multi: bool, include_all: bool, description: str,
              default: str | None = None, hide: int = 0) -> dict[str, Any]:
    v: dict[str, Any] = {
        "name": name, "label": label, "type": "query", "description": description, "datasource": DS,
        "definition": query,
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2, "sort": 1, "multi": multi, "includeAll": include_all, "hide": hide, "regex": "", "options": [],
        "current": {},
    }
    if include_all:
        v["allValue"] = ".*"
    if default is not None:
        v["current"] = {"selected": True, "text": [default] if multi else default, "value": [default] if multi else default}
    return v


def variables(*names: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{
        "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
        "description": "Prometheus that scrapes the skewwatch sidecars", "hide": 0, "refresh": 1, "regex": "",
        "options": [], "current": {"selected": True, "text": "Prometheus (skewwatch)", "value": "skewwatch-prometheus"},
    }]
    out.append(var_query("cluster", "Cluster", "label_values(skewwatch_build_info, cluster)", True, True,
                         "Kubernetes cluster (the `cluster` label, e.g. a Prometheus external label); All also "
                         "matches series without it"))
    out.append(var_query("namespace", "Namespace", 'label_values(skewwatch_build_info{cluster=~"$cluster"}, '
                         "namespace)", True, True, "Kubernetes namespace of the skewwatch pods (set by the "
                         "ServiceMonitor); All also matches series without it"))
    if "model" in names:
        out.append(var_query("model", "Model", f"label_values(skewwatch_open_windows{{{SCOPE}}}, model)", True, True,
                             "Model(s) watched by skewwatch"))
    if "feature" in names:
        out.append(var_query("feature", "Feature", f'label_values(skewwatch_feature_statistic{{{SCOPE}, '
                             'model=~"$model"}, feature)', True, True,
                             "Feature(s) of the reference profile (score = the model score); the per-feature "
                             "rows repeat for each one selected"))
    if "slice" in names:
        out.append(var_query("slice", "Slice", f'label_values(skewwatch_window_events{{{SCOPE}, model=~"$model"}}, '
                             "slice)", True, True, 'Traffic slice: "all" = whole traffic, "region=eu" = one slice row',
                             "all"))
    return out


def dashboard(uid: str, title: str, description: str, panels: list[dict[str, Any]], vars_: list[dict[str, Any]],
              refresh: str = "30s") -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["skewwatch"], "timezone": "",
        "editable": True, "graphTooltip": 1, "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": refresh,
        "time": {"from": "now-24h", "to": "now"}, "timepicker": {}, "fiscalYearStartMonth": 0, "liveNow": False,
        "weekStart": "", "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"title": "skewwatch dashboards", "type": "dashboards", "tags": ["skewwatch"], "asDropdown": True,
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "", "url": ""}],
        "templating": {"list": vars_}, "panels": layout(panels),
    }


def drill_down_links() -> list[dict[str, Any]]:
    """Data links of an incident row: the feature, outcome and serving dashboards for its model,
    feature and slice, keeping the time range, datasource, cluster and namespace."""
    keep = "${datasource:queryparam}&${cluster:queryparam}&${namespace:queryparam}&${__url_time_range}"
    row = "var-model=${__data.fields.model}&var-slice=${__data.fields.slice}"
    return [
        {"title": "Feature drift & skew: ${__data.fields.feature} [${__data.fields.slice}]",
         "url": f"/d/skewwatch-features?{row}&var-feature=${{__data.fields.feature}}&{keep}"},
        {"title": "Outcomes of ${__data.fields.model} [${__data.fields.slice}]",
         "url": f"/d/skewwatch-outcomes?{row}&{keep}"},
        {"title": "Serving & pipeline health of ${__data.fields.model}", "url": f"/d/skewwatch-pipeline?{row}&{keep}"},
    ]


# --------------------------------------------------------------------------- dashboards


def overview() -> dict[str, Any]:
    def action_stat(action: str, title: str, desc: str) -> dict[str, Any]:
        return stat(title, desc, "short", f'sum(skewwatch_alerts_firing{{{M}, action="{action}"}}) or vector(0)',
                    [("green", None), ("orange", 1)])

    alert_by = "model, action, cause, kind, feature, slice, statistic, severity"
    panels = [
        action_stat("fix_data", "Fix data", "Incidents whose lever is the data: training/serving skew, broken "
                    "pipelines, covariate drift, label quality. Route to the feature/data pipeline owners."),
        action_stat("fix_model", "Fix model", "Incidents whose lever is the model: label drift and concept drift "
                    "(recalibrate or retrain)."),
        action_stat("fix_system", "Fix system", "Incidents whose lever is the serving system: decision policy "
                    "(thresholds, decision rate), fallbacks, latency."),
        stat("Critical incidents", "skewwatch incidents firing with severity critical (all actions).", "short",
             f'sum(skewwatch_alerts_firing{{{M}, severity="critical"}}) or vector(0)', [("green", None), ("red", 1)]),
        panel("table", "What is wrong now", "Every incident skewwatch has firing, with the lever to pull (action), "
              "the diagnosed cause, the statistic and its threshold. Click a row to open the feature, outcome or "
              "serving dashboard on its model, feature and slice. The alert event on the skewwatch-alerts topic "
              "carries the evidence and a summary.", "none",
              [target(f"max by ({alert_by}) (skewwatch_alert_value{{{M}}})", ref="A", instant=True, fmt="table"),
               target(f"max by ({alert_by}) (skewwatch_alert_threshold{{{M}}})", ref="B", instant=True, fmt="table"),
               target(f"max by ({alert_by}) (skewwatch_alert_started_timestamp_seconds{{{M}}}) * 1000", ref="C",
                      instant=True, fmt="table")],
              w=24, h=9,
              transformations=[{"id": "merge", "options": {}},
                               {"id": "organize", "options": {"excludeByName": {"Time": True},
                                                              "renameByName": {"Value #A": "value", "Value #B": "threshold",
                                                                               "Value #C": "firing since"},
                                                              "indexByName": {"action": 0, "cause": 1, "kind": 2,
                                                                              "feature": 3, "slice": 4, "severity": 5}}},
                               {"id": "sortBy", "options": {"sort": [{"field": "action"}]}}],
              defaults={"links": drill_down_links()},
              overrides=[{"matcher": {"id": "byName", "options": "firing since"},
                          "properties": [{"id": "unit", "value": "dateTimeAsIso"}]}]),
        ts("Incidents firing by cause", "Number of firing incidents per diagnosed cause (pipeline_skew, "
           "covariate_drift, label_drift, concept_drift, decision_policy, serving_health, label_quality).", "short",
           target(f"sum by (cause) (skewwatch_alerts_firing{{{M}}})", "{{cause}}"),
           defaults={"custom": {"drawStyle": "line", "lineInterpolation": "stepAfter", "fillOpacity": 20,
                                "stacking": {"mode": "normal"}, "showPoints": "never"}}),
        ts("Incidents firing by action and kind", "Firing incidents per lever (fix_data / fix_model / fix_system) "
           "and alert kind.", "short",
           target(f"sum by (action, kind) (skewwatch_alerts_firing{{{M}}})", "{{action}} / {{kind}}"),
           defaults={"custom": {"drawStyle": "line", "lineInterpolation": "stepAfter", "fillOpacity": 0,
                                "showPoints": "never"}}),
        stat("Predictions / s", "Accepted prediction events per second (all watched models).", "cps",
             f'sum(rate(skewwatch_events_total{{{M}, topic="predictions"}}[$__rate_interval]))',
             [("red", None), ("green", 0.001)]),
        stat("Rejected / s", "Events rejected to the dead-letter topic per second (any reason).", "cps",
             "sum(rate(skewwatch_invalid_events_total[$__rate_interval])) or vector(0)",
             [("green", None), ("orange", 0.01)]),
        stat("Newest event age", "Wall-clock time since the event time of the newest accepted prediction: consumer "
             "lag, a stopped producer or a producer clock problem.", "s",
             "time() - max(skewwatch_last_event_timestamp_seconds)", [("green", None), ("orange", 900), ("red", 3600)]),
        stat("Calibration error (all traffic)", "Expected calibration error of the last matured cohort, all "
             "traffic.", "percentunit", f'max(skewwatch_calibration_error_ratio{{{M}, slice="all"}})',
             [("green", None), ("orange", 0.05), ("red", 0.1)]),
        ts("Alert events", "Alert events emitted by skewwatch per second, by state (firing / resolved).", "cps",
           target("sum by (state) (rate(skewwatch_alert_transitions_total[$__rate_interval]))", "{{state}}"), w=24,
           h=6),
    ]
    return dashboard("skewwatch-overview", "skewwatch / Overview: what is wrong now",
                     "Firing incidents grouped by the lever to pull: fix data, fix model, fix system.", panels,
                     variables("model"))


def features() -> dict[str, Any]:
    def stat_vs_threshold(title: str, desc: str, unit: str, stats: str, **kw: Any) -> dict[str, Any]:
        sel = f'{MFS}, statistic=~"{stats}"'
        return ts(title, desc, unit,
                  target(f"max by (feature, slice, statistic) (skewwatch_feature_statistic{{{sel}}})",
                         "{{feature}} {{statistic}} [{{slice}}]", "A"),
                  target(f"max by (feature, statistic) (skewwatch_feature_statistic_threshold{{{sel}}})",
                         "threshold {{feature}} {{statistic}}", "B"),
                  overrides=threshold_style(), **kw)

    panels = [
        panel("table", "Statistics over their threshold", "The 20 feature statistics furthest above their "
              "effect-size threshold in the last closed window (value / threshold > 1 breaches; an alert also needs "
              "statistical significance and persistence).", "none",
              [target(f"topk(20, skewwatch_feature_statistic{{{M}}} / on (model, kind, feature, slice, statistic) "
                      f"skewwatch_feature_statistic_threshold{{{M}}})", instant=True, fmt="table")],
              w=24, h=8, transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True},
                                                                          "renameByName": {"Value": "value / threshold"}}},
                                          {"id": "sortBy", "options": {"sort": [{"field": "value / threshold",
                                                                                 "desc": True}]}}]),
        stat_vs_threshold("Distribution shift (PSI / L-infinity)", "PSI (numeric) and L-infinity (categorical) of "
                          "the feature against training, and against production at the same time of day "
                          "(*_vs_seasonal). 0.2 PSI / 0.15 L-inf are the warning thresholds.", "none",
                          "|".join(kinds.statistics_for_chart("feature_drift", "distribution"))),
        stat_vs_threshold("Unit change (scale ratio vs training)", "Geometric-mean ratio of |x| against training: "
                          "~100 or ~0.01 is cents vs dollars, ~1000 s vs ms.", "none",
                          "|".join(kinds.statistics_for_chart("unit_shift", "scale")),
                          defaults={"custom": {"drawStyle": "line", "showPoints": "never",
                                               "scaleDistribution": {"type": "log", "log": 10}}}),
        ts("Missing values (current window)", "Share of events with the feature missing (null, NaN or key absent) "
           "in the window being filled now.", "percentunit",
           target(f"skewwatch_feature_missing_ratio{{{MFS}}}", "{{feature}} [{{slice}}]"), defaults=ratio_max1()),
        stat_vs_threshold("Missing-rate change vs training", "Missing rate minus the training missing rate, last "
                          "closed window (+5 points warns).", "percentunit", "missing_rate_delta"),
        ts("Unseen categories (current window)", "Share of each categorical feature's values never seen in "
           "training (all categorical features; the feature selector does not apply).", "percentunit",
           target(f"skewwatch_feature_unseen_ratio{{{MS}}}", "{{feature}} [{{slice}}]"), defaults=ratio_max1()),
        ts("Default / fallback value share (current window)", "Share of a numeric feature's values equal to its most "
           "frequent tracked exact value: a spike means a default or fallback value is being served.",
           "percentunit", target(f"skewwatch_feature_default_value_ratio{{{MFS}}}", "{{feature}} [{{slice}}]"),
           defaults=ratio_max1()),
        stat_vs_threshold("Outside the training range", "Share of values outside the training min/max, last "
                          "closed window.", "percentunit", "out_of_range_share"),
        ts("Feature parity: served vs offline", "Share of joined predictions whose served feature value differs from "
           "the offline (training pipeline) value: the most direct training/serving skew signal.", "percentunit",
           target(f"skewwatch_feature_parity_mismatch_ratio{{{MFS}}}", "mismatch {{feature}} [{{slice}}]", "A"),
           target(f"skewwatch_feature_parity_missing_ratio{{{MFS}}}", "one side missing {{feature}} [{{slice}}]", "B"),
           defaults=ratio_max1()),
        ts("Slice values folded into __other__", "Events per second whose slice value was folded into __other__ "
           "because the dimension's top-K was full: raise slice_top_k if it matters.", "cps",
           target(f"sum by (dimension) (rate(skewwatch_slice_overflow_events_total{{{M}}}[$__rate_interval]))",
                  "{{dimension}}")),
        *per_feature(),
    ]
    return dashboard("skewwatch-features", "skewwatch / Feature drift & skew",
                     "Per feature and slice: skew against training, drift against production's own history, "
                     "missing/unseen/default values and served-vs-offline parity, with the alerting thresholds.",
                     panels, variables("model", "feature", "slice"))


def per_feature() -> list[dict[str, Any]]:
    """A row repeated for every selected feature: its statistics, shares and parity side by side."""
    one = 'model=~"$model", feature=~"$feature", slice=~"$slice"'
    return [
        row("Feature: $feature", repeat="feature"),
        ts("$feature: statistics / threshold", "Every statistic tested on this feature in the last closed window, "
           "divided by its threshold: above 1 breaches the effect size (an alert also needs significance and "
           "persistence).", "none",
           target(f"max by (statistic, slice) (skewwatch_feature_statistic{{{one}}} / on (model, kind, feature, slice, "
                  f"statistic) skewwatch_feature_statistic_threshold{{{one}}})", "{{statistic}} [{{slice}}]"),
           w=8, defaults={"custom": {"drawStyle": "line", "showPoints": "never", "thresholdsStyle": {"mode": "dashed"}},
                          "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                       {"color": "red", "value": 1}]}}),
        ts("$feature: missing / unseen / default share (current window)", "Current window: share missing, share "
           "of unseen categories (categorical) and share of the most frequent exact value (numeric).",
           "percentunit",
           target(" or ".join(f'label_replace(skewwatch_feature_{m}_ratio{{{one}}}, "share", "{label}", "", "")'
                              for m, label in (("missing", "missing"), ("unseen", "unseen"),
                                               ("default_value", "top value"))),
                  "{{share}} [{{slice}}]"),
           w=8, defaults=ratio_max1()),
        ts("$feature: served vs offline parity", "Share of joined predictions whose served value differs from the "
           "offline value, and the share missing on one side only.", "percentunit",
           target(f"skewwatch_feature_parity_mismatch_ratio{{{one}}}", "mismatch [{{slice}}]", "A"),
           target(f"skewwatch_feature_parity_missing_ratio{{{one}}}", "one side missing [{{slice}}]", "B"),
           w=8, defaults=ratio_max1()),
    ]


def outcomes() -> dict[str, Any]:
    panels = [
        ts("Calibration error (ECE)", "Expected calibration error of the last matured cohort (10 equal-width score "
           "bins): the score no longer means the probability it claims.", "percentunit",
           target(f"skewwatch_calibration_error_ratio{{{MS}}}", "{{slice}}")),
        ts("Brier score", "Mean squared error of the score against the label, last matured cohort.", "none",
           target(f"skewwatch_brier_score{{{MS}}}", "{{slice}}")),
        ts("Ranking quality (ROC AUC, PR AUC)", "ROC AUC and average precision of the score against matured labels.",
           "percentunit", target(f"skewwatch_roc_auc_ratio{{{MS}}}", "ROC AUC [{{slice}}]", "A"),
           target(f"skewwatch_pr_auc_ratio{{{MS}}}", "PR AUC [{{slice}}]", "B"), defaults=ratio_max1()),
        ts("Precision and recall at the threshold in force", "Of the predictions acted on, the share that were "
           "positive (precision); of the positives, the share acted on (recall).", "percentunit",
           target(f"skewwatch_precision_ratio{{{MS}}}", "precision [{{slice}}]", "A"),
           target(f"skewwatch_recall_ratio{{{MS}}}", "recall [{{slice}}]", "B"), defaults=ratio_max1()),
        ts("Positive label rate", "Share of matured labels that are positive (label drift moves this).",
           "percentunit", target(f"skewwatch_label_positive_ratio{{{MS}}}", "{{slice}}")),
        ts("Threshold in force vs cost-minimising threshold", "Mean decision threshold in force and the threshold "
           "that minimises expected cost for the configured costs and review capacity.", "none",
           target(f"skewwatch_decision_threshold{{{MS}}}", "in force [{{slice}}]", "A"),
           target(f"skewwatch_decision_best_threshold{{{MS}}}", "cost-minimising [{{slice}}]", "B")),
        ts("Expected cost per labelled prediction", "Configured cost of false positives and false negatives per "
           "labelled prediction, at the threshold in force.", "none",
           target(f"skewwatch_expected_cost{{{MS}}}", "{{slice}}")),
        ts("Label delay", "Median and 90th percentile delay from prediction to its first label, over labels that "
           "arrived in the interval (histogram skewwatch_label_delay_seconds, summed over replicas), the lifetime "
           "median, and the label age at which cohorts are evaluated.", "s",
           target(f"histogram_quantile(0.5, sum by (model, le) (rate(skewwatch_label_delay_seconds_bucket{{{M}}}"
                  "[$__rate_interval])))", "p50 {{model}}", "A"),
           target(f"histogram_quantile(0.9, sum by (model, le) (rate(skewwatch_label_delay_seconds_bucket{{{M}}}"
                  "[$__rate_interval])))", "p90 {{model}}", "B"),
           target(f"skewwatch_label_maturity_seconds{{{M}}}", "evaluated at {{model}}", "C"),
           target(f"histogram_quantile(0.5, sum by (model, le) (skewwatch_label_delay_seconds_bucket{{{M}}}))",
                  "lifetime p50 {{model}}", "D")),
        panel("heatmap", "Label delay distribution", "How long labels take to arrive: label events per delay bucket "
              "over time (lifetime histogram skewwatch_label_delay_seconds, all traffic). A shift to the right delays "
              "every outcome check.", "s",
              [target(f"sum by (le) (increase(skewwatch_label_delay_seconds_bucket{{{M}}}[$__rate_interval]))",
                      "{{le}}", fmt="heatmap")],
              options={"calculate": False, "yAxis": {"unit": "s", "axisPlacement": "left"},
                       "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                       "tooltip": {"mode": "single", "yHistogram": True}, "legend": {"show": True},
                       "rowsFrame": {"layout": "auto"}}),
        ts("Label arrival", "Share of a matured cohort's predictions that got a label; share of predictions that "
           "left the label store labelled (coverage); share of labels that found their prediction.", "percentunit",
           target(f"skewwatch_cohort_labelled_ratio{{{MS}}}", "cohort labelled [{{slice}}]", "A"),
           target("skewwatch_label_coverage_ratio", "coverage", "B"),
           target("skewwatch_label_match_ratio", "labels matched", "C"), defaults=ratio_max1()),
        ts("Label join events", "Label events per second by join result: matched, duplicate, correction, expired "
           "(no label within the TTL), evicted, orphan.", "cps",
           target("sum by (result) (rate(skewwatch_label_join_events_total[$__rate_interval]))", "{{result}}")),
        ts("Labels waiting", "Predictions held for their label, and labels held for their prediction.", "short",
           target("skewwatch_labels_pending", "predictions waiting", "A"),
           target("skewwatch_labels_early_held", "labels waiting", "B")),
        ts("Outcome incidents firing", "Firing incidents of the outcome kinds (calibration, performance, label "
           "drift, concept drift, label delay).", "short",
           target(f'sum(skewwatch_alerts_firing{{{M}, kind=~"{OUTCOME_KINDS}"}}) or vector(0)', "incidents")),
        row("Performance estimated before labels"),
        ts("Estimated performance (before labels)", "Accuracy, precision, recall and ROC AUC expected from the scores "
           "of the last closed window, per slice: each score is read through training's calibration map (CBPE). "
           "Valid while a score still means what it meant in training; compare with the realised panels above once "
           "labels mature.", "percentunit",
           target(f"skewwatch_estimated_performance_ratio{{{MS}}}", "{{metric}} [{{slice}}]"), defaults=ratio_max1()),
        ts("Trailing day: estimated vs training", "What the estimated_* performance alert tests: the expectation over "
           "the trailing day (a full daily cycle) against the same estimate on training's score mix at production's "
           "decisions (dashed).", "percentunit",
           target(f"skewwatch_estimated_performance_trailing_day_ratio{{{M}}}", "{{metric}} trailing day", "A"),
           target(f"skewwatch_estimated_performance_reference_ratio{{{M}}}", "{{metric}} training", "B"),
           defaults=ratio_max1(), overrides=threshold_style(".*training.*")),
        ts("Estimate's own error (labels matured)", "Realised minus estimated, for the last window whose labels "
           "matured, and the RMS of that gap in stated errors over recent windows (about 1 when the stated error is "
           "honest; above 1 the stated error is widened). A gap that grows while inputs are stable is the score no "
           "longer meaning the same risk: concept drift, which an estimate cannot see by itself.", "none",
           target(f"skewwatch_estimate_error_ratio{{{M}}}", "realised - estimated {{metric}}", "A"),
           target(f"skewwatch_estimate_error_zscore_rms{{{M}}}", "RMS z {{metric}}", "B")),
        ts("Stated error of the estimates", "Standard error stated with each estimate of the last closed window "
           "(sampling, calibration map, hour-of-day misfit, widened by matured gaps).", "percentunit",
           target(f"skewwatch_estimated_performance_stderr_ratio{{{MS}}}", "{{metric}} [{{slice}}]")),
        *task_panels(),
    ]
    return dashboard("skewwatch-outcomes", "skewwatch / Outcomes: calibration, performance, labels",
                     "Matured-label metrics per slice: calibration, ranking, decisions at the threshold, base rate, "
                     "and how labels arrive (delay, coverage, join results); performance estimated from the scores "
                     "before labels, and the estimate's own error once they mature.", panels, variables("model", "slice"))


def task_panels() -> list[dict[str, Any]]:
    """Rows for regression and multiclass models: realised errors / classes, and the estimates against them."""
    mae = "skewwatch_outcome_mae"
    return [
        row("Regression models: errors (target units)"),
        ts("MAE and RMSE (labels matured)", "Mean absolute and root mean squared error of the last matured cohort, "
           "in the target's own units (e.g. minutes). RMSE well above MAE means a few large misses.", "none",
           target(f"{mae}{{{MS}}}", "MAE [{{slice}}]", "A"), target(f"skewwatch_outcome_rmse{{{MS}}}", "RMSE [{{slice}}]", "B")),
        ts("Bias (prediction − target)", "Mean of prediction minus target over the last matured cohort (target "
           "units): above 0 the model over-predicts, below 0 it under-predicts. A level shift of the target "
           "against the predictions is label drift.", "none", target(f"skewwatch_outcome_bias{{{MS}}}", "{{slice}}")),
        ts("Estimated vs realised error", "Error expected from the inputs and predictions before labels (DLE, last "
           "closed window, all traffic) against the realised error once labels matured (dashed). The realised "
           "series lags by the label maturity; a realised error above the estimate while inputs are stable is "
           "concept drift.", "none",
           target(f'skewwatch_estimated_error{{{M}, slice="all"}}', "estimated {{metric}} {{model}}", "A"),
           target(f'label_replace({mae}{{{M}, slice="all"}}, "metric", "mae", "", "")', "realised {{metric}} {{model}}", "B"),
           target(f'label_replace(skewwatch_outcome_rmse{{{M}, slice="all"}}, "metric", "rmse", "", "")',
                  "realised {{metric}} {{model}}", "C"), overrides=threshold_style(".*realised.*")),
        ts("Estimate's own error: regression", "Realised minus estimated error (target units) of the last window "
           "whose labels matured, and the RMS of that gap in stated errors (about 1 when the stated error is honest).",
           "none", target(f"skewwatch_estimated_error_gap{{{M}}}", "realised - estimated {{metric}} {{model}}", "A"),
           target(f"skewwatch_estimate_error_zscore_rms{{{M}}}", "RMS z {{metric}} {{model}}", "B")),
        row("Multiclass models: classes"),
        ts("Accuracy and macro-F1: estimated vs realised", "Realised accuracy and macro-F1 of the last matured "
           "cohort per slice, and the same expected from the calibrated class scores before labels (CBPE, last "
           "closed window, all traffic; dashed).", "percentunit",
           target(f"skewwatch_accuracy_ratio{{{MS}}}", "accuracy [{{slice}}]", "A"),
           target(f"skewwatch_macro_f1_ratio{{{MS}}}", "macro-F1 [{{slice}}]", "B"),
           target(f'skewwatch_estimated_performance_ratio{{{M}, slice="all", metric=~"accuracy|macro_f1"}}',
                  "estimated {{metric}}", "C"), defaults=ratio_max1(), overrides=threshold_style("estimated.*")),
        ts("Recall per class", "Share of each true class's labelled predictions that the model got right, last "
           "matured cohort. A class whose recall falls alone is where a concept change or a confusion with a "
           "neighbouring class is.", "percentunit",
           target(f"skewwatch_class_recall_ratio{{{MS}}}", "{{class}} [{{slice}}]"), defaults=ratio_max1()),
        ts("Precision per class", "Share of each class's predictions whose label agrees, last matured cohort.",
           "percentunit", target(f"skewwatch_class_precision_ratio{{{MS}}}", "{{class}} [{{slice}}]"),
           defaults=ratio_max1()),
    ]


def pipeline() -> dict[str, Any]:
    panels = [
        ts("Events in", "Accepted events per second by topic (label and feature events are counted before they "
           "are joined to a model).", "cps",
           target("sum by (topic) (rate(skewwatch_events_total[$__rate_interval]))", "{{topic}}")),
        ts("Rejected events (dead-letter) by reason", "Events that could not be decoded or validated, per second "
           "and reason; each one went to the dead-letter topic.", "cps",
           target("sum by (reason) (rate(skewwatch_invalid_events_total[$__rate_interval]))", "{{reason}}")),
        ts("Late events", "Events per second that arrived for a window that had already closed (counted, not "
           "folded in): raise allowed_lateness if this is steady.", "cps",
           target("sum(rate(skewwatch_late_events_total[$__rate_interval]))", "late")),
        ts("Freshness", "Wall-clock age of the newest event time, and the event-time lag of the watermark behind "
           "the newest event.", "s",
           target("time() - max(skewwatch_last_event_timestamp_seconds)", "newest event age", "A"),
           target("max(skewwatch_watermark_lag_seconds)", "watermark lag", "B")),
        ts("Windows closed", "Event-time windows closed and evaluated per second (one per model per window "
           "length when traffic flows).", "cps",
           target("sum(rate(skewwatch_windows_closed_total[$__rate_interval]))", "closed")),
        ts("Check errors", "Windows in which a check raised, by check, per interval: its results for that window "
           "were skipped while the window closed and the other checks ran. Anything above zero is a bug to "
           "report; the worker's error log names the check, the window and the exception.", "short",
           target("sum by (check) (increase(skewwatch_check_errors_total[$__rate_interval]))", "{{check}}")),
        ts("Detector state and memory", "Memory held by open windows' counters per model, and the resident memory "
           "of each skewwatch process (compare with the container limit).", "bytes",
           target(f"skewwatch_state_bytes{{{M}}}", "windows {{model}} {{instance}}", "A"),
           target('process_resident_memory_bytes{job="skewwatch"}', "RSS {{instance}}", "B")),
        ts("Dead-letter and redelivered messages", "Messages per second sent to the dead-letter topic (invalid, "
           "empty or oversized) and messages skipped as redeliveries already covered by a checkpoint.", "cps",
           target("sum by (instance) (rate(skewwatch_dlq_messages_total[$__rate_interval]))", "dead-letter {{instance}}",
                  "A"),
           target("sum by (instance) (rate(skewwatch_redelivered_messages_total[$__rate_interval]))",
                  "redelivered {{instance}}", "B")),
        ts("Checkpoint age", "Seconds since each worker last wrote its state (offsets are committed after each "
           "checkpoint), and how many workers the aggregator hears from.", "s",
           target("skewwatch_checkpoint_age_seconds", "age {{instance}}", "A"),
           target("max(skewwatch_aggregator_sources)", "workers reporting", "B"),
           overrides=[{"matcher": {"id": "byName", "options": "workers reporting"},
                       "properties": [{"id": "unit", "value": "short"},
                                      {"id": "custom.axisPlacement", "value": "right"}]}]),
        ts("Decision rate (current window)", "Share of decided predictions that were acted on (not approve / "
           "no action), in the window being filled now.", "percentunit",
           target(f"skewwatch_decision_positive_ratio{{{MS}}}", "{{slice}}"), defaults=ratio_max1()),
        ts("Fallback rate (current window)", "Share of predictions served by a fallback instead of the model.",
           "percentunit", target(f"skewwatch_fallback_ratio{{{MS}}}", "{{slice}}"), defaults=ratio_max1()),
        ts("Serving latency p50 / p95", "Quantiles of latency_ms reported by the model service over the interval "
           "(histogram skewwatch_latency_seconds, summed over replicas).", "s",
           target(f"histogram_quantile(0.95, sum by (slice, le) (rate(skewwatch_latency_seconds_bucket{{{MS}}}"
                  "[$__rate_interval])))", "p95 [{{slice}}]", "A"),
           target(f"histogram_quantile(0.5, sum by (slice, le) (rate(skewwatch_latency_seconds_bucket{{{MS}}}"
                  "[$__rate_interval])))", "p50 [{{slice}}]", "B")),
        ts("Score quantiles", "10th, 50th and 90th percentile of the model score over the interval (histogram "
           "skewwatch_score, summed over replicas), and the mean score of the current window.", "none",
           target(f"histogram_quantile(0.1, sum by (slice, le) (rate(skewwatch_score_bucket{{{MS}}}"
                  "[$__rate_interval])))", "p10 [{{slice}}]", "A"),
           target(f"histogram_quantile(0.5, sum by (slice, le) (rate(skewwatch_score_bucket{{{MS}}}"
                  "[$__rate_interval])))", "p50 [{{slice}}]", "B"),
           target(f"histogram_quantile(0.9, sum by (slice, le) (rate(skewwatch_score_bucket{{{MS}}}"
                  "[$__rate_interval])))", "p90 [{{slice}}]", "C"),
           target(f"skewwatch_score_mean{{{MS}}}", "mean, current window [{{slice}}]", "D"), defaults=ratio_max1()),
        ts("Serving statistics vs their baseline", "Last closed window: decision-rate change and fallback rate vs "
           "production at the same time of day, p95 latency ratio, threshold in force; dashed = threshold.",
           "none",
           target(f"skewwatch_model_statistic{{{MS}}}", "{{statistic}} [{{slice}}]", "A"),
           target(f"skewwatch_model_statistic_threshold{{{MS}}}", "threshold {{statistic}} [{{slice}}]", "B"),
           overrides=threshold_style()),
        ts("Score drift", "PSI of the score distribution against training and against the same hour in "
           "production.", "none",
           target(f'skewwatch_feature_statistic{{{MS}, feature="score", statistic=~"psi|psi_vs_seasonal"}}',
                  "{{statistic}} [{{slice}}]")),
        ts("Predictions by model version", "Prediction events per second per model_version (a new version "
           "appearing explains many shifts).", "cps",
           target(f"sum by (model, model_version) (rate(skewwatch_model_version_predictions_total{{{M}}}"
                  "[$__rate_interval]))", "{{model}} {{model_version}}")),
        panel("table", "skewwatch build", "Version of each running skewwatch sidecar.", "none",
              [target("skewwatch_build_info", instant=True, fmt="table")], w=12, h=6,
              transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}]),
    ]
    return dashboard("skewwatch-pipeline", "skewwatch / Serving & pipeline health",
                     "Is skewwatch seeing the traffic (events in, rejects, lateness, freshness) and is the model "
                     "service healthy (decision rate, fallbacks, latency, score)?", panels,
                     variables("model", "slice"))


DASHBOARDS = {"overview.json": overview, "features.json": features, "outcomes.json": outcomes,
              "pipeline.json": pipeline}


def render() -> dict[str, str]:
    """Dashboard file name -> JSON text."""
    return {name: json.dumps(build(), indent=2, sort_keys=False) + "\n" for name, build in DASHBOARDS.items()}


class _Literal(str):
    """A multi-line string dumped as a YAML literal block (readable JSON inside the ConfigMap)."""


yaml.SafeDumper.add_representer(_Literal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|"))


def configmaps(rendered: dict[str, str]) -> str:
    """The dashboards as ConfigMaps for the kube-prometheus-stack Grafana sidecar (label grafana_dashboard)."""
    docs = ["# Generated by grafana/build.py: the skewwatch dashboards as ConfigMaps for the Grafana dashboard\n"
            "# sidecar of kube-prometheus-stack (it loads ConfigMaps labelled grafana_dashboard: \"1\").\n"
            "# kubectl apply -n monitoring -f grafana/kubernetes/dashboards.yaml"]
    for name, text in rendered.items():
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": f"skewwatch-dashboard-{name.removesuffix('.json')}",
                           "labels": {"grafana_dashboard": "1", "app.kubernetes.io/name": "skewwatch",
                                      "app.kubernetes.io/component": "dashboards"},
                           "annotations": {"grafana_folder": "skewwatch"}},
              "data": {f"skewwatch-{name}": _Literal(text)}}
        docs.append(yaml.safe_dump(cm, sort_keys=False, width=1_000_000))
    return "\n---\n".join(docs)


def outputs() -> dict[Path, str]:
    """Every generated file and its text."""
    rendered = render()
    out: dict[Path, str] = {OUT / name: text for name, text in rendered.items()}
    out.update({CHART_COPY / name: text for name, text in rendered.items()})
    out[CONFIGMAPS] = configmaps(rendered)
    out[CHART_COPY.parent / "files" / "rules.yml"] = (HERE.parent / "deploy" / "prometheus" / "rules.yml").read_text()
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    stale = []
    for path, text in outputs().items():
        if "--check" in args:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(HERE.parent)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale generated files: {', '.join(stale)}; run python3 grafana/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
