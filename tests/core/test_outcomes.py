"""Outcome monitoring: binned metrics vs scikit-learn, maturity, and scenarios through a real Engine.

Traffic: a calibrated logistic model on two features; the truth is the same model unless a
scenario changes it. Labels arrive after an exponential delay (mean 30 min) unless changed.
"""

from __future__ import annotations

import copy

import numpy as np
import orjson
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from detector.core.decisions.alerts import OUTCOME_KINDS, PARITY_KINDS
from detector.core.engine import Engine
from detector.core.outcomes.cohort import (
    N_HIST,
    C,
    Cohort,
    average_precision,
    best_threshold,
    binned_auc,
    brier,
    ece,
)
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings

T0 = 1795564800.0  # 2026-11-25T00:00:00Z
B0 = -3.0
ONSET = 36
HOURS = 60


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _world(rng, n):
    return (rng.normal(0, 1, n).round(4), rng.normal(0, 1, n).round(4), rng.lognormal(3, 1, n).round(2),
            rng.choice(["DE", "FR", "US", "GB"], n, p=[.4, .3, .2, .1]), rng.choice(["eu", "us", "apac"], n))


def reference(n=40_000, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2, amount, country, region = _world(rng, n)
    score = sigmoid(B0 + 1.5 * x1 + 1.0 * x2)
    y = (rng.random(n) < score).astype(float)
    return build_reference({"x1": x1, "x2": x2, "amount": amount, "country": np.array(country, dtype=object),
                            "region": np.array(region, dtype=object), "score": score.round(4), "y": y},
                           label_column="y", score_column="score", slice_columns=["region"])


def simulate(hours=HOURS, per_hour=1200, seed=1, truth=None, delay=None, offline=None, corrections=None, x1_shift=None):
    """Time-ordered ``(ts, topic, message)``; topic 0 = prediction, 1 = label, 2 = offline features.

    ``truth(h, x1, x2)`` -> true logit; ``delay(h, rng, n)`` -> label delays (s) (``delay(h, rng, n, y)``
    when the function has ``by_label = True``: delays that depend on the outcome);
    ``offline(h, features)`` -> offline feature dict; ``corrections(h)`` -> share of labels re-sent
    later with ``revision: 1`` (same value).
    """
    rng = np.random.default_rng(seed)
    out = []
    for h in range(hours):
        n = int(per_hour * (1 + 0.3 * np.sin(2 * np.pi * (h % 24) / 24)))
        ts = T0 + h * 3600 + np.sort(rng.random(n)) * 3600
        x1, x2, amount, country, region = _world(rng, n)
        x1 = x1 + (x1_shift(h) if x1_shift else 0.0)
        score = sigmoid(B0 + 1.5 * x1 + 1.0 * x2).round(4)
        y = (rng.random(n) < sigmoid(truth(h, x1, x2) if truth else B0 + 1.5 * x1 + 1.0 * x2)).astype(int)
        d = (delay(h, rng, n, y) if getattr(delay, "by_label", False) else delay(h, rng, n)) if delay else rng.exponential(1800, n)
        corr = rng.random(n) < (corrections(h) if corrections else 0.0)
        for i in range(n):
            pid = f"{seed}-{h}-{i}"
            t = float(ts[i])
            feats = {"x1": float(x1[i]), "x2": float(x2[i]), "amount": float(amount[i]), "country": str(country[i])}
            out.append((t, 0, orjson.dumps({
                "prediction_id": pid, "model": "fraud", "model_version": "v1", "ts": t, "features": feats,
                "score": float(score[i]), "decision": "review" if score[i] >= 0.5 else "approve", "threshold": 0.5,
                "slices": {"region": str(region[i])}})))
            if offline is not None:
                out.append((t + 30, 2, orjson.dumps({"prediction_id": pid, "ts": t + 30, "features": offline(h, dict(feats)),
                                                     "source": "offline"})))
            lt = t + float(d[i])
            out.append((lt, 1, orjson.dumps({"prediction_id": pid, "ts": lt, "label": int(y[i])})))
            if corr[i]:
                out.append((lt + 600, 1, orjson.dumps({"prediction_id": pid, "ts": lt + 600, "label": int(y[i]), "revision": 1})))
    out.sort(key=lambda e: (e[0], e[1]))
    return out


def drive(engine, events, step=900.0, stop=None):
    """Feed events in event-time steps, advancing after each; returns alert dicts."""
    alerts = []
    i, n = 0, len(events)
    t = events[0][0]
    while i < n and (stop is None or t < stop):
        t += step
        batches = ([], [], [])
        while i < n and events[i][0] < t:
            batches[events[i][1]].append(events[i][2])
            i += 1
        for topic, ingest in ((0, engine.ingest_predictions), (2, engine.ingest_features), (1, engine.ingest_labels)):
            if batches[topic]:
                ingest(batches[topic])
        alerts += [a.to_dict() for a in engine.advance()]
    return alerts, i


def run(ref, events):
    eng = Engine(DetectorSettings(), default_reference=ref)
    mon = attach_outcomes(eng)
    alerts, _ = drive(eng, events)
    alerts += [a.to_dict() for a in eng.flush()]
    return alerts, mon


@pytest.fixture(scope="module")
def ref():
    return reference()


def fired(alerts, kinds=None):
    return [a for a in alerts if a["state"] == "firing" and (kinds is None or a["kind"] in kinds)]


# --------------------------------------------------------------------------- metrics vs scikit-learn


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(7)
    n = 20_000
    logit = rng.normal(-2.0, 1.5, n)
    s = sigmoid(logit)
    y = (rng.random(n) < sigmoid(logit + 0.4 * rng.normal(size=n) + 0.3)).astype(float)  # slightly miscalibrated
    c = Cohort(0.0, 1.0, 1)
    c.add_pairs(np.zeros((n, 1), np.int64), s, (s >= 0.5).astype(np.int8), y, np.ones(n), None)
    return s, y, c


def test_ece_and_brier_match_scikit_learn(pairs):
    s, y, c = pairs
    prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], s), minlength=10)
    counts = counts[counts > 0]
    assert ece(c.rel)[0] == pytest.approx(float((counts * np.abs(prob_true - prob_pred)).sum() / len(s)), abs=1e-12)
    assert brier(c.cnt)[0] == pytest.approx(brier_score_loss(y, s), abs=1e-12)


