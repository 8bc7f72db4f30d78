"""Estimates before labels on the window path (detector.core.outcomes.estimate.monitor), on a calibrated synthetic model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from detector.core.decisions.alerts import AlertManager, incident_kind
from detector.core.decisions.kinds import OUTCOME_KINDS
from detector.core.decisions.select import Finding, select_findings
from detector.core.outcomes.estimate.monitor import (
    MATURED,
    BinaryEstimator,
    decided,
    make_estimates,
)
from detector.core.outcomes.tasks.reference import binary_reference
from detector.core.settings import DetectorSettings
from detector.core.state.codec import StateError, decode, encode

H = 3600.0
T0 = 1_700_000_000.0 - (1_700_000_000.0 % 86400)


def scores(n, rng, hi=(0.5, 1.0), hi_share=0.05):
    """A calibrated model: most scores low, ``hi_share`` of them uniform on ``hi``; labels drawn from the score."""
    s = np.where(rng.uniform(0, 1, n) < hi_share, rng.uniform(*hi, n), rng.beta(1, 12, n))
    return s, (rng.uniform(0, 1, n) < s).astype(float)


@pytest.fixture(scope="module")
def spec():
    rng = np.random.default_rng(0)
    s, y = scores(60_000, rng)
    return binary_reference(y, s, threshold=0.5)


def batch(s, threshold=np.nan, acted=None):
    n = s.size
    return SimpleNamespace(n=n, score=s, acted=np.full(n, np.nan) if acted is None else acted,
                           threshold=np.full(n, threshold))


def run_hours(pe, hours, rng, start_h=0, **kw):
    """Close ``hours`` hourly windows of 3,000 predictions each; return the results of each close (all traffic only)."""
    out = []
    rows, comp = np.array([0]), np.array([False])
    threshold = kw.pop("threshold", 0.5)
    for h in range(start_h, start_h + hours):
        c = pe.counters(1)
        s, _ = scores(3000, rng, **kw)
        pe.fold(c, batch(s, threshold), None)
        out.append(pe.results(c, T0 + h * H, T0 + (h + 1) * H, rows, comp, lambda r: ""))
    return out


def breaches(results):
    return [r.statistic for r in results if r.tested[0] and r.warn[0] and r.pvalue[0] < 0.001]


def test_the_decision_rule_is_the_event_decision_then_its_threshold_then_the_default():
    s = np.array([0.9, 0.9, 0.2, 0.6, np.nan, np.nan])
    acted = np.array([0.0, np.nan, np.nan, np.nan, 1.0, np.nan])
    thr = np.array([np.nan, 0.95, 0.1, np.nan, np.nan, np.nan])
    assert decided(s, acted, thr, 0.5).tolist() == [0, 0, 1, 1, 1, -1]


def test_no_estimates_without_a_calibration_map():
    assert make_estimates({}, 3600.0) is None
    assert make_estimates({"task": "binary", "labels": {"n": 10}}, 3600.0) is None
    assert make_estimates({"task": "nonsense", "calibration": {}}, 3600.0) is None


def test_stable_traffic_raises_nothing_and_the_day_is_tested_only_once_it_is_full(spec):
    pe = make_estimates(spec, H)
    res = run_hours(pe, 72, np.random.default_rng(1))
    assert all(r == [] for r in res[:23])  # the trailing day needs a full daily cycle
    assert all(len(r) == 4 for r in res[24:])
    assert not any(breaches(r) for r in res)
    day = pe.last["day"]
    for m in ("accuracy", "precision", "recall", "auc"):
        assert abs(day[m] - day["reference"][m]) < 3 * day[f"{m}_se"] + 1e-3, m


def test_a_production_threshold_other_than_trainings_is_not_a_drop(spec):
    """Training's realised precision / recall are at 0.5; production acts at 0.3: like with like, nothing drops."""
    pe = make_estimates(spec, H)
    res = run_hours(pe, 48, np.random.default_rng(2), threshold=0.3)
    assert not any(breaches(r) for r in res)
    day = pe.last["day"]
    # the naive comparison with training's realised numbers would have seen a recall *rise* and precision move
    assert abs(day["precision"] - spec["metrics"]["precision"]) > 0.02 or abs(day["recall"] - spec["metrics"]["recall"]) > 0.1
    assert abs(day["recall"] - day["reference"]["recall"]) < 3 * day["recall_se"]


