"""``skewwatch bench`` through the console script: the JSON a user gets (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_reports_floor_stages_state_and_an_end_to_end_replay(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "detector", "bench", "--events", "3000", "--runs", "2", "--batch", "1000",
                        "--replay-events", "3000", "--replay-days", "2", "--no-whylogs", "--quiet", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d == json.loads(r.stdout)
    assert d["events_per_s_median"] > 0 and len(d["events_per_s_runs"]) == 2
    assert d["orjson_loads_events_per_s_median"] > 0
    assert d["ratio_to_orjson_loads"] == round(d["events_per_s_median"] / d["orjson_loads_events_per_s_median"], 3)
    assert len(d["ratio_to_orjson_loads_runs"]) == 2 and d["ratio_to_orjson_loads_median_of_runs"] > 0
    assert d["events_per_cpu_s_median"] > 0 and d["orjson_loads_events_per_cpu_s_median"] > 0  # per CPU second too
    assert len(d["ratio_to_orjson_loads_cpu_runs"]) == 2 and d["ratio_to_orjson_loads_cpu_median_of_runs"] > 0
    assert d["whylogs"] == {"available": False, "why": "--no-whylogs"} and d["ratio_to_whylogs"] is None
    assert d["ratio_to_whylogs_cpu_runs"] is None and d["ratio_to_whylogs_cpu_median_of_runs"] is None
    assert set(d["stages_us_per_event"]) == {"orjson_loads_us", "columnar_decode_us", "typed_decode_us", "typed_columns_us",
                                             "fold_us", "close_us"}
    assert d["columnar_share"] == 1.0  # clean events: all of them read as columns
    st = d["state"]["bench"]
    assert st["features_incl_score"] == 26 and st["slice_rows"] == 34 and st["window_bytes_per_feature_row"] > 0
    rp = d["replay"]
    assert rp["log"]["predictions"] == 3000 and rp["log"]["labels"] == 3000 and rp["log"]["days"] == 2
    assert rp["accepted"] == {"predictions": 3000, "labels": 3000, "feature_events": rp["log"]["features"]}
    assert rp["invalid"] == 0 and rp["windows_closed"] >= 47 and rp["events_per_s"] > 0
    rss = rp["rss"]
    assert rss["max_mb"] >= rss["start_mb"] > 0
    for q in (25, 50, 75, 100):  # RSS and the Python heap at each quarter of the windows
        assert rss["max_mb"] >= rss[f"at_{q}pct_windows_mb"] > 0 and rss[f"python_blocks_k_at_{q}pct"] > 0
    for k in ("second_half_slope_mb_per_100_windows", "last_quarter_slope_mb_per_100_windows",
              "last_quarter_slope_python_blocks_k_per_100_windows"):
        assert k in rss and (rss[k] is None or isinstance(rss[k], float))


def test_bench_rejects_tiny_runs():
    r = subprocess.run([sys.executable, "-m", "detector", "bench", "--events", "10"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "--events must be >= 1000" in r.stderr


def test_bench_kafka_reports_every_variant_through_the_embedded_broker(tmp_path):
    """``skewwatch bench --kafka`` end to end on a small run: the fields the issue names, every
    variant measured, the worker's restore time given apart (its count starts once restored)."""
    out = tmp_path / "kafka.json"
    r = subprocess.run([sys.executable, "-m", "detector", "bench", "--kafka", "--events", "1000", "--runs", "1", "--quiet",
                        "--out", str(out)], capture_output=True, text=True, timeout=900)
    if r.returncode == 1 and "error:" in r.stderr and "broker" in r.stderr.lower():
        import pytest

        pytest.skip(f"no embedded broker here: {r.stderr.strip()[-200:]}")
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d == json.loads(r.stdout)
    assert d["events"] == 1000 and d["envelope_events"] == 100 and d["runs"] == 1
    s, e = d["single"], d["envelope"]
    for v in (s["faust_msgs_per_s"], s["faust_take_batches_msgs_per_s"], s["skewwatch_msgs_per_s"], s["aiokafka_msgs_per_s"],
              s["core_events_per_s"], e["aiokafka_events_per_s"], e["faust_events_per_s"], e["faust_take_batches_events_per_s"],
              e["skewwatch_events_per_s"], e["core_events_per_s"]):
        assert v["median_per_s"] > 0 and len(v["runs_per_s"]) == 1 and v["cpu_us_median"] > 0
        if v is not s["core_events_per_s"] and v is not e["core_events_per_s"] and sys.platform == "linux":
            assert v["broker_cpu_s_median"] >= 0  # the broker's CPU over the variant (it shares the core)
    for v in (s["skewwatch_msgs_per_s"], e["skewwatch_events_per_s"]):
        assert v["restore_s_median"] >= 0  # the worker's restore, not in its rate
    assert "restore_s_median" not in s["faust_msgs_per_s"]
    assert s["ratio"]["median_per_run"] > 0 and s["ratio"]["cpu_ratio_median"] > 0 and s["target_ratio"] == 0.85
    # the ratio's denominator is the bare Faust agent; the one taking our batches is a separate figure
    assert s["ratio"]["median_of_medians"] == round(s["skewwatch_msgs_per_s"]["median_per_s"]
                                                    / s["faust_msgs_per_s"]["median_per_s"], 3)
    assert s["ratio_vs_take_batches"]["median_per_run"] > 0
    assert e["ratio"]["median_per_run"] > 0 and e["target_events_per_s"] == 100_000
    assert set(s["core_stages_us_per_event"]) >= {"orjson_loads_us", "columnar_decode_us", "fold_us", "close_us"}
