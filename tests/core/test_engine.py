"""Engine mechanics: windows, late/future events, snapshot/restore, merge across workers."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.core.engine import Engine, EngineError
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.core.state.codec import decode, encode
from tests.engine_replay import replay_log

T0 = 1795564800.0  # 2026-11-25T00:00:00Z
REGIONS = ["eu", "us", "apac"]


def training(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    return build_reference({
        "amount": rng.lognormal(3, 1, n).round(2),
        "n_tx": rng.poisson(2, n).astype(float),
        "country": np.array(rng.choice(["DE", "FR", "US", "GB"], n, p=[.4, .3, .2, .1]), dtype=object),
        "region": np.array(rng.choice(REGIONS, n), dtype=object),
        "score": rng.beta(1, 10, n).round(4),
    }, score_column="score", slice_columns=["region"])


def stream(hours, per_hour=400, seed=1, start=T0, mutate=None):
    """Prediction messages with a daily volume cycle; ``mutate(h, event)`` injects faults."""
    rng = np.random.default_rng(seed)
    out = []
    for h in range(hours):
        n = int(per_hour * (1 + 0.6 * np.sin(2 * np.pi * (h % 24) / 24)))
        ts = start + h * 3600 + np.sort(rng.random(n)) * 3600
        am = rng.lognormal(3, 1, n).round(2)
        tx = rng.poisson(2, n)
        co = rng.choice(["DE", "FR", "US", "GB"], n, p=[.4, .3, .2, .1])
        rg = rng.choice(REGIONS, n)
        sc = rng.beta(1, 10, n).round(4)
        for i in range(n):
            e = {"prediction_id": f"{seed}-{h}-{i}", "model": "fraud", "ts": float(ts[i]),
                 "features": {"amount": float(am[i]), "n_tx": int(tx[i]), "country": str(co[i])},
                 "score": float(sc[i]), "decision": "review" if sc[i] > 0.5 else "approve", "threshold": 0.5,
                 "slices": {"region": str(rg[i])}, "latency_ms": 10.0, "fallback": False}
            if mutate:
                mutate(h, e)
            out.append(orjson.dumps(e))
    return out


def run(engine, msgs, chunk=500):
    return replay_log(engine, msgs, chunk).dicts()


@pytest.fixture(scope="module")
def ref():
    return training()


def test_stable_seasonal_traffic_gives_no_alerts(ref):
    alerts = run(Engine(DetectorSettings(), default_reference=ref), stream(72))
    assert alerts == []


def test_unit_change_fires_once_with_contract_fields_and_resolves(ref):
    def cents(h, e):
        if 40 <= h < 50:
            e["features"]["amount"] = round(e["features"]["amount"] * 100, 2)

    alerts = run(Engine(DetectorSettings(), default_reference=ref), stream(60, mutate=cents))
    firing = [a for a in alerts if a["state"] == "firing"]
    assert [(a["kind"], a["feature"], a["slice"]) for a in firing] == [("unit_shift", "amount", {})]
    a = firing[0]
    assert a["cause"] == "pipeline_skew" and a["action"] == "fix_data" and a["severity"] == "critical"
    assert 80 < a["value"] < 125 and "unit" in a["summary"]
    assert a["window"]["start"].startswith("2026-11-26T16:00") and a["window"]["count"] > 0
    resolved = [x for x in alerts if x["state"] == "resolved"]
    assert [r["alert_id"] for r in resolved] == [a["alert_id"]]
    assert set(a) >= {"alert_id", "ts", "state", "model", "model_version", "kind", "feature", "slice", "statistic",
                      "value", "threshold", "severity", "window", "cause", "action", "evidence", "summary"}


def test_late_and_future_events_are_counted_not_folded(ref):
    eng = Engine(DetectorSettings(), default_reference=ref)
    run(eng, stream(3))
    before = eng.counters.predictions
    late = orjson.dumps({"prediction_id": "late", "model": "fraud", "ts": T0 + 10, "features": {"amount": 1.0}})
    future = orjson.dumps({"prediction_id": "fut", "model": "fraud", "ts": T0 + 40 * 86400, "features": {"amount": 1.0}})
    errors = eng.ingest_predictions([late, future])
    assert [e.reason for e in errors] == ["future_timestamp"]
    assert eng.counters.late == 1 and eng.counters.predictions == before


def test_unknown_model_is_an_error_not_a_crash(ref):
    eng = Engine(DetectorSettings(), references={"fraud": ref})
    errors = eng.ingest_predictions([orjson.dumps({"prediction_id": "x", "model": "churn", "ts": T0, "features": {}})])
    assert [e.reason for e in errors] == ["unknown_model"]


def test_snapshot_restore_continues_identically(ref):
    def miss(h, e):
        if h >= 30:
            e["features"]["n_tx"] = None

    msgs = stream(40, mutate=miss)
    cut = len(msgs) // 2
    full = run(Engine(DetectorSettings(), default_reference=ref), msgs)
    a = Engine(DetectorSettings(), default_reference=ref)
    first = []
    for i in range(0, cut, 500):
        a.ingest_predictions(msgs[i : min(i + 500, cut)])
        first += [x.to_dict() for x in a.advance()]
    b = Engine(DetectorSettings(), default_reference=ref)
    b.restore(a.snapshot())
    rest = run(b, msgs[cut:])
    assert first + rest == full
    assert any(x["kind"] == "missing_values" and x["feature"] == "n_tx" for x in full)


def test_restore_rejects_garbage(ref):
    with pytest.raises(EngineError, match="unreadable"):
        Engine(DetectorSettings(), default_reference=ref).restore(b"not a snapshot")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(split=st.lists(st.booleans(), min_size=600, max_size=600))
def test_merge_of_two_workers_equals_one_worker(ref, split):
    """Windows from workers owning disjoint parts of the traffic add up to the single-worker window."""
    msgs = stream(2, per_hour=300, seed=5)[:600]
    one = Engine(DetectorSettings(), default_reference=ref)
    one.ingest_predictions(msgs)
    w1, w2 = Engine(DetectorSettings(), default_reference=ref), Engine(DetectorSettings(), default_reference=ref)
    # give the second worker a different first-seen slice order so codes differ
    part1 = [m for m, s in zip(msgs, split, strict=True) if s]
    part2 = [m for m, s in zip(msgs, split, strict=True) if not s][::-1]
    if part1:
        w1.ingest_predictions(part1)
    if part2:
        w2.ingest_predictions(part2)
    w1.merge_windows(w2)
    ms1, msm = one.models["fraud"], w1.models["fraud"]
    assert sorted(ms1.windows) == sorted(msm.windows)
    for s, w in ms1.windows.items():
        m = msm.windows[s]
        for dim_row in range(ms1.layout.n_rows):
            label = ms1.layout.row_label(dim_row)
            row_m = msm.layout.row_of(label)
            if w.rates[dim_row, 0] == 0:
                continue
            assert row_m is not None
            np.testing.assert_array_equal(w.num[dim_row], m.num[row_m])
            np.testing.assert_array_equal(w.cat[dim_row], m.cat[row_m])
            np.testing.assert_allclose(w.sx[dim_row], m.sx[row_m])


def test_partials_from_two_workers_give_the_alerts_of_one(ref):
    """Scale-out path: workers publish closed-window partials, an aggregator merges and evaluates."""
    def fault(h, e):
        if h >= 30 and e["slices"]["region"] == "eu":
            e["features"]["n_tx"] = None

    msgs = stream(40, mutate=fault, seed=3)
    single = run(Engine(DetectorSettings(), default_reference=ref), msgs)
    workers = [Engine(DetectorSettings(), default_reference=ref) for _ in range(2)]
    agg = Engine(DetectorSettings(), default_reference=ref)
    got = []
    for i in range(0, len(msgs), 500):
        chunk = msgs[i : i + 500]
        for k, wk in enumerate(workers):  # partition by message index parity
            part = chunk[k::2]
            if part:
                wk.ingest_predictions(part)
        wm = min(wk.high_water for wk in workers) - agg.settings.allowed_lateness
        for k, wk in enumerate(workers):
            for p in wk.advance_partials(wm):
                agg.ingest_partial(type(p).from_state(decode(encode(p.to_state()))), f"w{k}")
        got += [a.to_dict() for a in agg.advance(wm)]
    end = max(wk.high_water for wk in workers) + 3600
    for k, wk in enumerate(workers):
        for p in wk.advance_partials(end):
            agg.ingest_partial(p, f"w{k}")
    got += [a.to_dict() for a in agg.advance(end)]
    assert got == single
    assert any(a["kind"] == "missing_values" and a["slice"] == {"region": "eu"} for a in single)