def test_binned_roc_and_pr_auc_match_scikit_learn(pairs):
    s, y, c = pairs
    neg, pos = c.hist[0, 0], c.hist[0, 1]
    auc, err = binned_auc(neg, pos)
    binned = np.floor(s * N_HIST)
    # exact on the binned scores (scikit-learn also counts tied pairs as one half)
    assert float(auc) == pytest.approx(roc_auc_score(y, binned), abs=1e-12)
    assert float(average_precision(neg, pos)) == pytest.approx(average_precision_score(y, binned), abs=1e-12)
    # against the raw scores: within the reported bound (half the share of tied pairs), and small
    assert abs(float(auc) - roc_auc_score(y, s)) <= float(err) and float(err) < 0.01
    assert abs(float(average_precision(neg, pos)) - average_precision_score(y, s)) < 0.01


def test_mergeable_counts_and_corrections_equal_the_final_labels(pairs):
    s, y, c = pairs
    a, b = Cohort(0.0, 1.0, 1), Cohort(0.0, 1.0, 1)
    r = np.zeros((len(s), 1), np.int64)
    a.add_pairs(r[::2], s[::2], (s[::2] >= 0.5).astype(np.int8), 1 - y[::2], np.ones(len(s[::2])), None)  # wrong labels
    a.add_pairs(r[::2], s[::2], (s[::2] >= 0.5).astype(np.int8), 1 - y[::2], -np.ones(len(s[::2])), None)  # taken back
    a.add_pairs(r[::2], s[::2], (s[::2] >= 0.5).astype(np.int8), y[::2], np.ones(len(s[::2])), None)
    b.add_pairs(r[1::2], s[1::2], (s[1::2] >= 0.5).astype(np.int8), y[1::2], np.ones(len(s[1::2])), None)
    a.merge(b)
    np.testing.assert_allclose(a.cnt, c.cnt, atol=1e-9)
    np.testing.assert_allclose(a.hist, c.hist, atol=1e-9)
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(Cohort(1.0, 2.0, 1))


