"""Shared helpers: the dashboards, the alert rules and the PromQL inside them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
PROMETHEUS_SYNTHETIC = {"up"}  # series Prometheus itself writes for every target
NO_PROMETHEUS = "prometheus not installed: apt-get update && apt-get install -y prometheus"
_NAME = re.compile(r"\b(?:skewwatch|process)_[a-zA-Z0-9_]+\b|\bup\b")


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows are containers: their collapsed children are yielded)."""
    for p in dash["panels"]:
        if p["type"] != "row":
            yield p
        yield from p.get("panels", [])  # collapsed rows


def panel_queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every target of every panel."""
    for name, d in dashboards().items():
        for p in panels(d):
            for t in p.get("targets", []):
                yield name, p["title"], t["expr"]


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (skewwatch_*, process_* and Prometheus' own ``up``)."""
    no_strings = re.sub(r'"[^"]*"', '""', expr)
    no_by = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", no_strings)
    return set(_NAME.findall(no_by))


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana variables -> concrete values (``$__rate_interval`` -> 1m)."""
    out = expr.replace("$__rate_interval", "1m")
    for k, v in values.items():
        out = out.replace("${" + k + "}", v).replace("$" + k, v)
    return out


@lru_cache(maxsize=1)
def exported_names() -> frozenset[str]:
    """Every sample name the exporter emits for the faulty-traffic engine and the task models' (with _total, _bucket, ...)."""
    from prometheus_client.parser import text_string_to_metric_families

    from detector.exporters.prometheus import exposition
    from tests.deploy.traffic import faulty_worker, task_worker

    w, t = faulty_worker(), task_worker()  # a binary model's families, and a regression and a multiclass model's
    text = (exposition(w.sidecar.evaluator, worker=w).decode() + exposition(t.sidecar.evaluator, worker=t).decode()
            + _health_exposition())
    return frozenset(s.name for f in text_string_to_metric_families(text) for s in f.samples)


def _health_exposition() -> str:
    """What the sidecar's web server adds to the exporter: process health (detector.kafka.health)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from detector.kafka.health import Health, HealthCollector

    h = Health()
    h.kafka.ok()
    h.kafka.failed("unreachable", "refused")
    reg = CollectorRegistry(auto_describe=False)
    reg.register(HealthCollector(h))
    return generate_latest(reg).decode()
