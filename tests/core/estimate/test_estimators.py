"""Estimators before labels: calibration maps, CBPE and DLE against Monte-Carlo truth."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from sklearn.isotonic import IsotonicRegression

from detector.core.outcomes.estimate.calibration import calibrated, fit_calibration, pav
from detector.core.outcomes.estimate.cbpe import EstimateThresholds, binary_estimates, estimate_checks
from detector.core.outcomes.estimate.dle import DLEModel, estimated_errors, fit_dle
from detector.core.outcomes.estimate.stated_error import inflation, systematic_error
from detector.core.outcomes.tasks.reference import binary_reference


def test_pav_equals_scikit_learn_isotonic_regression():
    rng = np.random.default_rng(0)
    r, w = rng.uniform(0, 1, 60), rng.integers(1, 20, 60).astype(float)
    fit, _ = pav(r, w)
    np.testing.assert_allclose(fit, IsotonicRegression().fit(np.arange(60), r, sample_weight=w).predict(np.arange(60)), atol=1e-12)


def test_calibration_map_recovers_a_known_curve_and_is_json():
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, s.size) < s**2).astype(float)
    cal = fit_calibration(s, y)
    orjson.dumps(cal)
    grid = np.linspace(0.05, 0.95, 10)
    np.testing.assert_allclose(calibrated(cal, grid), grid**2, atol=0.03)
    assert np.all(np.diff(cal["p"]) >= 0)


def _calibrated_window(n, rng, hi_share=0.05):
    """A calibrated binary model: most scores low, ``hi_share`` just above the 0.5 threshold or high."""
    s = np.where(rng.uniform(0, 1, n) < hi_share, rng.uniform(0.5, 1.0, n), rng.beta(1, 12, n))
    y = (rng.uniform(0, 1, n) < s).astype(float)
    return s, y


def test_binary_estimates_are_within_their_stated_error_of_the_realised_metrics():
    rng = np.random.default_rng(2)
    ref = binary_reference(*reversed(_calibrated_window(50_000, rng)), 0.5)
    z = {k: [] for k in ("accuracy", "precision", "recall", "auc")}
    for _ in range(200):
        s, y = _calibrated_window(2000, rng)
        act = s >= 0.5
        ph = np.bincount(np.clip((s * 100).astype(int), 0, 99) + 100 * act, minlength=200).reshape(1, 2, 100).astype(float)
        e = binary_estimates(ph, ref["calibration"])
        tp = (act & (y == 1)).sum()
        real = {"accuracy": (act == (y == 1)).mean(), "precision": tp / act.sum(), "recall": tp / y.sum()}
        from sklearn.metrics import roc_auc_score

        real["auc"] = roc_auc_score(y, s)
        for k in z:
            z[k].append((real[k] - e[k][0]) / e[f"{k}_se"][0])
    for k, v in z.items():
        v = np.asarray(v)
        assert abs(v.mean()) < 0.35, k  # unbiased
        assert 0.7 < np.sqrt((v * v).mean()) < 1.3, k  # the stated error is the real error
        assert np.mean(np.abs(v) > 3) < 0.02, k


def test_an_estimated_precision_drop_is_flagged_and_stable_estimates_are_not():
    rng = np.random.default_rng(3)
    ref = binary_reference(*reversed(_calibrated_window(50_000, rng)), 0.5)
    th = EstimateThresholds()

    def window(shift: bool):
        s, _ = _calibrated_window(20_000, rng)
        if shift:  # a new population of borderline cases just above the threshold
            k = rng.uniform(0, 1, s.size) < 0.08
            s = np.where(k, rng.uniform(0.5, 0.55, s.size), s)
        ph = np.bincount(np.clip((s * 100).astype(int), 0, 99) + 100 * (s >= 0.5), minlength=200).reshape(1, 2, 100)
        return binary_estimates(ph.astype(float), ref["calibration"])

    stable = estimate_checks(window(False), ref["metrics"], th, np.zeros(1, bool))
    assert not any(r.warn[0] and r.pvalue[0] < 0.001 for r in stable)
    shifted = estimate_checks(window(True), ref["metrics"], th, np.zeros(1, bool))
    hit = {r.statistic for r in shifted if r.warn[0] and r.pvalue[0] < 0.001}
    assert "estimated_precision_drop" in hit
    r = next(r for r in shifted if r.statistic == "estimated_precision_drop")
    assert r.kind == "performance" and "before any label" in r.summary(0)


def _heteroscedastic(n, rng):
    x = rng.uniform(0, 1, n)
    k = rng.choice(np.array(["a", "b", "c"], dtype=object), n)
    pred = 10 * x
    y = pred + rng.normal(0, 0.2 + 2 * x + (k == "a"), n)
    return {"x": x, "k": k}, pred, y


def test_dle_estimates_are_within_their_stated_error_and_follow_the_input_mix():
    rng = np.random.default_rng(4)
    spec = fit_dle(*_heteroscedastic(40_000, rng))
    orjson.dumps(spec)
    model = DLEModel(orjson.loads(orjson.dumps(spec)))
    z, est = [], []
    for i in range(150):
        f, pred, y = _heteroscedastic(1000, rng)
        if i % 2:  # half the windows see mostly large x: larger errors, and the estimate must follow
            f["x"] = f["x"] ** 0.3
            pred = 10 * f["x"]
            y = pred + rng.normal(0, 0.2 + 2 * f["x"] + (f["k"] == "a"), 1000)
        m, v = model.predict_with_var(f, pred)
        e = estimated_errors(model, np.array([[m.size, m.sum(), (m * m).sum(), (m**4).sum(), v.sum()]]))
        z.append((np.abs(pred - y).mean() - e["mae"][0]) / e["mae_se"][0])
        est.append(e["mae"][0])
    z = np.asarray(z)
    assert abs(z.mean()) < 0.35 and 0.7 < np.sqrt((z * z).mean()) < 1.3
    assert np.mean(est[1::2]) > 1.3 * np.mean(est[::2])


def test_dle_refuses_too_few_rows_and_bad_specs():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="at least 250"):
        fit_dle({"x": rng.normal(size=100)}, rng.normal(size=100), rng.normal(size=100))
    with pytest.raises(ValueError, match="format"):
        DLEModel({"format": "nope"})


def test_stated_error_helpers():
    assert systematic_error(np.ones(8), np.ones(8), np.full(8, 0.1)) == 0.0
    assert systematic_error(np.array([1.0, 1.2] * 4), np.full(8, 1.1), np.full(8, 0.01)) == pytest.approx(np.sqrt(0.01 - 0.0001))
    assert inflation(np.array([3.0] * 20)) == 3.0 and inflation(np.array([0.1] * 20)) == 1.0


def test_an_input_shift_towards_larger_errors_is_an_estimated_mae_rise():
    rng = np.random.default_rng(6)
    f, pred, y = _heteroscedastic(40_000, rng)
    model = DLEModel(fit_dle(f, pred, y))
    e = np.abs(pred - y)
    ref = {"mae": float(e.mean()), "mae_se": float(e.std() / np.sqrt(e.size)), "n": e.size}

    def est(shift: bool):
        f2, p2, _ = _heteroscedastic(5000, rng)
        if shift:  # the world moved to where the model is least sure (large x)
            f2["x"] = f2["x"] ** 0.25
            p2 = 10 * f2["x"]
        m, v = model.predict_with_var(f2, p2)
        return estimated_errors(model, np.array([[m.size, m.sum(), (m * m).sum(), (m**4).sum(), v.sum()]]))

    quiet = estimate_checks(est(False), ref, EstimateThresholds(), np.zeros(1, bool))
    assert not any(r.warn[0] and r.pvalue[0] < 0.001 for r in quiet)
    loud = estimate_checks(est(True), ref, EstimateThresholds(), np.zeros(1, bool))
    r = next(r for r in loud if r.statistic == "estimated_mae_ratio")
    assert r.warn[0] and r.pvalue[0] < 0.001 and r.value[0] > 1.25
    assert r.evidence(0)["current"]["method"] == "expected-error model"