def test_best_threshold_is_the_brute_force_minimum(pairs):
    s, y, c = pairs
    thr, cost = best_threshold(c.hist[0], cost_fp=1.0, cost_fn=8.0)
    brute = [(1.0 * ((s >= k / 100) & (y == 0)).sum() + 8.0 * ((s < k / 100) & (y == 1)).sum()) / len(s) for k in range(101)]
    assert cost == pytest.approx(min(brute)) and thr == pytest.approx(int(np.argmin(brute)) / 100)
    thr_cap, _ = best_threshold(c.hist[0], 1.0, 8.0, max_positive_share=0.01)  # review capacity: at most 1% acted on
    assert thr_cap > thr and (s >= thr_cap).mean() <= 0.01


# --------------------------------------------------------------------------- maturity


def test_cohorts_are_evaluated_only_once_their_labels_matured(ref):
    events = simulate(hours=12, per_hour=600, delay=lambda h, rng, n: np.full(n, 7200.0))
    eng = Engine(DetectorSettings(), default_reference=ref)
    mon = attach_outcomes(eng)
    drive(eng, events)
    m = mon.models["fraud"]
    assert m.done, "some cohorts matured"
    measured = [c for c in m.done.values() if c.horizon > 0]
    assert measured and len(measured) >= len(m.done) - 4  # the first hours: before the age was known
    for c in m.done.values():
        if c.horizon < 0:  # labels folded before the label age was known: compared with nothing
            assert c.gate == 0.0
            continue
        assert c.horizon >= 7200.0 and c.late == 0  # every label was in when it was evaluated
        assert c.cnt[0, C["lab"]] == c.cnt[0, C["pred"]]
    assert all(s >= max(m.done) for s in m.open)  # open cohorts are the newer ones
    st = mon.stats("fraud")
    assert st["slices"][""]["match_rate"] == 1.0 and 7200 <= st["maturity_s"] <= 10_000
    assert st["labels"]["matched"] > 0 and set(st["slices"]) >= {"", "region=eu", "region=us", "region=apac"}
    assert sum(st["delay"]["counts"]) == st["labels"]["matched"] and st["delay"]["sum"] == 7200.0 * st["labels"]["matched"]


# --------------------------------------------------------------------------- scenarios


def test_stable_traffic_with_labels_gives_no_outcome_alerts(ref):
    alerts, mon = run(ref, simulate())
    assert fired(alerts) == []
    s = mon.stats("fraud")["slices"][""]
    assert 0.8 < s["auc"] < 0.9 and s["ece"] < 0.05 and 0.08 < s["base_rate"] < 0.15 and s["expected_cost"] is None


def test_label_drift_with_stable_inputs(ref):
    alerts, _ = run(ref, simulate(truth=lambda h, x1, x2: B0 + 1.5 * x1 + 1.0 * x2 + (1.0 if h >= ONSET else 0.0)))
    f = fired(alerts)
    assert f and {a["kind"] for a in f} == {"label_drift"}
    a = f[0]
    assert a["cause"] == "label_drift" and a["slice"] == {} and a["statistic"] == "base_rate_ratio" and a["value"] > 1.5
    assert a["window"]["start"] >= "2026-11-26T12:00" and a["model_version"] == "v1"


def test_riskier_traffic_whose_scores_announce_it_is_not_label_drift(ref):
    """More positives because the inputs are riskier and the scores say so (a weekend's population):
    the base rate moves, but not against training's outcomes for these scores."""
    alerts, _ = run(ref, simulate(x1_shift=lambda h: 0.6 if h >= ONSET else 0.0))
    assert not fired(alerts, {"label_drift"}), [(a["kind"], a["statistic"], a["summary"]) for a in fired(alerts)]
    assert fired(alerts, {"feature_drift", "score_drift"})  # the inputs moved, and that is what is reported


def test_concept_drift_with_stable_inputs_is_not_covariate_drift(ref):
    alerts, _ = run(ref, simulate(truth=lambda h, x1, x2: B0 + (-1.5 if h >= ONSET else 1.5) * x1 + 1.0 * x2))
    f = fired(alerts)
    assert f and f[0]["kind"] == "concept_drift" and f[0]["cause"] == "concept_drift" and f[0]["action"] == "fix_model"
    assert all(a["cause"] != "covariate_drift" for a in f)
    assert not fired(alerts, {"label_drift"})


def test_label_delay_increase_does_not_look_like_label_drift(ref):
    alerts, _ = run(ref, simulate(delay=lambda h, rng, n: rng.exponential(1800 * (5 if h >= ONSET else 1), n)))
    assert not fired(alerts, {"label_drift", "calibration", "performance", "concept_drift"})
    delay = fired(alerts, {"label_delay"})
    assert delay and delay[0]["cause"] == "label_quality" and delay[0]["action"] == "fix_data"