def test_scores_moving_toward_the_threshold_lower_expected_precision_before_any_label(spec):
    pe = make_estimates(spec, H)
    rng = np.random.default_rng(3)
    clean = run_hours(pe, 30, rng)
    bad = run_hours(pe, 24, rng, start_h=30, hi=(0.5, 0.62))  # the confident flags become borderline
    assert not any(breaches(r) for r in clean)
    fired = [i for i, r in enumerate(bad) if "estimated_precision_drop" in breaches(r)]
    assert fired and fired[0] <= 16, fired  # the trailing day moves by 1/24 an hour
    r = next(r for r in bad[-1] if r.statistic == "estimated_precision_drop")
    ev = r.evidence(0)
    assert ev["current"]["span"] == "trailing day" and ev["reference"]["source"].startswith("estimated")
    assert "before any label" in r.summary(0)


def test_estimated_findings_join_the_windows_bh_over_pseudo_rows(spec):
    pe = make_estimates(spec, H)
    rng = np.random.default_rng(4)
    run_hours(pe, 30, rng)
    c = pe.counters(3)
    s, _ = scores(3000, rng, hi=(0.5, 0.6), hi_share=0.2)
    rows = np.array([[1]] * 1500 + [[2]] * 1500)
    for _ in range(24):
        pe.fold(c, batch(s), rows)
    res = pe.results(c, T0 + 30 * H, T0 + 31 * H, np.array([0, 1, 2, 1, 2]), np.array([False, False, False, True, True]),
                     lambda r: ["", "region=a", "region=b"][int(r)])
    assert set(pe.last["slices"]) == {"", "region=a", "region=b"}
    for r in res:
        # slices are exported, only all traffic is tested (complements mirror it)
        assert r.value.shape == (5,) and not r.tested[1:3].any() and (r.tested[3:] == r.tested[0]).all()
    v = SimpleNamespace(rows=np.array([0, 1, 2, 1, 2]), comp=np.array([False, False, False, True, True]),
                        events=np.array([3000.0, 1500, 1500, 1500, 1500]))
    found = select_findings(res, v, 0.01)
    assert found and {f.row for f in found} == {0} and all(f.statistic.startswith("estimated_") for f in found)


def cohort_of(s, y, act):
    """The all-traffic labelled counts of a cohort, as the outcome monitor keeps them."""
    from detector.core.outcomes.cohort import NC, C

    cnt = np.zeros((1, NC))
    for k, m in (("tp", act & (y == 1)), ("fp", act & (y == 0)), ("fn", ~act & (y == 1)), ("tn", ~act & (y == 0))):
        cnt[0, C[k]] = m.sum()
    b = np.clip((s * 100).astype(int), 0, 99)
    hist = np.stack([np.bincount(b[y == 0], minlength=100), np.bincount(b[y == 1], minlength=100)])[None].astype(float)
    return SimpleNamespace(cnt=cnt, hist=hist, start=0.0)


def labelled_hours(pe, hours, rng, truth=lambda s: s, n=600, labelled=1.0):
    """Close hourly windows, then let each one's labels mature (``truth``: P(y = 1 | score); ``labelled``: share labelled)."""
    rows, comp = np.array([0]), np.array([False])
    for h in range(hours):
        s, _ = scores(n, rng)
        y = (rng.uniform(0, 1, n) < truth(s)).astype(float)
        c = pe.counters(1)
        pe.fold(c, batch(s), None)
        pe.results(c, T0 + h * H, T0 + (h + 1) * H, rows, comp, lambda r: "")
        keep = rng.uniform(0, 1, n) < labelled
        pe.matured(T0 + h * H, pe.est.realised(cohort_of(s[keep], y[keep], s[keep] >= 0.5)))


