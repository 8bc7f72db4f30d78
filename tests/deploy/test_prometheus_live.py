"""A real Prometheus scrapes the exporter (faulty traffic of a binary model, and a worker watching a
regression and a multiclass model), evaluates the alert rules, and answers every dashboard query with
at least one series."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest
import yaml

from tests.deploy.promql import NO_PROMETHEUS, RULES, panel_queries, rules, substitute
from tests.deploy.traffic import SHARES_FAULTY_WORKER, Served, faulty_worker, task_worker

pytestmark = SHARES_FAULTY_WORKER
PROMETHEUS = shutil.which("prometheus")
VALUES = {"model": "fraud|eta|intent", "feature": "amount", "slice": "all", "datasource": "skewwatch-prometheus",
          "cluster": ".*", "namespace": ".*"}  # "All": also matches series without the label


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


class Prom:
    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, expr: str) -> list[Any]:
        out = _get(f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert out["status"] == "success", out
        return out["data"]["result"]


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip(NO_PROMETHEUS)
    srvs = [Served(faulty_worker()), Served(task_worker())]  # the server a worker really serves
    tmp = tmp_path_factory.mktemp("prometheus")
    rules = yaml.safe_load(RULES.read_text())
    for g in rules["groups"]:
        g["interval"] = "500ms"  # evaluate at once instead of every 30 s
    (tmp / "rules.yml").write_text(yaml.safe_dump(rules))
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        # a scrape may take ~0.3 s on a loaded machine: the timeout (capped at the interval) leaves room
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "500ms"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [{"job_name": "skewwatch", "static_configs": [{"targets": [f"127.0.0.1:{s.port}" for s in srvs]}]}],
    }))
    port = _free_port()
    log = open(tmp / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], stdout=log, stderr=log)
    p = Prom(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:  # ready, and at least 2 scrapes in (rate() needs two samples)
            try:
                r = p.query("count_over_time(skewwatch_build_info[1m])")
                if len(r) == len(srvs) and min(float(x["value"][1]) for x in r) >= 2:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not scrape twice: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.25)
        yield p
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        for srv in srvs:
            srv.close()


def test_the_target_is_up_and_scraped_as_job_skewwatch(prom):
    r = prom.query('up{job="skewwatch"}')
    assert [float(x["value"][1]) for x in r] == [1.0, 1.0]


def test_every_dashboard_query_returns_series(prom):
    failures = []
    n = 0
    for dash, title, expr in panel_queries():
        n += 1
        q = substitute(expr, VALUES)
        assert "$" not in q, (dash, title, q)
        if not prom.query(q):
            failures.append((dash, title, q))
    if failures:  # a scrape that missed its timeout on a loaded machine leaves stale series: two more scrapes
        time.sleep(5)
        failures = [f for f in failures if not prom.query(f[2])]
    failures = [f"{d} / {t}: {q}" for d, t, q in failures]
    assert n >= 40
    assert not failures, "queries without data:\n" + "\n".join(failures)


def test_rules_load_evaluate_and_the_detected_unit_change_goes_pending(prom):
    deadline = time.monotonic() + 15
    while True:
        groups = _get(f"{prom.base}/api/v1/rules")["data"]["groups"]
        loaded = [r for g in groups for r in g["rules"]]
        if loaded and all(r["health"] == "ok" for r in loaded) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert len(loaded) == len(rules())
    assert [r["name"] for r in loaded if r["health"] != "ok"] == [], [r.get("lastError") for r in loaded]
    active = [a for r in loaded for a in r.get("alerts", [])]
    fix_data = [a["labels"] for a in active if a["labels"]["alertname"] == "SkewwatchFixData"]
    assert {"kind": "unit_shift", "feature": "amount", "slice": "all", "severity": "critical"}.items() <= \
        next(lab for lab in fix_data if lab["kind"] == "unit_shift").items()
    assert not [a for a in active if a["labels"].get("component") == "skewwatch" and a["state"] == "firing"]
