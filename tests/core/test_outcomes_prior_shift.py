"""Label drift (a shift of the outcome prior) against a local or slope change, from simulated pairs.

Pairs are drawn from a logistic outcome model over three regions with different score mixes; the counts
that :func:`~detector.core.outcomes.checks.outcome_checks` passes to
:func:`~detector.core.outcomes.prior_shift.prior_shift` (positives, training's expectation for the scores,
its Bernoulli variance) are built per pseudo-row (all traffic, the slices, their complements), and
:func:`~detector.core.outcomes.explain.explain` relabels the observed/expected finding accordingly.
"""

from __future__ import annotations

import numpy as np

from detector.core.decisions.select import Finding
from detector.core.outcomes.explain import explain
from detector.core.outcomes.prior_shift import prior_shift

MEANS = (-3.8, -3.3, -2.9)  # three regions' mean score log-odds


def _rows(rng: np.random.Generator, odds: tuple[float, float, float], n: int = 6000) -> tuple[np.ndarray, ...]:
    """(obs, expected, variance, comp) per pseudo-row; ``odds`` multiplies each region's outcome odds."""
    obs, kE, var = [], [], []
    for mu, f in zip(MEANS, odds, strict=True):
        z = rng.normal(mu, 1.2, n)
        s = 1 / (1 + np.exp(-z))
        y = rng.random(n) < 1 / (1 + np.exp(-(z + np.log(f))))  # calibrated in training: O/E 1
        obs.append(float(y.sum()))
        kE.append(float(s.sum()))
        var.append(float((s * (1 - s)).sum()))
    o, e, v = np.array(obs), np.array(kE), np.array(var)
    row = lambda a: np.concatenate([[a.sum()], a, a.sum() - a])  # noqa: E731
    comp = np.array([False] * 4 + [True] * 3)
    return row(o), row(e), row(v), comp


def test_a_shift_of_the_prior_is_shared_by_every_slice_and_all_traffic() -> None:
    hits = 0
    for seed in range(20):
        obs, kE, var, comp = _rows(np.random.default_rng(seed), (2.5, 2.5, 2.5))
        shared, rest, p_same, _ = prior_shift(obs, kE, var, comp, 0.0, True)
        hits += bool(shared[0]) and bool(shared[1:4].all())
        assert np.all(rest[1:4] > 1.5)  # the rest of traffic moved with each slice
    assert hits >= 17  # a 1% heterogeneity test over three slices: the odd false rejection


def test_a_local_change_or_a_slope_change_is_not_the_prior() -> None:
    for seed in range(10):
        obs, kE, var, comp = _rows(np.random.default_rng(seed), (3.0, 1.0, 0.5))  # one region up, one down
        shared = prior_shift(obs, kE, var, comp, 0.0, True)[0]
        assert not shared[0] and not shared[1] and not shared[3]
        obs, kE, var, comp = _rows(np.random.default_rng(seed), (2.5, 1.0, 1.0))  # one region alone
        shared = prior_shift(obs, kE, var, comp, 0.0, True)[0]
        assert not shared[0] and not shared[1]
        obs, kE, var, comp = _rows(np.random.default_rng(seed), (2.5, 2.5, 2.5))
        assert not prior_shift(obs, kE, var, comp, 0.0, slope_ok=False)[0].any()  # the slope moved


def test_explain_names_the_first_slice_page_of_a_shared_shift_label_drift() -> None:
    obs, kE, var, comp = _rows(np.random.default_rng(1), (2.5, 2.5, 2.5))
    shared, rest, p_same, _ = prior_shift(obs, kE, var, comp, 0.0, True)
    rows = np.arange(7)

    def oe(row: int) -> Finding:
        ev = {"prior_shift": {"shared": bool(shared[row]), "rest_of_traffic_ratio": float(rest[row])}}
        return Finding("calibration", None, row, "observed_expected_ratio", 2.4, 1.3, "warning", 1e-6, ev,
                       "outcomes are 2.40x the mean score (training: 1.00x): scores are miscalibrated", 0.9)

    stable = np.ones(7, bool)
    out, _ = explain([oe(2)], rows, comp, stable, np.zeros(7, bool), False, inputs_stable=True)
    assert [(f.kind, f.row) for f in out] == [("label_drift", 2)]
    assert "rest of traffic" in out[0].summary
    # a local move stays calibration (and becomes concept drift with stable inputs and labels)
    local = Finding("calibration", None, 2, "observed_expected_ratio", 2.4, 1.3, "warning", 1e-6,
                    {"prior_shift": {"shared": False}}, "outcomes are 2.40x the mean score", 0.9)
    out, _ = explain([local], rows, comp, stable, np.zeros(7, bool), False, inputs_stable=True)
    assert [f.kind for f in out] == ["concept_drift"]
    # with the inputs moving, nothing is credited to the prior here (triage credits the upstream cause)
    out, _ = explain([oe(2)], rows, comp, np.zeros(7, bool), np.zeros(7, bool), False, inputs_stable=False)
    assert [f.kind for f in out] == ["calibration"]


