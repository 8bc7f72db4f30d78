"""Tests of the traffic simulator: determinism, contract validity, seasonality, labels, and that
every fault changes what it should and nothing else (compared event by event with the clean
``stable`` run of the same seed, which shares every random number the fault does not touch)."""

from __future__ import annotations

import csv
import gc
import gzip
import math
import time
from collections import Counter
from datetime import datetime
from functools import lru_cache

import numpy as np
import orjson
import pytest

from detector.core.decisions import kinds
from detector.core.decisions.kinds import ALL_KINDS
from detector.sim import (
    KINDS,
    Fault,
    Scenario,
    batch_bytes,
    get_scenario,
    list_scenarios,
    main,
    simulate,
    training_rows,
    write_jsonl,
    write_training,
)
from detector.sim.features import SLICE_DIMS
from detector.sim.scenarios import END_H, ONSET_H
from detector.sim.stream import hex_ids, iter_chunks, offline_dicts, prediction_dicts

RATE = 1500.0
ALERT_KINDS, CAUSES, ACTIONS = ALL_KINDS, set(kinds.CAUSES), set(kinds.ACTIONS)


# --------------------------------------------------------------------------- helpers


def _ts(v) -> float:
    if isinstance(v, int | float):
        return float(v)
    assert isinstance(v, str) and v.endswith("Z") and len(v) == 24, v
    return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()


def feats_ok(fs) -> bool:
    """A flat object of numbers (finite), strings and nulls."""
    return isinstance(fs, dict) and all(
        v is None or isinstance(v, str) or (isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v))
        for v in fs.values())


def check_event(topic: str, ev: dict) -> None:
    """Assert that an event follows the README's event contract."""
    assert isinstance(ev["prediction_id"], str) and len(ev["prediction_id"]) == 16
    _ts(ev["ts"])
    if topic == "predictions":
        assert set(ev) <= {"prediction_id", "model", "model_version", "ts", "features", "score", "decision",
                           "threshold", "slices", "latency_ms", "fallback", "override"}
        assert ev["model"] == "fraud" and isinstance(ev["model_version"], str)
        assert feats_ok(ev["features"])
        assert isinstance(ev["score"], float) and 0.0 <= ev["score"] <= 1.0
        assert round(ev["score"], 4) == ev["score"]
        assert ev["decision"] in ("approve", "review")
        assert isinstance(ev["threshold"], float) and 0 < ev["threshold"] < 1
        assert (ev["decision"] == "review") == (ev["score"] >= ev["threshold"] and not ev["fallback"])
        assert set(ev["slices"]) == set(SLICE_DIMS)
        assert all(ev["slices"][d] in vals for d, vals in SLICE_DIMS.items())
        assert isinstance(ev["latency_ms"], float) and ev["latency_ms"] >= 0
        assert isinstance(ev["fallback"], bool)
        if "override" in ev:
            assert ev["decision"] == "review" and ev["override"] == "approved_manually"
        h = ev["features"].get("hour_of_day")
        assert h is None or (isinstance(h, int) and 0 <= h <= 23)
    elif topic == "labels":
        assert set(ev) <= {"prediction_id", "ts", "label", "revision"}
        assert ev["label"] in (0, 1) and isinstance(ev["label"], int)
        assert ev.get("revision", 2) == 2
    elif topic == "features":
        assert set(ev) == {"prediction_id", "ts", "features", "source"} and ev["source"] == "offline"
        assert feats_ok(ev["features"])
    else:
        raise AssertionError(topic)


@lru_cache(maxsize=64)
def window(name: str, h0: float, h1: float, rate: float = RATE, seed: int = 0):
    """(chunks, prediction dicts, offline dicts by id) for hours [h0, h1) of a named scenario."""
    sc = get_scenario(name, seed=seed, rate_per_hour=rate)
    chunks = list(iter_chunks(sc, hours=(h0, h1)))
    preds, offline = [], {}
    for ch in chunks:
        pids = hex_ids(ch.ids)
        preds += prediction_dicts(ch, sc, "rfc3339", pids)
        offline.update({e["prediction_id"]: e for e in offline_dicts(ch, sc, "rfc3339", pids)[1]})
    return chunks, preds, offline


