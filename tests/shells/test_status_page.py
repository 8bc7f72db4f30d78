"""The status page (``/status`` of the Kafka worker; ``skewwatch report --status-out``).

It must say, without Grafana, what is firing and why — kind, feature, slice, severity, cause ->
action, summary, since when — chart every drifted feature against training, show pipeline
health, refresh itself, and render in a real browser.
"""

from __future__ import annotations

import os

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.inputs.timeparse import parse_timestamps
from detector.core.settings import DetectorSettings
from detector.kafka.local import LocalGroup
from detector.web.status import feature_distribution, render_status
from tests.shells.test_report import (
    CHROMIUM,
    NO_CHROMIUM,
    assert_self_contained,
    check_screenshot,
    config,
    faulty,
    messages,
    parse,
    reference,
    screenshot_and_dom,
)


@pytest.fixture(scope="module")
def status_html() -> str:
    eng, alerts, _ = faulty()
    return render_status(eng, recent=alerts[-50:])


def test_refreshes_every_10_seconds_and_is_self_contained(status_html):
    dom = parse(status_html)
    meta = [m for m in dom.find_all("meta") if m.attrs.get("http-equiv") == "refresh"]
    assert meta and meta[0].attrs["content"] == "10"
    assert_self_contained(status_html)


def test_every_firing_alert_is_explained(status_html):
    eng, _, _ = faulty()
    firing = eng.alerts.firing("fraud")
    dom = parse(status_html)
    section = dom.find("section", id="model-fraud")
    rows = section.find("table", cls="alerts").find_all("tr", cls="alert")
    assert len(rows) == len(firing) >= 4
    text = section.text()
    for a in firing:
        assert a["summary"] in text
        assert a["kind"] in text
    unit = next(r for r in rows if "unit_shift" in r.text())
    cells = [td.text() for td in unit.find_all("td")]
    assert cells[0] == "critical" and cells[2] == "amount" and cells[3] == "all traffic"
    assert "scale_ratio" in cells[4] and "threshold 8" in cells[4]
    assert cells[5].startswith("pipeline skew") and "fix data" in cells[5]
    assert cells[7].startswith("2026-") and "ago" in cells[7]
    renamed = next(r for r in rows if "unseen_categories" in r.text())
    assert "country" in renamed.text() and "GER" in renamed.text()
    assert "incident(s) firing" in dom.find("div", cls="verdict").text()


def test_one_chart_per_drifted_feature(status_html):
    dom = parse(status_html)
    charts = dom.find("section", id="model-fraud").find_all("div", cls="chart")
    titles = [c.find("h3").text() for c in charts]
    assert "amount · all traffic" in titles and "country · all traffic" in titles and "score · all traffic" in titles
    for c in charts:
        svg = c.find("svg", cls="chart-bars")
        cur = [float(r.attrs["height"]) for r in svg.find_all("rect", cls="cur")]
        ref = [float(r.attrs["height"]) for r in svg.find_all("rect", cls="ref")]
        assert len(cur) == len(ref) >= 3 and sum(cur) > 0 and sum(ref) > 0


def test_pipeline_health_and_recent_events(status_html):
    eng, alerts, _ = faulty()
    dom = parse(status_html)
    pipe = dom.find("section", id="pipeline").text()
    assert f"{eng.counters.predictions:,}" in pipe and "windows closed" in pipe and "label match rate" in pipe
    recent = dom.find("section", id="recent").find("table", cls="recent").find_all("tr")
    assert len(recent) == min(len(alerts), 25) + 1


def test_distribution_of_the_last_closed_window_matches_its_counts():
    eng, _, _ = faulty()
    ms = eng.models["fraud"]
    d = feature_distribution(ms, "amount", {})
    assert d is not None and d.n == ms.last_window.events
    assert abs(sum(d.cur) - 1) < 1e-9 and abs(sum(d.ref) - 1) < 1e-6
    assert d.cur[d.labels.index(next(lab for lab in d.labels if lab.startswith(">")))] > 0.5  # cents: above max
    assert feature_distribution(ms, "no_such_feature", {}) is None
    assert feature_distribution(ms, "amount", {"region": "never-seen"}) is None


def test_empty_engine_is_all_clear():
    html = render_status(Engine(DetectorSettings(), default_reference=reference()), recent=[])
    dom = parse(html)
    assert "All clear" in dom.find("div", cls="verdict").text()
    assert "No model has sent predictions yet" in dom.text()
    assert "No alert events yet" in dom.text()


def test_kafka_worker_topology_aggregator_plus_worker_engine():
    """The worker serves the aggregator (windows, alerts) with its worker engine's ingest counters."""
    g = LocalGroup(config(), {"fraud": reference()}, None, partitions=1)
    preds = [raw for topic, raw in messages() if topic == "predictions"][:8000]  # ~27 h: cents from hour 24
    hours = (parse_timestamps([orjson.loads(p)["ts"] for p in preds]) // 3600).astype(int)
    for h in np.unique(hours):  # one batch per window, as live traffic arrives
        g.feed("predictions", 0, [preds[i] for i in np.flatnonzero(hours == h)])
        g.checkpoint()
    recent = [a.to_dict() for a in g.alerts]
    assert any(a["kind"] == "unit_shift" for a in recent)
    side = g.sidecars["w0"]
    dom = parse(render_status(side.evaluator, recent=recent, ingest=side.engine))
    assert "amount · all traffic" in [h.text() for h in dom.find_all("h3")]
    assert f"{len(preds):,}" in dom.find("section", id="pipeline").text()


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=NO_CHROMIUM)
def test_status_page_renders_in_headless_chromium(status_html, tmp_path):
    eng, _, _ = faulty()
    page = tmp_path / "status.html"
    page.write_text(status_html, encoding="utf-8")
    text = parse(screenshot_and_dom(page, tmp_path / "status.png")).text()
    check_screenshot(tmp_path / "status.png")
    assert "incident(s) firing" in text
    for a in eng.alerts.firing():
        assert a["summary"] in text, a["summary"]