def _oe_result(odds: tuple[float, float, float], n: int, seed: int, ref_rv: float = 0.0):
    """The observed/expected-vs-training result of :func:`outcome_checks` for three regions whose outcome odds
    moved by ``odds`` (training calibrated: O/E 1 in every row), ``n`` labelled pairs per region; ``ref_rv`` the
    relative variance of training's rates scaled to the label age (the censoring estimate's)."""
    from detector.core.outcomes.checks import Arrays, OutcomeThresholds, outcome_checks
    from detector.core.outcomes.labels import N_DELAY
    from detector.core.outcomes.tasks import BinaryTask

    rng = np.random.default_rng(seed)
    t = BinaryTask()
    k = t.counters(4)
    for r, (mu, f) in enumerate(zip(MEANS, odds, strict=True), start=1):
        z = rng.normal(mu, 1.2, n)
        s = 1 / (1 + np.exp(-z))
        y = (rng.random(n) < 1 / (1 + np.exp(-(z + np.log(f))))).astype(float)
        ridx = np.stack([np.zeros(n, int), np.full(n, r)], axis=1)
        p = t.prediction_columns([{"score": float(v)} for v in s])
        p.klass = (s >= 0.5).astype(np.int64)
        t.add_predictions(k, ridx, p)
        t.add_pairs(k, ridx, s, p.klass, y, np.ones(n))
    cur = k.pseudo(np.arange(4), np.arange(1, 4))
    P = 7
    comp = np.array([False] * 4 + [True] * 3)
    delay, arr = np.zeros((P, N_DELAY)), np.zeros((P, 2))
    a = Arrays(cur["cnt"], cur["rel"], cur["hist"], delay, arr)
    out = outcome_checks(a, a, OutcomeThresholds(), ref_rate=np.full(P, np.nan), ref_n=np.full(P, np.nan),
                         ref_oe=np.where(comp, np.nan, 1.0), slice_ref_rate=np.full(P, np.nan),
                         slice_ref_n=np.full(P, np.nan), global_ratio=float("nan"), ref_auc=None, ref_auc_n=(0.0, 0.0),
                         horizon=3600.0, base_horizon=3600.0, river_latched=False, stable=np.ones(P, bool), comp=comp,
                         day=None, inputs_stable=True, ref_rv=ref_rv)
    (r,) = [r for r in out if r.statistic == "observed_expected_ratio"]
    return r


def test_a_slice_is_only_miscalibrated_on_its_own_when_it_differs_from_the_rest() -> None:
    # a shift of the prior seen through few labels: one slice may sit far from training while the rest's
    # smaller move is not significant yet; a local calibration page then needs the slice to differ from the rest
    for seed in range(30):
        r = _oe_result((2.5, 2.5, 2.5), 150, seed, ref_rv=0.1)
        for i in range(1, 4):
            ps = r.evidence(i)["prior_shift"]
            if r.warn[i] and r.pvalue[i] < 0.01 and not ps["shared"]:  # paged as this slice's own miscalibration
                assert ps["p_same_as_rest"] < 0.01
    # a change confined to one region is still paged there
    r = _oe_result((3.0, 1.0, 1.0), 6000, 0)
    ps = r.evidence(1)["prior_shift"]
    assert r.warn[1] and not ps["shared"] and ps["p_same_as_rest"] < 0.01
