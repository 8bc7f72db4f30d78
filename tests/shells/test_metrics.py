"""The Prometheus exporter on the sidecar's state after simulated faulty traffic (amount in cents)."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from detector import __version__
from detector.core.engine import Engine
from detector.core.outcomes.labels import DELAY_EDGES, N_DELAY
from detector.exporters.prometheus import SkewwatchCollector, exposition
from detector.sim import get_scenario, simulate
from tests.deploy.traffic import SHARES_FAULTY_WORKER, Served, faulty_worker, reference

pytestmark = SHARES_FAULTY_WORKER
PROMTOOL = shutil.which("promtool")
NO_PROMTOOL = "promtool not installed: apt-get update && apt-get install -y prometheus"
UNIT = {"model": "fraud", "kind": "unit_shift", "feature": "amount", "slice": "all", "statistic": "scale_ratio"}


@pytest.fixture(scope="module")
def worker():
    return faulty_worker()


@pytest.fixture(scope="module")
def registry(worker):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SkewwatchCollector(lambda: worker.sidecar.evaluator, worker_getter=lambda: worker))
    return reg


@pytest.fixture(scope="module")
def text(worker):
    return exposition(worker.sidecar.evaluator, worker=worker)


def families(text: bytes) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def promtool_check(text: bytes) -> None:
    if PROMTOOL is None:
        pytest.skip(NO_PROMTOOL)
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b"")


def test_unit_change_shows_in_statistics_and_alerts(registry, worker):
    ratio = registry.get_sample_value("skewwatch_feature_statistic", UNIT)
    assert ratio is not None and ratio > 50  # cents served where training had dollars (~100x)
    assert registry.get_sample_value("skewwatch_feature_statistic_threshold", UNIT) > 1
    alert = {**UNIT, "severity": "critical", "cause": "pipeline_skew", "action": "fix_data"}
    assert registry.get_sample_value("skewwatch_alert_active", alert) == 1.0
    assert registry.get_sample_value("skewwatch_alert_value", alert) > 50
    group = {k: alert[k] for k in ("model", "kind", "severity", "cause", "action")}
    assert registry.get_sample_value("skewwatch_alerts_firing", group) == 1.0
    firing = worker.sidecar.evaluator.alerts.firing("fraud")
    total = sum(s.value for f in registry.collect() if f.name == "skewwatch_alerts_firing" for s in f.samples)
    assert total == len(firing) >= 1


def test_pipeline_counters_come_from_the_worker_engine(registry, worker):
    side = worker.sidecar
    c, agg = side.engine.counters, side.evaluator.counters
    get = registry.get_sample_value
    assert get("skewwatch_events_total", {"model": "fraud", "topic": "predictions"}) == c.predictions > 0
    assert get("skewwatch_events_total", {"model": "", "topic": "labels"}) == c.labels > 0
    assert get("skewwatch_events_total", {"model": "", "topic": "features"}) == c.feature_events > 0
    assert get("skewwatch_invalid_events_total", {"reason": "invalid_json"}) == 1
    assert get("skewwatch_invalid_events_total", {"reason": "missing_field"}) == 1
    assert get("skewwatch_late_events_total") == c.late == 1
    assert get("skewwatch_windows_closed_total") == agg.windows_closed >= 24  # evaluated by the aggregator
    from detector.core.guard import CHECKS

    # every guarded check is exported from the start (0: none raised), so increase() and alerts see the first error
    assert {check: get("skewwatch_check_errors_total", {"check": check}) for check in CHECKS} == dict.fromkeys(CHECKS, 0.0)
    assert get("skewwatch_alert_transitions_total", {"state": "firing"}) == agg.alerts_fired
    assert get("skewwatch_last_event_timestamp_seconds") == c.max_event_ts
    assert get("skewwatch_watermark_lag_seconds") == side.engine.high_water - side.engine.watermark
    assert get("skewwatch_window_length_seconds") == 3600
    assert get("skewwatch_state_bytes", {"model": "fraud"}) > 0
    open_windows = len(side.engine.models["fraud"].windows) + len(side.evaluator.models["fraud"].windows)
    assert get("skewwatch_open_windows", {"model": "fraud"}) == open_windows >= 1
    assert get("skewwatch_build_info", {"version": __version__}) == 1
    for voc in side.engine.models["fraud"].layout.vocabs:
        assert get("skewwatch_slice_overflow_events_total", {"model": "fraud", "dimension": voc.dim}) == voc.overflow
        assert get("skewwatch_slice_values", {"model": "fraud", "dimension": voc.dim}) == len(voc.values)


def test_worker_transport_counters(registry, worker):
    get = registry.get_sample_value
    assert get("skewwatch_dlq_messages_total") == worker.sidecar.dlq_total == 3  # json, incomplete, empty
    assert get("skewwatch_redelivered_messages_total") == worker.sidecar.duplicates == 1
    assert get("skewwatch_checkpoints_total") == 3
    # the worker is shared by every test of this process that reads it (tests/deploy/traffic.py): its
    # last checkpoint was whenever the first of them built it, so set it here, 5 s ago
    worker.last_checkpoint = time.monotonic() - 5.0
    assert 4.0 < get("skewwatch_checkpoint_age_seconds") < 600
    assert get("skewwatch_aggregator_sources") == 1


def test_live_window_shares_are_ratios_and_all_traffic_sums_the_slices(registry, worker):
    ms = worker.sidecar.engine.models["fraud"]
    w = ms.windows[max(ms.windows)]
    events = registry.get_sample_value("skewwatch_window_events", {"model": "fraud", "slice": "all"})
    assert events == w.rates[1 : 1 + ms.layout.top_k + 1, 0].sum() > 0  # row 0 is filled only at close
    for fam in ("skewwatch_feature_missing_ratio", "skewwatch_feature_unseen_ratio", "skewwatch_feature_default_value_ratio",
                "skewwatch_decision_positive_ratio", "skewwatch_fallback_ratio"):
        values = [s.value for f in registry.collect() if f.name == fam for s in f.samples]
        assert values and all(0.0 <= v <= 1.0 for v in values), fam


def _buckets(registry, family, labels):
    return [(s.labels["le"], s.value) for f in registry.collect() if f.name == family for s in f.samples
            if s.name == family + "_bucket" and all(s.labels.get(k) == v for k, v in labels.items())]


def test_latency_and_score_are_cumulative_histograms_per_slice(registry, worker):
    """Every prediction the worker ever folded (windows handed on + open ones) is in the buckets."""
    ms = worker.sidecar.engine.models["fraud"]
    get = registry.get_sample_value
    all_ = {"model": "fraud", "slice": "all"}
    lat = _buckets(registry, "skewwatch_latency_seconds", all_)
    assert [le for le, _ in lat][:4] == ["0.001", "0.001995", "0.005012", "0.01"] and lat[-1][0] == "+Inf"
    counts = [v for _, v in lat]
    assert counts == sorted(counts) and counts[0] < counts[-1]
    with_latency = worker.sidecar.engine.counters.predictions  # the simulator always sends latency_ms
    assert get("skewwatch_latency_seconds_count", all_) == counts[-1] == with_latency
    mean = get("skewwatch_latency_seconds_sum", all_) / counts[-1]
    assert 0.001 < mean < 1.0  # seconds, not milliseconds (the simulator serves ~10-60 ms)
    score = _buckets(registry, "skewwatch_score", all_)
    assert len(score) == min(12, len(ms.layout.score_edges)) + 1 and score[-2][0] == "1.0"  # scores <= 1
    assert get("skewwatch_score_count", all_) == score[-1][1] == with_latency
    assert 0.0 < get("skewwatch_score_sum", all_) / score[-1][1] < 1.0
    # slices add up to all traffic, per dimension
    region = [s for f in registry.collect() if f.name == "skewwatch_score" for s in f.samples
              if s.name == "skewwatch_score_count" and s.labels["slice"].startswith("region=")]
    assert len(region) >= 2 and sum(s.value for s in region) == with_latency


def test_outcome_metrics_come_from_the_outcome_monitor(registry, worker):
    st = worker.sidecar.engine.outcomes.stats("fraud")
    get = registry.get_sample_value
    assert get("skewwatch_label_join_events_total", {"result": "matched"}) == st["labels"]["matched"] > 0
    assert get("skewwatch_labels_pending") == st["labels"]["pending"]
    row = st["slices"][""]
    assert get("skewwatch_calibration_error_ratio", {"model": "fraud", "slice": "all"}) == pytest.approx(row["ece"])
    assert get("skewwatch_brier_score", {"model": "fraud", "slice": "all"}) == pytest.approx(row["brier"])
    assert get("skewwatch_decision_best_threshold", {"model": "fraud", "slice": "all"}) == pytest.approx(row["best_threshold"])
    assert get("skewwatch_label_maturity_seconds", {"model": "fraud"}) == pytest.approx(st["maturity_s"])
    delay = st["delay"]  # lifetime first-label delays: a real Prometheus histogram
    assert get("skewwatch_label_delay_seconds_count", {"model": "fraud"}) == sum(delay["counts"]) > 0
    assert get("skewwatch_label_delay_seconds_sum", {"model": "fraud"}) == pytest.approx(delay["sum"])
    assert DELAY_EDGES[12] == 1000.0  # bins 0..12 hold the delays below 1000 s
    assert get("skewwatch_label_delay_seconds_bucket", {"model": "fraud", "le": "1000.0"}) == sum(delay["counts"][:13])
    parity = st["parity"]["features"]["amount"][""]["mismatch_rate"]
    assert get("skewwatch_feature_parity_mismatch_ratio", {"model": "fraud", "feature": "amount", "slice": "all"}) == parity


def test_label_and_slice_conventions(text):
    fams = families(text)
    for f in fams.values():
        assert f.name.startswith(("skewwatch_", "process_"))
        for s in f.samples:
            assert "type" not in s.labels
            if "slice" in s.labels:
                sl = s.labels["slice"]
                assert sl == "all" or ("=" in sl and "," not in sl), sl
    assert fams["skewwatch_events"].type == "counter"
    assert fams["skewwatch_state_bytes"].type == "gauge"
    assert "process_resident_memory_bytes" in {s.name for f in fams.values() for s in f.samples}


def test_promtool_check_metrics_is_silent(text):
    promtool_check(text)


def test_plain_engine_of_a_replay_exports_the_same_families():
    """``skewwatch replay --metrics-out``: one engine ingests and evaluates (no worker)."""
    eng = Engine(default_reference=reference())
    msgs = [orjson.dumps(ev) for _, t, ev in simulate(get_scenario("stable", rate_per_hour=300, hours=4))
            if t == "predictions"]
    eng.ingest_predictions(msgs)
    eng.advance()
    text = exposition(eng)
    fams = families(text)
    assert {"skewwatch_events", "skewwatch_windows_closed", "skewwatch_feature_statistic", "skewwatch_window_events",
            "skewwatch_open_windows"} <= set(fams)
    assert not any(n.startswith("process_") for n in fams)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SkewwatchCollector(lambda: eng))
    assert reg.get_sample_value("skewwatch_events_total", {"model": "fraud", "topic": "predictions"}) == len(msgs)
    assert reg.get_sample_value("skewwatch_windows_closed_total") == eng.counters.windows_closed >= 2
    promtool_check(text)


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
    promtool_check(text)


def test_resolved_alert_groups_drop_to_zero_instead_of_vanishing(worker):
    agg = worker.sidecar.evaluator
    copy = Engine(agg.settings, agg.references, agg.default_reference)
    copy.restore(agg.snapshot())
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SkewwatchCollector(lambda: copy))
    group = {"model": "fraud", "kind": "unit_shift", "severity": "critical", "cause": "pipeline_skew", "action": "fix_data"}
    assert reg.get_sample_value("skewwatch_alerts_firing", group) == 1.0
    copy.alerts.state.clear()
    assert reg.get_sample_value("skewwatch_alerts_firing", group) == 0.0
    assert reg.get_sample_value("skewwatch_alert_active", {**UNIT, **group}) is None


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_before_the_worker_runs_only_build_info_and_health_are_exported():
    srv = Served(None, phase="starting")  # the server starts before any Kafka I/O
    try:
        status, hdr, body = _get(srv.base + "/metrics")
        assert status == 200 and hdr["Content-Type"].startswith("text/plain; version=0.0.4")
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert "skewwatch_build_info" in names and "skewwatch_kafka_reachable" in names
        assert not {n for n in names if n.startswith(("skewwatch_alert", "skewwatch_feature", "skewwatch_events"))}
        assert _get(srv.base + "/healthz")[0] == 200
        status, _, body = _get(srv.base + "/readyz")  # ready while starting: never gated on the broker
        assert status == 200 and orjson.loads(body)["phase"] == "starting"
        srv.health.phase = "stopping"
        assert _get(srv.base + "/readyz")[0] == 503
        assert _get(srv.base + "/nope")[0] == 404
    finally:
        srv.close()


def test_the_worker_http_server_serves_metrics_probes_and_status(worker):
    srv = Served(worker)
    try:
        status, hdr, body = _get(srv.base + "/metrics")
        assert status == 200 and hdr["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"skewwatch_alert_active{" in body and b"process_cpu_seconds_total" in body
        assert b"skewwatch_kafka_reachable 1.0" in body
        assert orjson.loads(_get(srv.base + "/healthz")[2])["status"] == "ok"
        status, _, body = _get(srv.base + "/readyz")
        assert status == 200 and orjson.loads(body)["ready"] is True
        status, hdr, body = _get(srv.base + "/status")
        assert status == 200 and hdr["Content-Type"].startswith("text/html") and b"amount" in body
        assert orjson.loads(_get(srv.base + "/status?format=json")[2])["health"]["phase"] == "running"
        assert _get(srv.base + "/missing")[0] == 404
    finally:
        srv.close()


def test_only_reference_features_become_label_values():
    """64 unexpected feature names of 5 KB each fold into one bounded series (issue: 2 MB /metrics)."""
    eng = Engine(default_reference=reference())
    hostile = {f"{i:02d}" + "x" * 5000: 1.0 for i in range(64)}
    msgs = [orjson.dumps(ev | {"features": {**ev["features"], **hostile}, "model_version": "v" * 5000})
            for _, t, ev in simulate(get_scenario("stable", rate_per_hour=300, hours=3)) if t == "predictions"]
    eng.ingest_predictions(msgs)
    eng.advance()
    clean = Engine(default_reference=reference())
    clean.ingest_predictions([orjson.dumps(ev) for _, t, ev in simulate(get_scenario("stable", rate_per_hour=300, hours=3))
                              if t == "predictions"])
    clean.advance()
    text, base = exposition(eng), exposition(clean)
    assert len(text) < len(base) + 20_000, (len(text), len(base))  # not + 64 x 5 KB per series
    fams = families(text)
    known = set(reference().features) | {"score", "", "__unexpected__"}
    feats = {s.labels["feature"] for f in fams.values() for s in f.samples if "feature" in s.labels}
    assert feats <= known and "__unexpected__" in feats
    unexpected = [s for s in fams["skewwatch_feature_statistic"].samples if s.labels["feature"] == "__unexpected__"]
    assert len({tuple(sorted(s.labels.items())) for s in unexpected}) == len(unexpected)  # no duplicate series
    active = fams["skewwatch_alert_active"].samples if "skewwatch_alert_active" in fams else []
    assert all(s.value >= 1 for s in active if s.labels["feature"] == "__unexpected__")
    assert all(len(v) <= 120 for f in fams.values() for s in f.samples for v in s.labels.values())
    promtool_check(text)