def col(preds: list[dict], name: str) -> np.ndarray:
    return np.array([np.nan if (v := p["features"].get(name)) is None else v for p in preds], dtype=np.float64)


def cat_col(preds: list[dict], name: str) -> list:
    return [p["features"].get(name) for p in preds]


def auc(score: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(score, kind="stable")
    s = score[order]
    ranks = np.empty(len(s))
    # average ranks over ties
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def during(name: str):
    """The full-effect fault window (after any ramp) of a single-fault scenario, and stable's."""
    ramp = get_scenario(name).faults[0].ramp_h or 0.0
    h0 = math.ceil(ONSET_H + ramp)
    return window(name, h0, END_H), window("stable", h0, END_H)


def same_except(faulty: list[dict], clean: list[dict], features: tuple[str, ...] = (),
                fields: tuple[str, ...] = ()) -> None:
    """Events are identical to the clean run except the named features / top-level fields."""
    assert len(faulty) == len(clean)
    for a, b in zip(faulty, clean, strict=True):
        fa = {k: v for k, v in a["features"].items() if k not in features}
        fb = {k: v for k, v in b["features"].items() if k not in features}
        assert fa == fb
        for k in set(a) | set(b):
            if k != "features" and k not in fields:
                assert a.get(k) == b.get(k), k


# --------------------------------------------------------------------------- determinism & contract


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    sc = get_scenario("demo", rate_per_hour=120)
    a = write_jsonl(sc, tmp_path / "a", seed=3, gzip_predictions=True)
    b = write_jsonl(sc, tmp_path / "b", seed=3, gzip_predictions=True)
    c = write_jsonl(sc, tmp_path / "c", seed=4, gzip_predictions=True)
    for name in ("predictions.jsonl.gz", "labels.jsonl", "features.jsonl", "ground_truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "labels.jsonl").read_bytes() != (tmp_path / "c" / "labels.jsonl").read_bytes()
    assert a["counts"] == b["counts"] and a["counts"]["predictions"] > 5000
    lines = gzip.decompress((tmp_path / "a" / "predictions.jsonl.gz").read_bytes()).splitlines()
    assert len(lines) == a["counts"]["predictions"]
    assert c["counts"]["predictions"] != a["counts"]["predictions"]


def test_every_event_valid_and_stream_time_ordered():
    sc = get_scenario("demo", rate_per_hour=150)  # every demo fault, including the new/renamed keys
    last = -math.inf
    seen = Counter()
    pred_ts: dict[str, float] = {}
    for ts, topic, ev in simulate(sc):
        assert ts >= last
        last = ts
        assert abs(_ts(ev["ts"]) - ts) < 1e-6
        check_event(topic, ev)
        seen[topic] += 1
        if topic == "predictions":
            pred_ts[ev["prediction_id"]] = ts
        else:
            assert ev["prediction_id"] in pred_ts  # labels and offline features follow their prediction
            assert ts >= pred_ts[ev["prediction_id"]]
    assert seen["predictions"] > 10_000 and seen["labels"] > 0.85 * seen["predictions"]
    assert 0.08 < seen["features"] / seen["predictions"] < 0.12
    assert len(pred_ts) == seen["predictions"]  # unique ids


def test_epoch_timestamps_option():
    sc = get_scenario("stable", rate_per_hour=100, hours=3).with_(ts_format="epoch")
    evs = list(simulate(sc))
    assert evs and all(isinstance(e["ts"], float) and e["ts"] == ts for ts, _, e in evs)


def test_world_shapes_base_rate_and_model_quality():
    chunks, preds, _ = window("stable", 0, 48, rate=1200)
    y = np.concatenate([c.y for c in chunks])
    score = np.array([p["score"] for p in preds])
    assert 0.03 <= y.mean() <= 0.05
    assert abs(score.mean() - y.mean()) < 0.01  # calibrated-ish
    assert auc(score, y) > 0.8
    amount = col(preds, "amount")
    assert np.all(np.round(amount, 2) == amount) and 20 < np.median(amount) < 80
    assert np.mean(col(preds, "n_tx_24h") == 0) > 0.3
    age = col(preds, "account_age_days")
    assert age.min() >= 0 and age.max() <= 3650
    for ratio in ("ip_risk_score", "utilization_ratio", "chargeback_rate_90d", "address_match_score"):
        x = col(preds, ratio)
        assert np.nanmin(x) >= 0 and np.nanmax(x) <= 1
    assert 10 <= len(set(cat_col(preds, "country"))) <= 17
    assert {"ios", "android", "web"} <= set(cat_col(preds, "device"))
    assert 0.001 < np.mean([p["fallback"] for p in preds]) < 0.004
    assert 12 < np.median([p["latency_ms"] for p in preds]) < 18
    # slices correlated with features: point-of-sale purchases are smaller
    pos = np.array([p["slices"]["channel"] == "pos" for p in preds])
    assert np.median(amount[pos]) < 0.8 * np.median(amount[~pos])


def test_hour_of_day_is_local_time_of_the_timestamp():
    _, preds, _ = window("stable", 0, 30, rate=200)
    for p in preds:
        local = (int(_ts(p["ts"]) // 3600) - 5) % 24
        assert p["features"]["hour_of_day"] == local


def test_seasonality_in_hourly_volume_and_features():
    chunks, preds, _ = window("stable", 0, 72, rate=2000)
    counts = np.array([c.n for c in chunks]).reshape(3, 24).mean(axis=0)  # by local hour (start = 00:00)
    assert counts.max() / counts.min() > 2.5
    assert 17 <= int(np.argmax(counts)) <= 22 and 2 <= int(np.argmin(counts)) <= 7
    hour = col(preds, "hour_of_day")
    amount = col(preds, "amount")
    evening, morning = (hour >= 18) & (hour <= 22), (hour >= 6) & (hour <= 10)
    assert 1.1 < np.median(amount[evening]) / np.median(amount[morning]) < 1.6
    app = np.array([p["slices"]["channel"] == "mobile_app" for p in preds])
    assert app[evening].mean() > app[morning].mean() + 0.05
    # the weekend is quieter: Saturday vs Monday of a week-long run
    week = get_scenario("stable", rate_per_hour=300, hours=7 * 24)
    daily = [sum(c.n for c in iter_chunks(week, hours=(d * 24, d * 24 + 24))) for d in (0, 5)]
    assert 0.7 < daily[1] / daily[0] < 0.9


def test_labels_arrive_late_some_missing_duplicated_corrected():
    sc = get_scenario("stable", rate_per_hour=1500, hours=60)
    pred_ts, truth = {}, {}
    labels: dict[str, list] = {}
    for ts, topic, ev in simulate(sc):
        if topic == "predictions":
            pred_ts[ev["prediction_id"]] = ts
        elif topic == "labels":
            labels.setdefault(ev["prediction_id"], []).append((ts, ev["label"], ev.get("revision")))
    for ch in iter_chunks(sc):
        truth.update(zip(hex_ids(ch.ids), ch.y.tolist(), strict=True))
    t_first = min(pred_ts.values())
    early = {pid for pid, t in pred_ts.items() if t < t_first + 24 * 3600}
    delays = [labels[p][0][0] - pred_ts[p] for p in early if p in labels]
    assert 1.6 * 3600 < np.median(delays) < 2.4 * 3600 and min(delays) >= 1.0
    assert 0.93 < len(delays) / len(early) < 0.97  # ~5% never arrive
    multi = [v for p, v in labels.items() if p in early and len(v) > 1]
    dups = [v for v in multi if all(r is None for _, _, r in v)]
    revs = [v for v in multi if any(r == 2 for _, _, r in v)]
    assert 0.005 < len(dups) / len(early) < 0.015
    assert 0.002 < len(revs) / len(early) < 0.009
    for v in revs:  # the correction comes later and holds the true label; the first was wrong
        first, corr = v[0], [x for x in v if x[2] == 2][0]
        assert corr[0] > first[0] and corr[1] != first[1]
    assert all(v[-1][1] == truth[p] for p, v in labels.items() if any(r == 2 for _, _, r in v))


def test_offline_features_equal_served_without_faults():
    _, preds, offline = window("stable", 10, 14, rate=3000)
    by_id = {p["prediction_id"]: p for p in preds}
    assert 0.08 < len(offline) / len(preds) < 0.12
    for pid, ev in offline.items():
        served = by_id[pid]["features"]
        assert ev["ts"] == by_id[pid]["ts"]
        assert served.keys() == ev["features"].keys()
        for k, v in ev["features"].items():
            w = served[k]
            assert v == w or (isinstance(v, float) and abs(v - w) <= 1e-9 * max(1.0, abs(v)))


# --------------------------------------------------------------------------- faults


def test_faults_leave_traffic_identical_before_onset_and_after_end():
    _, clean_before, _ = window("stable", ONSET_H - 2, ONSET_H)
    _, clean_after, _ = window("stable", END_H, END_H + 2)
    for name in KINDS:
        _, before, _ = window(name, ONSET_H - 2, ONSET_H)
        _, after, _ = window(name, END_H, END_H + 2)
        assert before == clean_before, name
        assert after == clean_after, name


def test_unit_change_multiplies_the_median_by_100_and_nothing_else():
    (chunks, preds, offline), (cchunks, clean, _) = during("unit_change")
    ratio = np.median(col(preds, "amount")) / np.median(col(clean, "amount"))
    assert 95 < ratio < 105
    same_except(preds, clean, ("amount",), ("score", "decision", "override"))
    assert all(ev["features"]["amount"] * 100 == pytest.approx(next(p for p in preds if p["prediction_id"] == pid)
                                                                ["features"]["amount"]) for pid, ev in list(offline.items())[:50])
    assert np.array_equal(np.concatenate([c.y for c in chunks]), np.concatenate([c.y for c in cchunks]))


@pytest.mark.parametrize("name,feature,share", [("missing_jump", "ip_risk_score", 0.4),
                                                 ("default_spike", "account_age_days", 0.3)])
def test_missing_and_default_spikes(name, feature, share):
    (_, preds, _), (_, clean, _) = during(name)
    x, x0 = col(preds, feature), col(clean, feature)
    if name == "missing_jump":
        assert np.isnan(x0).mean() < 0.02
        assert abs(np.isnan(x).mean() - share - np.isnan(x0).mean() * (1 - share)) < 0.02
    else:
        assert np.mean(x0 == 0) < 0.01 and abs(np.mean(x == 0) - share) < 0.02
    same_except(preds, clean, (feature,), ("score", "decision", "override"))


def test_new_and_renamed_categories():
    (_, preds, _), (_, clean, _) = during("new_category")
    dev = Counter(cat_col(preds, "device"))
    assert abs(dev["harmonyos"] / len(preds) - 0.2) < 0.02
    same_except(preds, clean, ("device",), ("score", "decision", "override"))
    (_, preds, _), (_, clean, _) = during("renamed_category")
    c1, c0 = Counter(cat_col(preds, "country")), Counter(cat_col(clean, "country"))
    assert c1["DE"] == 0 and c1["GER"] == c0["DE"] > 100
    assert all(c1[k] == v for k, v in c0.items() if k != "DE")
    same_except(preds, clean, ("country",), ("score", "decision", "override"))


def test_join_failure_nulls_a_group_together():
    (_, preds, _), (_, clean, _) = during("join_failure")
    group = Fault("join_failure", 1).features
    assert len(group) == 4
    nulls = np.stack([np.isnan(col(preds, f)) for f in group])
    assert abs(nulls.all(axis=0).mean() - 0.3) < 0.02
    assert (nulls.any(axis=0) == nulls.all(axis=0)).mean() > 0.995  # together (+ rare natural nulls)
    same_except(preds, clean, group, ("score", "decision", "override"))


def test_covariate_and_slice_drift_change_the_world():
    (chunks, preds, offline), (_, clean, _) = during("covariate_drift")
    for f in ("amount", "distance_from_home_km"):
        assert np.nanmedian(col(preds, f)) / np.nanmedian(col(clean, f)) > 2.0
    same_except(preds, clean, ("amount", "distance_from_home_km"), ("score", "decision", "override"))
    # a world change: the offline pipeline sees the drifted values as well
    by_id = {p["prediction_id"]: p for p in preds}
    assert all(ev["features"]["amount"] == by_id[pid]["features"]["amount"] for pid, ev in offline.items())
    # gradual: the effect ramps up over hours
    ramp = [np.median(col(window("covariate_drift", h, h + 1)[1], "amount")) for h in (40, 43, 46)]
    assert ramp[0] < ramp[1] < ramp[2]

    (_, preds, _), (_, clean, _) = during("slice_drift")
    eu = np.array([p["slices"]["region"] == "eu" for p in preds])
    a, a0 = col(preds, "amount"), col(clean, "amount")
    assert np.median(a[eu]) / np.median(a0[eu]) > 3.0
    assert np.array_equal(a[~eu], a0[~eu])
    assert np.median(a) / np.median(a0) < 1.6  # diluted in the total: needs slicing to see


def test_timezone_shift_moves_hour_of_day_by_the_utc_offset():
    (_, preds, _), (_, clean, _) = during("timezone_shift")
    assert all(p["features"]["hour_of_day"] == (c["features"]["hour_of_day"] + 5) % 24
               for p, c in zip(preds, clean, strict=True))
    same_except(preds, clean, ("hour_of_day",), ("score", "decision", "override"))


def test_model_side_faults():
    (chunks, preds, _), (cchunks, clean, _) = during("score_drift")
    s, s0 = (np.clip([p["score"] for p in e if not p["fallback"]], 1e-4, 1 - 1e-4) for e in (preds, clean))
    lift = np.median(np.log(s / (1 - s))) - np.median(np.log(s0 / (1 - s0)))
    assert 1.0 < lift < 1.4
    same_except(preds, clean, (), ("score", "decision", "override"))

    (_, preds, _), (_, clean, _) = during("threshold_change")
    assert {p["threshold"] for p in preds} == {0.3} and {p["threshold"] for p in clean} == {0.5}
    rate, rate0 = (np.mean([p["decision"] == "review" for p in e]) for e in (preds, clean))
    assert rate > 1.5 * rate0
    same_except(preds, clean, (), ("threshold", "decision", "override"))

    (_, preds, _), (_, clean, _) = during("fallback_surge")
    fb = np.array([p["fallback"] for p in preds])
    assert abs(fb.mean() - 0.25) < 0.02
    assert all(p["score"] == 0.05 and p["decision"] == "approve" for p in preds if p["fallback"])
    same_except(preds, clean, (), ("fallback", "score", "decision", "override"))

    (_, preds, _), (_, clean, _) = during("latency_spike")
    lat, lat0 = (np.median([p["latency_ms"] for p in e]) for e in (preds, clean))
    assert 4.5 < lat / lat0 < 5.5
    same_except(preds, clean, (), ("latency_ms",))


def test_label_drift_doubles_the_base_rate_with_stable_inputs():
    (chunks, preds, _), (cchunks, clean, _) = during("label_drift")
    y, y0 = np.concatenate([c.y for c in chunks]), np.concatenate([c.y for c in cchunks])
    assert 1.7 < y.mean() / y0.mean() < 2.3
    same_except(preds, clean)  # inputs, scores, decisions: all unchanged
    for f in ("amount", "n_tx_24h", "account_age_days", "ip_risk_score"):
        assert np.nanmean(col(preds, f)) == pytest.approx(np.nanmean(col(clean, f)), rel=0.05)


def test_concept_drift_keeps_inputs_and_base_rate_but_breaks_the_model():
    (chunks, preds, _), (cchunks, clean, _) = during("concept_drift")
    y, y0 = np.concatenate([c.y for c in chunks]), np.concatenate([c.y for c in cchunks])
    assert 0.8 < y.mean() / y0.mean() < 1.2
    same_except(preds, clean)
    score = np.array([p["score"] for p in preds])
    assert auc(score, y0) > 0.8
    assert auc(score, y) < auc(score, y0) - 0.2


def test_label_delay_increase_only_delays_labels():
    (chunks, preds, _), (cchunks, clean, _) = during("label_delay_increase")
    same_except(preds, clean)

    def first_delays(chs):
        out = []
        for c in chs:
            first = c.label_rev == 0
            order = np.lexsort((c.label_ms[first], c.label_row[first]))
            rows, ms = c.label_row[first][order], c.label_ms[first][order]
            keep = np.r_[True, rows[1:] != rows[:-1]]
            out.append((ms[keep] - c.t_ms[rows[keep]]) / 1000.0)
        return np.concatenate(out)

    assert 4.5 < np.median(first_delays(chunks)) / np.median(first_delays(cchunks)) < 5.5
    assert np.array_equal(np.concatenate([c.y for c in chunks]), np.concatenate([c.y for c in cchunks]))


def test_parity_skew_served_differs_from_offline_while_distribution_looks_normal():
    (_, preds, offline), (_, clean, coffline) = during("parity_skew")
    by_id = {p["prediction_id"]: p for p in preds}
    diff = np.mean([ev["features"]["n_tx_24h"] != by_id[pid]["features"]["n_tx_24h"] for pid, ev in offline.items()])
    assert diff > 0.25
    assert coffline == offline  # the offline pipeline is untouched
    assert np.mean(col(preds, "n_tx_24h")) == pytest.approx(np.mean(col(clean, "n_tx_24h")), rel=0.05)
    (_, before, _) = window("parity_skew", ONSET_H - 8, ONSET_H)
    assert np.mean(col(preds, "n_tx_24h")) == pytest.approx(np.mean(col(before, "n_tx_24h")), rel=0.1)
    same_except(preds, clean, ("n_tx_24h",), ("score", "decision", "override"))


def test_feature_absent_and_unexpected_feature():
    (_, preds, offline), (_, clean, _) = during("feature_absent")
    assert all("device_trust_score" not in p["features"] for p in preds)
    assert all("device_trust_score" in ev["features"] for ev in offline.values())
    same_except(preds, clean, ("device_trust_score",), ("score", "decision", "override"))
    (_, preds, _), (_, clean, _) = during("unexpected_feature")
    assert all(p["features"]["promo_code_used"] in (0, 1) for p in preds)
    same_except(preds, clean, ("promo_code_used",))


def test_fault_validation():
    with pytest.raises(ValueError, match="unknown"):
        Fault("meteor", 1)
    with pytest.raises(ValueError, match="slice"):
        Fault("slice_drift", 1, slice={"region": "mars"})
    with pytest.raises(ValueError, match="params"):
        Fault("unit_change", 1, params={"factr": 10})
    with pytest.raises(ValueError, match="not in this world"):
        list(simulate(Scenario("x", faults=(Fault("missing_jump", 0, feature="nope"),), hours=1)))


# --------------------------------------------------------------------------- registry & ground truth


def test_registry_and_ground_truth():
    names = list_scenarios()
    assert names[0] == "stable" and names[-1] == "demo" and set(KINDS) <= set(names)
    assert get_scenario("stable").hours >= 72 and not get_scenario("stable").ground_truth()
    for name in names:
        sc = get_scenario(name)
        for gt in sc.ground_truth():
            assert gt["kind"] in ALERT_KINDS and gt["cause"] in CAUSES and gt["action"] in ACTIONS
            assert set(gt["also"]) <= ALERT_KINDS
            assert gt["onset_ts"] - sc.start_ms / 1000 >= 36 * 3600
            assert gt["end_ts"] is not None and gt["end_ts"] < sc.end_ms / 1000  # every incident ends
            assert isinstance(gt["slice"], dict)
            assert gt["feature"] is None or gt["feature"] in gt["features"]
    demo = get_scenario("demo").ground_truth()
    assert len(demo) >= 5
    assert all(a["end_ts"] <= b["onset_ts"] for a, b in zip(demo, demo[1:], strict=False))
    assert get_scenario("slice_drift").ground_truth()[0]["slice"] == {"region": "eu"}
    start = datetime.fromisoformat("2027-01-04T05:00:00+00:00")
    moved = get_scenario("unit_change", seed=7, rate_per_hour=99, start=start)
    assert moved.seed == 7 and moved.world.rate_per_hour == 99
    assert moved.ground_truth()[0]["onset"] == "2027-01-05T21:00:00.000Z"
    with pytest.raises(ValueError, match="unknown scenario"):
        get_scenario("nope")


# --------------------------------------------------------------------------- training data, files, CLI


def test_training_rows_span_weeks_with_seasonality(tmp_path):
    rows = training_rows(30_000, seed=5)
    assert rows == training_rows(30_000, seed=5)
    ts = np.array([_ts(r["ts"]) for r in rows])
    assert np.all(np.diff(ts) >= 0) and (ts.max() - ts.min()) > 3 * 7 * 86400
    assert ts.max() < get_scenario("stable").start_ms / 1000
    assert 0.03 <= np.mean([r["label"] for r in rows]) <= 0.05
    hours = Counter(r["hour_of_day"] for r in rows)
    assert max(hours.values()) / min(hours.values()) > 2.5
    assert {"region", "channel", "tier", "label", "score", "amount", "country"} <= set(rows[0])
    path = write_training(tmp_path / "train.csv", 2_000, seed=5)
    with open(path, newline="") as f:
        read = list(csv.DictReader(f))
    assert len(read) == 2_000 and list(read[0]) == list(rows[0])
    assert read[0]["amount"] == str(training_rows(2_000, seed=5)[0]["amount"])
    jl = write_training(tmp_path / "train.jsonl.gz", 500, seed=5)
    assert len(gzip.decompress(jl.read_bytes()).splitlines()) == 500


def test_batch_bytes_messages():
    sc = get_scenario("stable", rate_per_hour=500, hours=3)
    batches = batch_bytes(sc, n_events=1000, batch_size=250)
    assert len(batches) == 4 and all(len(orjson.loads(b)) == 250 for b in batches)
    single = batch_bytes(sc, n_events=10, batch_size=1, keyed=True)
    assert len(single) == 10 and orjson.loads(single[0][1])["prediction_id"].encode() == single[0][0]
    labels = batch_bytes(sc, topic="labels", batch_size=0)
    assert labels and all("label" in orjson.loads(m) for m in labels)


def test_cli_main(tmp_path, capsys):
    assert main(["--scenario", "unit_change", "--out", str(tmp_path), "--seed", "2", "--hours", "4",
                 "--rate", "300", "--training-rows", "1000"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["counts"]["predictions"] > 500
    for f in ("predictions.jsonl", "labels.jsonl", "features.jsonl", "training.csv", "ground_truth.json"):
        assert (tmp_path / f).stat().st_size > 0
    assert orjson.loads((tmp_path / "ground_truth.json").read_bytes())[0]["kind"] == "unit_shift"
    assert main(["--scenario", "nope", "--out", str(tmp_path)]) == 2
    assert main(["--scenario", "stable"]) == 2


# --------------------------------------------------------------------------- throughput


def test_generation_throughput_is_measured():
    sc = get_scenario("stable", rate_per_hour=60_000, hours=6)
    window.cache_clear()  # drop other tests' cached events: measure generation, not their GC cost
    gc.collect()
    list(simulate(get_scenario("stable", rate_per_hour=100, hours=1)))  # warm caches
    t = time.perf_counter()
    n = sum(1 for _ in simulate(sc, topics=("predictions",)))
    dt = time.perf_counter() - t
    t = time.perf_counter()
    n_all = sum(1 for _ in simulate(sc))
    dt_all = time.perf_counter() - t
    t = time.perf_counter()
    msgs = batch_bytes(sc, batch_size=500)
    dt_bytes = time.perf_counter() - t
    print(f"\nsimulator throughput: {n / dt:,.0f} prediction events/s (predictions only, {n:,} events); "
          f"{n_all / dt_all:,.0f} events/s all topics ({n_all:,} events); "
          f"{n / dt_bytes:,.0f} prediction events/s as orjson batches ({len(msgs)} messages)")
    assert n > 100_000