def test_positives_arriving_later_than_negatives_do_not_look_like_label_drift(ref):
    def delay(h, rng, n):  # the slow tail (think chargebacks): 10% of labels take 4 h on average
        return np.where(rng.random(n) < 0.1, rng.exponential(14_400, n), rng.exponential(900, n))

    alerts, _ = run(ref, simulate(delay=delay))
    assert fired(alerts) == []


def test_positives_arriving_sooner_than_negatives_do_not_look_like_miscalibration(ref):
    # labels within hours, positives first (a decline is confirmed fast, a good loan slowly): the pairs in
    # by the label age are a riskier mix than the cohort, so both their base rate and their mean score are
    # higher than the cohort's; scaling only the base rate read a clean model as off by ~1/1.4 vs training
    def delay(h, rng, n, y):
        return np.where(y == 1, rng.lognormal(np.log(3600), 0.8, n), rng.lognormal(np.log(3 * 3600), 0.8, n))

    delay.by_label = True  # type: ignore[attr-defined]
    alerts, mon = run(ref, simulate(hours=72, delay=delay))
    assert fired(alerts, {"label_drift", "calibration", "performance", "concept_drift"}) == []
    m = next(iter(mon.models.values()))
    mat = m.age.horizon
    k, k_s = mon.censoring(m, mat)[0], mon.score_censoring(m, mat)
    assert k > 1.15 and k_s > 1.05  # positives come sooner, and so do the high scores that announce them


def test_correction_spike_is_label_quality(ref):
    alerts, mon = run(ref, simulate(corrections=lambda h: 0.3 if h >= ONSET else 0.002))
    f = fired(alerts)
    assert [(a["kind"], a["statistic"], a["cause"]) for a in f] == [("label_delay", "correction_rate", "label_quality")]
    assert mon.stats("fraud")["labels"]["corrections"] > 1000


def test_reference_auc_is_used_when_the_reference_has_one(ref):
    r = copy.deepcopy(ref)
    assert 0.7 < r.outcome["auc"] < 0.95 and 0.8 < r.outcome["slope"] < 1.2  # measured by build_reference
    r.outcome["auc"] = 0.97  # a reference that promised much more than production delivers
    alerts, _ = run(r, simulate(hours=30))
    f = fired(alerts)
    assert f and f[0]["statistic"] == "auc_drop" and f[0]["evidence"]["reference"]["source"] == "training"


def test_snapshot_restore_continues_identically(ref):
    events = simulate(hours=48, truth=lambda h, x1, x2: B0 + 1.5 * x1 + 1.0 * x2 + (1.0 if h >= 30 else 0.0))
    full, _ = run(ref, events)
    a = Engine(DetectorSettings(), default_reference=ref)
    attach_outcomes(a)
    first, i = drive(a, events, stop=T0 + 33 * 3600)
    b = Engine(DetectorSettings(), default_reference=ref)
    mb = attach_outcomes(b)
    b.restore(a.snapshot())
    assert mb.models["fraud"].done and len(mb.join.store) == len(a.outcomes.join.store)
    rest, _ = drive(b, events[i:])
    rest += [x.to_dict() for x in b.flush()]
    assert first + rest == full and fired(full, {"label_drift"})


def test_outcome_and_parity_kinds_are_scoped():
    assert "label_drift" in OUTCOME_KINDS and "feature_parity" in PARITY_KINDS


def test_outcomes_more_extreme_than_the_scores_is_caught_by_the_calibration_slope(ref):
    """Ranking and base rate unchanged, the outcomes twice as extreme as the scores say: the base rate
    and AUC barely move, the calibration slope doubles; with stable inputs it is concept drift."""
    def truth(h, x1, x2):
        z = B0 + 1.5 * x1 + 1.0 * x2
        return z if h < ONSET else 2.0 * z + 2.2  # steeper, re-centred to about the same base rate

    alerts, _ = run(ref, simulate(truth=truth))
    f = fired(alerts)
    assert f, "missed"
    assert f[0]["kind"] == "concept_drift" and f[0]["cause"] == "concept_drift"
    assert f[0]["statistic"] in ("calibration_slope", "ece_delta", "observed_expected_ratio")