def test_matured_estimates_are_within_their_stated_error(spec):
    pe = make_estimates(spec, H)
    labelled_hours(pe, 150, np.random.default_rng(5))
    err = pe.errors()
    assert set(err) == {"accuracy", "precision", "recall", "auc"}
    for m, e in err.items():
        z = np.array([g[2] for g in pe.gaps[m]])
        assert e["windows"] == MATURED and 0.6 < e["rms_z"] < 1.4 and e["rms_z_stated"] <= e["rms_z"] + 1e-9, (m, e)
        assert np.mean(np.abs(z) < 2) >= 0.85, (m, z)
    assert not pe.pending  # every window matured


def test_quiet_windows_are_pooled_until_every_metric_has_enough_labels(spec):
    pe = make_estimates(spec, H)
    labelled_hours(pe, 40, np.random.default_rng(6), n=60, labelled=0.7)  # ~2 positives a window
    # accuracy rests on every labelled prediction, precision on the few acted ones: pooled longer
    assert len(pe.gaps["accuracy"]) > 2 * len(pe.gaps["precision"]) >= 2, {m: len(g) for m, g in pe.gaps.items()}
    for m, g in pe.gaps.items():
        assert all(abs(x[2]) < 4 for x in g), (m, g)


def test_a_miscalibrated_production_widens_the_stated_error_and_never_narrows_it(spec):
    pe = make_estimates(spec, H)
    labelled_hours(pe, 80, np.random.default_rng(7), truth=lambda s: np.clip(1.6 * s, 0, 1))  # more fraud than scored
    infl = pe.inflation()
    assert infl["precision"] > 1.5 and infl["accuracy"] > 1.2, infl
    assert all(pe.errors()[m]["gap"] > 0 for m in ("precision",))
    calm = make_estimates(spec, H)
    assert calm.inflation() == {m: 1.0 for m in ("accuracy", "precision", "recall", "auc")}
    # the widened error travels with the per-window estimates
    rng = np.random.default_rng(8)
    run_hours(pe, 1, rng, start_h=200)
    run_hours(calm, 1, np.random.default_rng(8), start_h=200)
    assert pe.last["slices"][""]["precision_se"] > 1.5 * calm.last["slices"][""]["precision_se"]


def test_state_is_plain_data_and_refuses_forgeries(spec):
    pe = make_estimates(spec, H)
    rng = np.random.default_rng(6)
    run_hours(pe, 30, rng)
    s0 = sorted(pe.pending)[0]
    s_, y_ = scores(600, rng)
    pe.matured(s0, pe.est.realised(cohort_of(s_[:50], y_[:50], s_[:50] >= 0.5)))  # a pool that is still filling
    assert pe.pool
    st = decode(encode(pe.to_state()))
    pe2 = make_estimates(spec, H)
    pe2.load_state(st)
    a = run_hours(pe, 3, np.random.default_rng(7), start_h=30)
    b = run_hours(pe2, 3, np.random.default_rng(7), start_h=30)
    for ra, rb in zip(a[-1], b[-1], strict=True):
        np.testing.assert_array_equal(ra.value, rb.value)
    assert pe.errors() == pe2.errors()
    for m in pe.pool:
        for k in pe.pool[m]["real"]:
            np.testing.assert_array_equal(pe.pool[m]["real"][k], pe2.pool[m]["real"][k])
    m0 = next(iter(st["pool"]))
    with pytest.raises(StateError):
        make_estimates(spec, H).load_state(dict(st, pool={m0: {**st["pool"][m0], "real": {"cnt": np.zeros(3)}}}))
    bad = dict(st, day={"phist": np.zeros((len(st["hours"]), 3, 7))})
    with pytest.raises(StateError):
        make_estimates(spec, H).load_state(bad)
    with pytest.raises(StateError):
        make_estimates(spec, H).load_state(dict(st, task="regression"))
    with pytest.raises(StateError):
        pe.adopt(type(pe.counters(1))("estimate", {"phist": np.zeros((1, 2, 10))}))


