"""The Prometheus exporter on an engine fed with simulated faulty traffic (amount in cents)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from detector import __version__
from detector.core.engine import Engine
from detector.core.labels import DELAY_EDGES, N_DELAY
from detector.shells.metrics import MetricsEndpoint, SkewwatchCollector, exposition, serve
from tests.deploy.traffic import faulty_engine, reference

PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool not installed: apt-get update && apt-get install -y prometheus"


@pytest.fixture(scope="module")
def engine():
    return faulty_engine()


@pytest.fixture(scope="module")
def registry(engine):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SkewwatchCollector(lambda: engine))
    return reg


@pytest.fixture(scope="module")
def text(engine):
    return exposition(engine)


def families(text: bytes) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def test_unit_change_shows_in_statistics_and_alerts(registry, engine):
    labels = {"model": "fraud", "kind": "unit_shift", "feature": "amount", "slice": "all", "statistic": "scale_ratio"}
    ratio = registry.get_sample_value("skewwatch_feature_statistic", labels)
    assert ratio is not None and ratio > 50  # cents served where training had dollars (~100x)
    assert registry.get_sample_value("skewwatch_feature_statistic_threshold", labels) > 1
    alert = {**labels, "severity": "critical", "cause": "pipeline_skew", "action": "fix_data"}
    assert registry.get_sample_value("skewwatch_alert_active", alert) == 1.0
    assert registry.get_sample_value("skewwatch_alert_value", alert) > 50
    group = {k: alert[k] for k in ("model", "kind", "severity", "cause", "action")}
    assert registry.get_sample_value("skewwatch_alerts_firing", group) == 1.0
    firing = engine.alerts.firing("fraud")
    total = sum(s.value for f in registry.collect() if f.name == "skewwatch_alerts_firing" for s in f.samples)
    assert total == len(firing)


def test_pipeline_counters_match_the_engine(registry, engine):
    c = engine.counters
    get = registry.get_sample_value
    assert get("skewwatch_events_total", {"model": "fraud", "topic": "predictions"}) == c.predictions > 0
    assert get("skewwatch_events_total", {"model": "", "topic": "labels"}) == c.labels > 0
    assert get("skewwatch_events_total", {"model": "", "topic": "features"}) == c.feature_events > 0
    assert get("skewwatch_invalid_events_total", {"reason": "invalid_json"}) == 1
    assert get("skewwatch_invalid_events_total", {"reason": "missing_field"}) == 1
    assert get("skewwatch_late_events_total") == c.late == 1
    assert get("skewwatch_windows_closed_total") == c.windows_closed > 0
    assert get("skewwatch_alert_transitions_total", {"state": "firing"}) == c.alerts_fired
    assert get("skewwatch_last_event_timestamp_seconds") == c.max_event_ts
    assert get("skewwatch_watermark_lag_seconds") == engine.high_water - engine.watermark
    assert get("skewwatch_window_length_seconds") == 3600
    assert get("skewwatch_state_bytes", {"model": "fraud"}) > 0
    assert get("skewwatch_open_windows", {"model": "fraud"}) == len(engine.models["fraud"].windows) >= 1
    assert get("skewwatch_build_info", {"version": __version__}) == 1
    for voc in engine.models["fraud"].layout.vocabs:
        assert get("skewwatch_slice_overflow_events_total", {"model": "fraud", "dimension": voc.dim}) == voc.overflow
        assert get("skewwatch_slice_values", {"model": "fraud", "dimension": voc.dim}) == len(voc.values)


def test_live_window_shares_are_ratios_and_all_traffic_sums_the_slices(registry, engine):
    ms = engine.models["fraud"]
    w = ms.windows[max(ms.windows)]
    events = registry.get_sample_value("skewwatch_window_events", {"model": "fraud", "slice": "all"})
    assert events == w.rates[1 : 1 + ms.layout.top_k + 1, 0].sum() > 0  # row 0 is filled only at close
    for fam in ("skewwatch_feature_missing_ratio", "skewwatch_feature_unseen_ratio", "skewwatch_feature_default_value_ratio",
                "skewwatch_decision_positive_ratio", "skewwatch_fallback_ratio"):
        values = [s.value for f in registry.collect() if f.name == fam for s in f.samples]
        assert values and all(0.0 <= v <= 1.0 for v in values), fam
    p95 = registry.get_sample_value("skewwatch_latency_p95_seconds", {"model": "fraud", "slice": "all"})
    assert 0.0005 < p95 < 5.0  # seconds, not milliseconds


def test_outcome_metrics_come_from_the_outcome_monitor(registry, engine):
    st = engine.outcomes.stats("fraud")
    get = registry.get_sample_value
    assert get("skewwatch_label_join_events_total", {"result": "matched"}) == st["labels"]["matched"] > 0
    assert get("skewwatch_labels_pending") == st["labels"]["pending"]
    row = st["slices"][""]
    assert get("skewwatch_calibration_error_ratio", {"model": "fraud", "slice": "all"}) == pytest.approx(row["ece"])
    assert get("skewwatch_brier_score", {"model": "fraud", "slice": "all"}) == pytest.approx(row["brier"])
    assert get("skewwatch_label_maturity_seconds", {"model": "fraud"}) == pytest.approx(st["maturity_s"])
    parity = st["parity"]["features"]["amount"][""]["mismatch_rate"]
    assert get("skewwatch_feature_parity_mismatch_ratio", {"model": "fraud", "feature": "amount", "slice": "all"}) == parity


def test_label_and_slice_conventions(text):
    fams = families(text)
    for f in fams.values():
        assert f.name.startswith("skewwatch_")
        for s in f.samples:
            assert "type" not in s.labels
            if "slice" in s.labels:
                sl = s.labels["slice"]
                assert sl == "all" or ("=" in sl and "," not in sl), sl
    assert fams["skewwatch_events"].type == "counter"
    assert fams["skewwatch_state_bytes"].type == "gauge"


def test_promtool_check_metrics_is_silent(text):
    if PROMTOOL is None:
        pytest.skip(NO_PROMTOOL)
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


class _Stats:
    """An outcome monitor whose stats carry a cumulative label-delay histogram."""

    def __init__(self, counts):
        self.counts = counts

    def stats(self, model):
        return {"labels": {"matched": 10, "delay": {"counts": self.counts, "sum": 12345.0}}, "slices": {}}


def test_label_delay_histogram_is_a_real_histogram():
    counts = np.zeros(N_DELAY)
    counts[[0, 5, 12, N_DELAY - 1]] = [1, 2, 3, 4]
    eng = Engine(default_reference=reference())
    eng.ingest_predictions([b'{"prediction_id": "a", "model": "fraud", "ts": 1795615200, "features": {}}'])
    eng.outcomes = _Stats(counts.tolist())
    text = exposition(eng)
    h = families(text)["skewwatch_label_delay_seconds"]
    assert h.type == "histogram"
    buckets = [(s.labels["le"], s.value) for s in h.samples if s.name.endswith("_bucket")]
    assert len(buckets) == len(DELAY_EDGES) + 1 and buckets[-1] == ("+Inf", 10.0)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert [s.value for s in h.samples if s.name.endswith("_sum")] == [12345.0]
    if PROMTOOL is not None:
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30)
        assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def test_resolved_alert_groups_drop_to_zero_instead_of_vanishing(engine):
    copy = Engine(engine.settings, default_reference=engine.default_reference)
    copy.restore(engine.snapshot())
    coll = SkewwatchCollector(lambda: copy)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(coll)
    group = {"model": "fraud", "kind": "unit_shift", "severity": "critical", "cause": "pipeline_skew", "action": "fix_data"}
    assert reg.get_sample_value("skewwatch_alerts_firing", group) == 1.0
    copy.alerts.state.clear()
    assert reg.get_sample_value("skewwatch_alerts_firing", group) == 0.0
    assert reg.get_sample_value("skewwatch_alert_active", {**group, "feature": "amount", "slice": "all",
                                                           "statistic": "scale_ratio"}) is None


def test_no_engine_yet_exports_build_info_only_and_is_not_ready():
    ep = MetricsEndpoint(lambda: None)
    r = ep.handle("/metrics")
    assert r.status == 200 and r.content_type.startswith("text/plain")
    assert [f.name for f in text_string_to_metric_families(r.body.decode())] == ["skewwatch_build_info"]
    assert ep.handle("/healthz").status == 200
    assert ep.handle("/readyz").status == 503
    assert ep.handle("/nope").status == 404


def test_http_server_serves_metrics_probes_and_extra_routes(engine):
    srv = serve(lambda: engine, "127.0.0.1", 0, extra_routes={"/status": lambda: b"fine\n"})
    try:
        base = f"http://127.0.0.1:{srv.port}"
        with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert b'skewwatch_alert_active{' in r.read()
        req = urllib.request.Request(base + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            assert r.read().rstrip().endswith(b"# EOF")
        for path, body in (("/healthz", b"ok\n"), ("/readyz", b"ready\n"), ("/status", b"fine\n")):
            with urllib.request.urlopen(base + path, timeout=10) as r:
                assert (r.status, r.read()) == (200, body)
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(base + "/missing", timeout=10)
        assert exc.value.code == 404
    finally:
        srv.close()
