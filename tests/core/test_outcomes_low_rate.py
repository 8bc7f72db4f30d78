"""Outcome tests at low rates: a quiet model (150 predictions/h, a 5% outcome, labels a day late with the
positives slower) has a few dozen labelled positives a day at the label age. Its tests must hold their
level there (no alarms from sparse baselines) and keep their power where the counts allow it.

Each check is run on thousands of independent replicate cohorts at once (pseudo-rows), so the share of
replicates below a p-value threshold is the test's real false-alarm rate.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from detector.core.outcomes.checks import Arrays, OutcomeThresholds
from detector.core.outcomes.cohort import N_HIST, N_REL, NC, C
from detector.core.outcomes.expected import base_rate_shift, expected_positives, power_span
from detector.core.stats.distributions import poisson_ratio_pvalue

REPLICATES = 2000


def cohorts(rng: np.random.Generator, n: int, odds: float = 1.0, slope: float = 1.0,
            labelled: tuple[float, float] = (0.35, 0.18)) -> Arrays:
    """REPLICATES cohorts of ``n`` predictions of a ~5% model whose scores are 0.92 x the true log-odds; the
    outcome odds times ``odds`` and its log-odds times ``slope`` (more extreme outcomes); each pair labelled
    by the label age with probability ``labelled`` (negatives, positives): positives come later."""
    z = rng.normal(-3.6, 1.3, (REPLICATES, n))
    s = 1 / (1 + np.exp(-z))
    y = rng.random(s.shape) < 1 / (1 + np.exp(-(slope * z / 0.92 + np.log(odds))))
    lab = rng.random(s.shape) < np.where(y, labelled[1], labelled[0])
    cnt = np.zeros((REPLICATES, NC))
    cnt[:, C["pred"]] = n
    cnt[:, C["lab"]] = cnt[:, C["sl"]] = lab.sum(1)
    cnt[:, C["pos"]] = cnt[:, C["spos"]] = (lab & y).sum(1)
    cnt[:, C["s"]] = (s * lab).sum(1)
    rel = np.zeros((REPLICATES, N_REL, 3))
    b = np.minimum((s * N_REL).astype(int), N_REL - 1)
    for k in range(N_REL):
        m = lab & (b == k)
        rel[:, k, 0], rel[:, k, 1], rel[:, k, 2] = m.sum(1), (s * m).sum(1), (m & y).sum(1)
    hist = np.zeros((REPLICATES, 2, N_HIST))
    h = np.minimum((s * N_HIST).astype(int), N_HIST - 1)
    for cls in (0, 1):
        sel = lab & (y == bool(cls))
        for r in range(REPLICATES):
            hist[r, cls] = np.bincount(h[r][sel[r]], minlength=N_HIST)
    return Arrays(cnt, rel, hist, np.zeros((REPLICATES, 8)), np.zeros((REPLICATES, 2)))


@pytest.fixture(scope="module")
def quiet() -> dict[str, Arrays]:
    """A baseline of two days and a current day at 150 predictions/h, clean and with the odds x2.5."""
    rng = np.random.default_rng(9)
    return {"base": cohorts(rng, 2 * 3600), "clean": cohorts(rng, 3600), "drift": cohorts(rng, 3600, odds=2.5)}


def test_expected_positives_are_unbiased_when_high_score_bins_are_sparse(quiet: dict[str, Arrays]) -> None:
    # a 2% labelled base rate with a handful of pairs in each high-score bin: shrinking those bins to the
    # overall rate expected ~9% too few positives, and every quiet day looked like a rise of the outcome
    E, V, est = expected_positives(quiet["clean"], quiet["base"])
    y = quiet["clean"].cnt[:, C["pos"]]
    assert abs(y.sum() / E.sum() - 1) < 0.04
    assert np.all(est > 0) and np.all(V > est)


def test_base_rate_test_holds_its_level_at_150_predictions_an_hour(quiet: dict[str, Arrays]) -> None:
    th = OutcomeThresholds()
    _, ratio, tested, warn, _, pv = base_rate_shift(quiet["clean"], quiet["base"], th)
    assert tested.all()
    assert 20 < quiet["clean"].cnt[:, C["pos"]].mean() < 40  # the regime of a quiet model
    # the false-alarm rate of the test is at most its nominal level (Monte Carlo slack for 2,000 draws)
    assert np.mean(pv < 1e-2) <= 0.015
    assert np.mean(pv < 1e-3) <= 0.003
    assert np.mean(tested & warn & (pv < 1e-3)) <= 0.003


def test_base_rate_test_keeps_its_power_for_a_real_shift(quiet: dict[str, Arrays]) -> None:
    th = OutcomeThresholds()
    _, ratio, tested, warn, _, pv = base_rate_shift(quiet["drift"], quiet["base"], th)
    assert np.median(ratio) > 2.0
    assert np.mean(tested & warn & (pv < 1e-3)) >= 0.75  # one day of a quiet model shows odds x2.5


def test_small_count_pvalue_is_the_exact_conditional_test() -> None:
    x, lam, x0 = np.array([16.0, 2.0, 43.0]), np.array([6.3, 6.3, 18.3]), np.array([20.0, 20.0, 50.0])
    for alt, i in (("greater", 0), ("less", 1)):
        want = sps.binomtest(int(x[i]), int(x[i] + x0[i]), lam[i] / (lam[i] + x0[i]), alt).pvalue
        assert poisson_ratio_pvalue(x[i:i + 1], lam[i:i + 1], x0[i:i + 1], alt)[0] == pytest.approx(want, rel=1e-6)
    # a baseline worth 50 events: 43 against 18.3 expected is unusual, not a one-in-a-million certainty
    p = poisson_ratio_pvalue(x[2:], lam[2:], x0[2:], "two-sided")[0]
    assert 1e-5 < p < 1e-3
    assert poisson_ratio_pvalue(x[2:], lam[2:], np.array([np.inf]), "two-sided")[0] < 1e-5


def test_the_slope_span_grows_for_a_quiet_model_and_not_for_a_busy_one() -> None:
    rng = np.random.default_rng(3)
    th = OutcomeThresholds()

    def hours(rate: float, k: int) -> np.ndarray:
        a = cohorts(rng, int(rate), labelled=(0.35, 0.18))
        return a.hist[:k]

    quiet, busy = hours(150, 96), hours(20_000, 4)
    assert power_span(busy, 1.09, th) <= 2  # an hour or two for a x1.25 change of the slope
    k = power_span(quiet, 1.09, th)
    assert 24 < k <= 96  # more than a day of a quiet model's labelled hours