def test_worker_counters_merge_by_addition(spec):
    pe = make_estimates(spec, H)
    rng = np.random.default_rng(8)
    s, _ = scores(4000, rng)
    one, a, b = pe.counters(1), pe.counters(1), pe.counters(1)
    pe.fold(one, batch(s), None)
    pe.fold(a, batch(s[:1500]), None)
    pe.fold(b, batch(s[1500:]), None)
    a.merge(b)
    np.testing.assert_array_equal(one["phist"], a["phist"])
    assert isinstance(pe.est, BinaryEstimator)


def _finding(stat, value=0.2, severity="critical"):
    return Finding("performance", None, 0, stat, value, 0.1, severity, 1e-6, {}, stat, value)


def test_estimated_and_realised_performance_are_separate_incidents():
    """The estimate is judged at window close, the realised value when labels mature: neither resolves the other."""
    am = AlertManager(DetectorSettings())
    win = lambda h: {"start": str(h), "end": str(h + 1), "count": 1000, "_start": T0 + h * H, "_end": T0 + (h + 1) * H}  # noqa: E731
    assert incident_kind("performance", "estimated_auc_drop") != incident_kind("performance", "auc_drop")
    est = am.update("m", win(0), [(_finding("estimated_auc_drop"), {})], {""}, {})
    assert [a.state for a in est] == ["firing"] and est[0].kind == "performance"
    # matured cohorts are clean (they are days old): the live estimated incident stays open
    for h in range(1, 6):
        assert am.update("m", win(h), [], {""}, {}, scope=OUTCOME_KINDS) == []
    # the labels confirm it: a realised incident of its own (not an update of the estimated one)
    real = am.update("m", win(6), [(_finding("auc_drop"), {})], {""}, {}, scope=OUTCOME_KINDS)
    assert [a.state for a in real] == ["firing"] and real[0].alert_id != est[0].alert_id
    assert real[0].key != est[0].key
    # clean windows resolve the estimated incident only
    out = []
    for h in range(7, 10):
        out += am.update("m", win(h), [], {""}, {})
    assert [(a.state, a.statistic, a.alert_id) for a in out] == [("resolved", "estimated_auc_drop", est[0].alert_id)]
    assert out[0].kind == "performance"
    assert {k[1] for k in am.state} == {"performance"}


def test_a_windows_estimate_counters_ride_its_state_and_forgeries_are_refused(spec):
    """Checkpoints and worker partials carry ``WindowCounts.est``; a forged block is a StateError, not a crash."""
    from detector.core.engine import Engine
    from detector.core.inputs.window import est_from_state
    from detector.core.reference.build import build_reference
    from detector.core.state.partials import window_from_state

    rng = np.random.default_rng(9)
    s, y = scores(3000, rng)
    ref = build_reference({"x": rng.normal(0, 1, s.size), "score": s, "label": y}, label_column="label",
                          score_column="score", model="m")
    assert ref.task["task"] == "binary" and ref.task["calibration"]["rows"] == s.size
    eng = Engine(default_reference=ref)
    raws = [b'{"prediction_id": "p%d", "model": "m", "ts": %d, "features": {"x": 0.1}, "score": %.4f}'
            % (i, 1_700_000_000 + i, v) for i, v in enumerate(s[:500])]
    assert eng.ingest_predictions(raws) == []
    (w,) = eng.models["m"].windows.values()
    assert w.est is not None and w.est["phist"][0].sum() == 500
    st = decode(encode(w.to_state()))
    w2 = window_from_state(st)
    np.testing.assert_array_equal(w2.est["phist"], w.est["phist"])
    for bad in ({"phist": np.zeros((w.rows + 1, 2, 100))}, {"phist": "x"}, {}, {"phist": np.zeros((w.rows, 10**6))}):
        with pytest.raises(StateError):
            est_from_state(bad, w.rows)
    eng2 = Engine(default_reference=ref)
    eng2.restore(eng.snapshot())
    np.testing.assert_array_equal(next(iter(eng2.models["m"].windows.values())).est["phist"], w.est["phist"])
