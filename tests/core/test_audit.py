"""Leakage / availability audit and the time-split check (detector.core.reference.audit), and its serving-side check."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.reference.audit import (
    audit_training,
    fit_logistic,
    roc_auc,
    summary_lines,
    time_split_check,
    univariate,
)
from detector.core.reference.build import build_reference
from detector.core.reference.profile import Reference
from detector.core.settings import DetectorSettings

T0 = 1795564800.0


def test_auc_equals_pair_counting_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.integers(0, 5, 40).astype(float)
        y = (rng.random(40) < 0.4).astype(int)
        if y.min() == y.max():
            continue
        wins = sum((a > b) + 0.5 * (a == b) for a, b in itertools.product(s[y == 1], s[y == 0]))
        assert roc_auc(s, y) == pytest.approx(wins / ((y == 1).sum() * (y == 0).sum()))
    assert np.isnan(roc_auc(np.array([1.0, 2.0]), np.array([1, 1])))


def labelled(n=4000, seed=1):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(float)
    return rng, y


def test_id_like_columns_are_not_leaks_but_a_category_that_is_the_outcome_is():
    rng, y = labelled()
    ids = np.array([f"id{i}" for i in range(len(y))], dtype=object)
    status = np.array(np.where(y == 1, "chargeback", rng.choice(["open", "closed"], len(y))), dtype=object)
    a = audit_training({"customer_id": ids, "status": status, "amount": rng.lognormal(3, 1, len(y)) * (1 + 0.3 * y)}, y)
    f = a["features"]
    assert abs(f["customer_id"]["auc"] - 0.5) < 0.05 and not f["customer_id"]["leak_suspect"]  # out-of-fold encoding
    assert f["status"]["leak_suspect"] and f["status"]["auc"] > 0.99 and f["status"]["mi_norm"] > 0.9
    assert not f["amount"]["leak_suspect"] and a["leak_suspects"] == ["status"]


def test_non_monotone_leak_is_caught_by_mutual_information():
    rng, y = labelled()
    x = np.where(y == 1, rng.uniform(-0.1, 0.1, len(y)), rng.choice([-1.0, 1.0], len(y)) * rng.uniform(0.5, 1, len(y)))
    u = univariate(x, y)
    assert abs(u["auc"] - 0.5) < 0.1 and u["mi_norm"] > 0.5
    a = audit_training({"x": x, "noise": rng.normal(size=len(y))}, y)
    assert a["leak_suspects"] == ["x"] and "information" in a["features"]["x"]["reason"]


def test_a_field_populated_only_after_the_outcome_is_an_availability_leak():
    rng, y = labelled()
    refund_at = np.where(y == 1, rng.gamma(2, 10, len(y)), np.nan)
    u = audit_training({"refund_at": refund_at, "x": rng.normal(size=len(y))}, y)["features"]["refund_at"]
    assert u["leak_suspect"] and u["missing_rate_pos"] == 0.0 and u["missing_rate_neg"] == 1.0
    assert "filled in after the outcome" in u["reason"]


def test_an_outlier_among_the_features_is_flagged_by_its_robust_z():
    rng, y = labelled(n=6000)
    feats = {f"weak{j}": rng.normal(size=len(y)) + 0.05 * y for j in range(8)}
    feats["strong"] = rng.normal(size=len(y)) + 1.9 * y  # AUC ~0.91: below 0.95, far above the rest
    a = audit_training(feats, y)
    s = a["features"]["strong"]
    assert 0.85 < s["auc"] < 0.95 and s["robust_z"] > 5 and s["leak_suspect"]
    assert "far more predictive" in s["reason"] and a["leak_suspects"] == ["strong"]


def test_too_few_rows_skip_the_audit_and_build_reference_keeps_it_round_trip(tmp_path):
    a = audit_training({"x": np.arange(10.0)}, (np.arange(10) % 2).astype(float))
    assert a["skipped"] and a["features"] == {} and summary_lines(a)[0].startswith("  leakage audit skipped")
    rng, y = labelled(n=600)
    ref = build_reference({"x": rng.normal(size=600) + y, "c": np.array(rng.choice(["a", "b"], 600), dtype=object),
                           "y": y}, label_column="y")
    assert ref.audit["label_column"] == "y" and set(ref.audit["features"]) == {"x", "c"}
    assert "time_split" not in ref.audit  # no time column
    ref.save(tmp_path / "r.json")
    assert Reference.load(tmp_path / "r.json").audit == orjson.loads(orjson.dumps(ref.audit))
    assert build_reference({"x": np.arange(5.0)}).audit == {}  # no label: no audit


def test_logistic_regression_learns_and_the_time_split_skips_small_data():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 3))
    y = (rng.random(3000) < 1 / (1 + np.exp(-(2 * X[:, 0] - X[:, 1])))).astype(float)
    w = fit_logistic(X, y)
    assert w[0] > 1.0 and w[1] < -0.5 and abs(w[2]) < 0.2
    assert roc_auc(X @ w[:-1], y) > 0.8
    small = time_split_check({"x": X[:50, 0]}, y[:50], np.arange(50.0) + T0)
    assert "skipped" in small


# --------------------------------------------------------------------------- serving side
def leak_reference():
    rng, y = labelled(n=3000)
    return build_reference({"amount": rng.lognormal(3, 1, 3000), "flag": y + rng.normal(0, 0.01, 3000),
                            "status": np.array(np.where(y == 1, "disputed", "none"), dtype=object),
                            "plain": rng.normal(size=3000), "y": y}, label_column="y")


def serve(ref, features, n=300):
    eng = Engine(DetectorSettings(), default_reference=ref)
    rng = np.random.default_rng(3)
    msgs = [orjson.dumps({"prediction_id": str(i), "model": "m", "ts": T0 + i * 10.0, "score": 0.1,
                          "features": {"amount": float(rng.lognormal(3, 1)), **features(i, rng)}}) for i in range(n)]
    eng.ingest_predictions(msgs)
    return [a.to_dict() for a in eng.flush()]


def test_a_leak_suspect_constant_at_serving_is_a_schema_fact_with_the_audit_as_evidence():
    ref = leak_reference()
    assert set(ref.audit["leak_suspects"]) == {"flag", "status"}
    alerts = serve(ref, lambda i, rng: {"flag": 0.0, "status": "none", "plain": 0.0})
    got = {(a["kind"], a["feature"], a["statistic"]): a for a in alerts if a["state"] == "firing"}
    for feat, value in (("flag", 0.0), ("status", "none")):
        a = got[("schema", feat, "constant_share")]
        assert a["slice"] == {} and a["cause"] == "pipeline_skew" and a["severity"] == "critical"
        assert a["evidence"]["current"]["value"] == value and a["evidence"]["reference"]["audit"]["leak_suspect"]
    assert not [k for k in got if k[1] == "plain" and k[0] == "schema"]  # constant but no leak suspect


def test_a_leak_suspect_that_varies_at_serving_is_not_reported():
    alerts = serve(leak_reference(), lambda i, rng: {"flag": float(rng.random() < 0.2), "status": str(rng.choice(["none", "disputed"])),
                                                     "plain": float(rng.normal())})
    assert not [a for a in alerts if a["kind"] == "schema"]
