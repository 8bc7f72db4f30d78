"""Adoption and workflow: override counts in the windows, override and capacity checks, the rules baseline."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.config import Config, ModelConfig
from detector.core.checks.adoption import BC, attach_adoption, baseline_stats, diagnose, metrics_of
from detector.core.engine import Engine
from detector.core.inputs.events import PredictionDecoder
from detector.core.inputs.window import MAX_REASONS, RATE
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from tests.engine_replay import replay_log

T0 = 1795564800.0  # 2026-11-25T00:00:00Z
H = 3600.0
REGIONS = ["eu", "us", "apac"]


def reference():
    rng = np.random.default_rng(0)
    n = 5000
    return build_reference({"x": rng.normal(size=n), "region": np.array(rng.choice(REGIONS, n), dtype=object),
                            "score": rng.random(n)}, score_column="score", slice_columns=["region"])


def stream(hours: int, per_hour=1200, seed: int = 1, override=lambda h, region: 0.15, flag_share=lambda h: 0.2,
           reason=lambda h: "approved_manually", baseline=False) -> list[bytes]:
    """Predictions where ``flag_share(h)`` are flagged ("review") and ``override(h, region)`` of those overridden;
    ``per_hour`` is a number or a function of the hour."""
    rng = np.random.default_rng(seed)
    out = []
    for h in range(hours):
        per_hour_h = per_hour(h) if callable(per_hour) else per_hour
        ts = T0 + h * H + np.sort(rng.random(per_hour_h)) * H
        for i in range(per_hour_h):
            region = str(rng.choice(REGIONS))
            flag = rng.random() < flag_share(h)
            e = {"prediction_id": f"{seed}-{h}-{i}", "model": "m", "ts": float(ts[i]), "features": {"x": float(rng.normal())},
                 "score": float(rng.random()), "decision": "review" if flag else "approve", "slices": {"region": region}}
            if flag and rng.random() < override(h, region):
                e["override"] = reason(h)
            if baseline:
                e["baseline_decision"] = "review" if rng.random() < 0.5 else "approve"
            out.append(orjson.dumps(e))
    return out


def run(eng: Engine, msgs: list[bytes], chunk: int = 600) -> list[dict]:
    return replay_log(eng, msgs, chunk).dicts()


def settings() -> DetectorSettings:
    return DetectorSettings(seasonality="none", seasonal_min_days=0.25)


# --------------------------------------------------------------------------- decoding and window counts
def test_baseline_decision_is_decoded_like_a_decision_and_survives_take():
    ms = Engine(default_reference=reference())._model("m", [])
    dec = PredictionDecoder(ms.layout.schema, ["approve"])
    evs = [{"prediction_id": str(i), "model": "m", "ts": T0, "features": {"x": 0.0}, "baseline_decision": d}
           for i, d in enumerate(["review", "APPROVE", None, True, {"odd": 1}])]
    b = dec.decode("m", evs, [])
    assert b.baseline is not None
    assert np.array_equal(b.baseline, [1.0, 0.0, np.nan, 1.0, np.nan], equal_nan=True)
    assert np.array_equal(b.take(np.array([1, 3])).baseline, [0.0, 1.0])
    assert dec.decode("m", evs[2:3], []).baseline is None  # nobody sent one


def test_windows_count_overrides_per_slice_with_a_bounded_reason_mix():
    eng = Engine(settings(), default_reference=reference())
    msgs = stream(1, per_hour=2000, override=lambda h, r: 1.0, reason=lambda h: None)
    evs = [orjson.loads(m) for m in msgs]
    for k, e in enumerate(e for e in evs if "override" in e):  # 20 distinct reasons: the mix is bounded
        e["override"] = f"r{k % 20}"
    evs[0]["decision"], evs[0]["override"] = "approve", "escalated"  # an override of a no-action decision
    eng.ingest_predictions([orjson.dumps(e) for e in evs])
    w = next(iter(eng.models["m"].windows.values()))
    w.finalize_global(eng.models["m"].layout)
    flags = sum(e["decision"] == "review" for e in evs)
    assert w.rates[0, RATE["acted"]] == flags == w.rates[0, RATE["flag_overridden"]]
    assert w.rates[0, RATE["overridden"]] == flags + 1
    assert set(w.reasons) == {"", "region=eu", "region=us", "region=apac"}
    mix = w.reasons[""]
    assert len(mix) == MAX_REASONS + 1 and "__other__" in mix and sum(mix.values()) == flags + 1
    assert sum(sum(w.reasons[f"region={r}"].values()) for r in REGIONS) == flags + 1


def test_override_values_that_mean_no_override_are_not_counted():
    eng = Engine(settings(), default_reference=reference())
    evs = [{"prediction_id": str(i), "model": "m", "ts": T0 + i, "features": {"x": 0.0}, "decision": "review",
            "slices": {"region": "eu"}, "override": v}
           for i, v in enumerate([None, "", "none", "No", False, 0, "not_overridden", "approved_manually", True])]
    eng.ingest_predictions([orjson.dumps(e) for e in evs])
    w = next(iter(eng.models["m"].windows.values()))
    w.finalize_global(eng.models["m"].layout)
    assert w.rates[0, RATE["overridden"]] == 2 and w.reasons[""] == {"approved_manually": 1, "true": 1}  # JSON text of the value


def test_partials_of_two_workers_merge_override_counts_and_reasons_exactly():
    msgs = stream(3, per_hour=600, override=lambda h, r: 0.3, reason=lambda h: f"why{h}")
    single = Engine(settings(), default_reference=reference())
    run(single, msgs)
    workers = [Engine(settings(), default_reference=reference()) for _ in range(2)]
    agg = Engine(settings(), default_reference=reference())
    # the second worker sees regions in another order, so its slice codes differ
    parts = [msgs[0::2], sorted(msgs[1::2], key=lambda m: orjson.loads(m)["slices"]["region"] != "apac")]
    for wk, part in zip(workers, parts, strict=True):
        wk.ingest_predictions(part)
        for p in wk.advance_partials(T0 + 10 * H):
            agg.ingest_partial(p, "w")
    agg.advance(T0 + 10 * H)
    a, b = single.models["m"].last_window, agg.models["m"].last_window
    la, lb = single.models["m"].layout, agg.models["m"].layout
    for r in REGIONS:
        ra, rb = la.row_of({"region": r}), lb.row_of({"region": r})
        assert np.array_equal(a.rates[ra], b.rates[rb])
    assert a.reasons == b.reasons and a.reasons[""] == {"why2": int(a.rates[0, RATE["overridden"]])}


# --------------------------------------------------------------------------- override rate
def test_override_surge_in_one_slice_is_localised_to_it():
    eng = Engine(settings(), default_reference=reference())
    alerts = run(eng, stream(14, override=lambda h, r: 0.7 if (h >= 9 and r == "eu") else 0.15,
                             reason=lambda h: "false_alarm" if h >= 9 else "approved_manually"))
    fired = [a for a in alerts if a["state"] == "firing"]
    assert [(a["kind"], a["feature"], a["slice"], a["cause"], a["action"]) for a in fired] == [
        ("decision_rate", "override_rate", {"region": "eu"}, "decision_policy", "fix_system")]
    a = fired[0]
    assert a["window"]["start"] == "2026-11-25T09:00:00.000Z" and a["severity"] == "critical"
    assert a["evidence"]["current"]["reasons"] == {"false_alarm": a["evidence"]["current"]["overridden"]}
    assert "override 7" in a["summary"] or "override 6" in a["summary"]
    st = eng.adoption.stats("m")["slices"]
    assert st["region=eu"]["override_rate"] > 0.5 and st["region=us"]["override_rate"] < 0.3


def test_no_overrides_sent_means_nothing_to_test_and_a_stable_rate_raises_nothing():
    for override in (lambda h, r: 0.0, lambda h, r: 0.15):
        eng = Engine(settings(), default_reference=reference())
        assert [a for a in run(eng, stream(10, override=override)) if a["state"] == "firing"] == []
    assert eng.adoption.stats("m")["slices"][""]["override_rate"] == pytest.approx(0.15, abs=0.06)


# --------------------------------------------------------------------------- review capacity
def test_capacity_flood_fires_and_a_quiet_hour_is_not_starvation():
    # flags: 20% of traffic; traffic falls to a quarter at night (hours 6-9): fewer flags, the usual share
    evs = stream(16, per_hour=lambda h: 300 if 6 <= h < 10 else 1200, flag_share=lambda h: 0.6 if h >= 12 else 0.2)
    eng = Engine(settings(), default_reference=reference())
    attach_adoption(eng, Config(models={"m": ModelConfig(reference="x", review_capacity=300)}))
    assert eng.adoption.capacity == {"m": 300}
    alerts = run(eng, evs)
    fired = [a for a in alerts if a["state"] == "firing"]
    # the share acted on tripled: the model's own decision-rate alert, and the queue flood as its own incident
    assert sorted((a["feature"] or "", a["statistic"], str(a["slice"]), a["cause"]) for a in fired) == [
        ("", "decision_rate_delta", "{}", "decision_policy"), ("review_capacity", "capacity_use", "{}", "decision_policy")]
    a = next(a for a in fired if a["feature"] == "review_capacity")
    assert a["window"]["start"] == "2026-11-25T12:00:00.000Z" and a["value"] > 2.0 and a["severity"] == "critical"
    assert "queue floods" in a["summary"] and a["evidence"]["current"]["flags"] > 600


def test_starvation_needs_the_flag_share_to_fall():
    evs = stream(14, flag_share=lambda h: 0.03 if h >= 10 else 0.2)
    eng = Engine(settings(), default_reference=reference())
    eng.adoption.capacity = {"m": 240}
    fired = [a for a in run(eng, evs) if a["state"] == "firing" and a["feature"] == "review_capacity"]
    assert len(fired) == 1 and fired[0]["threshold"] == 0.5 and fired[0]["value"] < 0.5
    assert fired[0]["window"]["end"] == "2026-11-25T12:00:00.000Z"  # a warning: two windows
    assert "starves" in fired[0]["summary"]


# --------------------------------------------------------------------------- rules baseline
def test_rules_baseline_confusion_matches_brute_force_with_corrections_and_early_labels():
    rng = np.random.default_rng(7)
    preds, labels = [], []
    truth: dict[str, tuple[int, int, int]] = {}
    for h in range(6):
        for i in range(300):
            pid = f"{h}-{i}"
            ts = T0 + h * H + i * 10.0
            act, rule, y = int(rng.random() < 0.3), int(rng.random() < 0.4), int(rng.random() < 0.35)
            e = {"prediction_id": pid, "model": "m", "ts": ts, "features": {"x": 0.0}, "score": 0.5,
                 "decision": "review" if act else "approve", "slices": {"region": REGIONS[i % 3]}}
            if i % 10 != 0:  # every tenth prediction carries no baseline decision: not compared
                e["baseline_decision"] = "review" if rule else "approve"
            preds.append(e)
            first = 1 - y if i % 25 == 1 else y  # some first labels are wrong and corrected later
            labels.append({"prediction_id": pid, "ts": ts + (-5.0 if i % 7 == 3 else 120.0), "label": first})
            if i % 25 == 1:
                labels.append({"prediction_id": pid, "ts": ts + 900.0, "label": y, "revision": 2})
            if h == 0 and i % 10 != 0:
                truth[pid] = (act, rule, y)
    eng = Engine(settings(), default_reference=reference())
    mon = attach_outcomes(eng)
    events = sorted([("p", e) for e in preds] + [("l", e) for e in labels], key=lambda t: (t[1]["ts"], t[0]))
    seen = []
    rules = mon.listeners[0]
    orig = rules.on_cohort

    def record(m, c, base, real, mat, window):
        orig(m, c, base, real, mat, window)
        seen.append((c.start, baseline_stats(eng, "m")))

    rules.on_cohort = record
    replay_log(eng, [("predictions" if t == "p" else "labels", orjson.dumps(e)) for t, e in events], 200)
    first = next(s for start, s in seen if start == T0)["slices"][""]
    cnt = np.zeros(len(BC))
    for act, rule, y in truth.values():
        cnt[BC["n"]] += 1
        for prefix, p in (("m_", act), ("b_", rule)):
            cnt[BC[prefix + {(1, 1): "tp", (1, 0): "fp", (0, 1): "fn", (0, 0): "tn"}[(p, y)]]] += 1
    assert first["pairs"] == len(truth) == 270
    assert first["model"] == metrics_of(cnt, "m_", (None, None)) and first["rules"] == metrics_of(cnt, "b_", (None, None))
    assert "trailing" not in first  # the first cohort has nothing to compare with
    later = seen[-1][1]["slices"][""]
    # cohorts whose labels came in before the label age was known are no clean reference (outcomes.py)
    assert later["trailing"]["pairs"] > 500 and later["diagnosis"] in ("stable", "unknown")


def test_metrics_and_diagnosis():
    cnt = np.zeros(len(BC))
    cnt[[BC["m_tp"], BC["m_fp"], BC["m_fn"], BC["m_tn"]]] = [8, 2, 4, 86]
    m = metrics_of(cnt, "m_", (1.0, 10.0))
    assert (m["precision"], m["recall"], m["error_rate"], m["expected_cost"], m["flag_share"]) == (0.8, 0.6667, 0.06, 0.42, 0.1)
    assert metrics_of(np.zeros(len(BC)), "b_", (None, None))["precision"] is None
    assert diagnose((1, 10), (60, 100), (30, 100), (30, 100)) == "model_worse"
    assert diagnose((0, 0), (60, 100), (30, 100), (30, 100)) == "unknown"
    assert diagnose((200, 1000), (100, 1000), (100, 1000), (100, 1000), lower_is_better=True) == "model_worse"
    assert diagnose((20, 100), (10, 100), (10, 100), (10, 100), lower_is_better=True) == "stable"  # not significant
    assert diagnose((55, 100), (60, 100), (10, 100), (30, 100)) == "stable"  # within tolerance
