"""Tests for detector.core.stats.distributions: scipy as the oracle, hand-computed values, vectorisation, edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp
from scipy.spatial.distance import jensenshannon

from detector.core.stats import distributions as stats

SETTINGS = settings(max_examples=60, deadline=None)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# hypothesis strategies -------------------------------------------------------------------------

bins = hs.integers(1, 8)


@hs.composite
def count_matrix(draw, min_rows=1, max_rows=6, zero_rows=True):
    """(rows, B) non-negative integer counts, B >= 1; optionally allows all-zero rows."""
    b = draw(bins)
    rows = draw(hs.integers(min_rows, max_rows))
    arr = draw(hnp.arrays(np.int64, (rows, b), elements=hs.integers(0, 500)))
    if not zero_rows:
        arr[:, 0] += 1
    return arr.astype(np.float64)


@hs.composite
def ref_and_counts(draw, zero_rows=True):
    counts = draw(count_matrix(zero_rows=zero_rows))
    b = counts.shape[1]
    weights = draw(hnp.arrays(np.float64, (b,), elements=hs.floats(0.01, 10.0)))
    return weights / weights.sum(), counts


def rowwise(fn, *arrays):
    """Apply fn row by row (the scalar path) and stack."""
    return np.array([fn(*(a[i] for a in arrays)) for i in range(len(arrays[0]))])


# PSI -------------------------------------------------------------------------------------------


def test_psi_hand_computed_two_bins():
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert stats.psi([0.5, 0.5], [30, 70]) == pytest.approx(expected, rel=1e-13)
    assert expected == pytest.approx(0.1694595720774407, rel=1e-13)


def test_psi_hand_computed_four_bins():
    ref = [0.1, 0.2, 0.3, 0.4]
    obs = [0.25, 0.25, 0.25, 0.25]
    expected = sum((o - r) * math.log(o / r) for o, r in zip(obs, ref, strict=True))
    assert stats.psi(ref, [5, 5, 5, 5]) == pytest.approx(expected, rel=1e-13)
    # counts are normalised: scaling them (or the reference) changes nothing
    assert stats.psi(np.array(ref) * 37, [500, 500, 500, 500]) == pytest.approx(expected, rel=1e-13)


def test_psi_smoothing_of_empty_bins():
    eps = 1e-4
    expected = (1 - 0.5) * math.log(1 / 0.5) + (eps - 0.5) * math.log(eps / 0.5)
    assert stats.psi([0.5, 0.5], [100, 0]) == pytest.approx(expected, rel=1e-13)
    eps = 1e-2
    expected = (1 - 0.5) * math.log(1 / 0.5) + (eps - 0.5) * math.log(eps / 0.5)
    assert stats.psi([0.5, 0.5], [100, 0], eps=eps) == pytest.approx(expected, rel=1e-13)
    # an empty reference bin with observed mass is finite too
    assert math.isfinite(stats.psi([1.0, 0.0], [50, 50]))


def test_psi_identical_single_bin_and_symmetry():
    p = np.array([0.1, 0.6, 0.3])
    assert stats.psi(p, p * 1000) == pytest.approx(0.0, abs=1e-15)
    assert stats.psi([1.0], [[17], [3]]).tolist() == [0.0, 0.0]
    q = np.array([0.3, 0.3, 0.4])
    assert stats.psi(p, q) == pytest.approx(stats.psi(q, p), rel=1e-14)


def test_psi_zero_total_nan_and_shapes():
    out = stats.psi([0.5, 0.5], [[50, 50], [0, 0], [np.nan, 3], [70, 30]])
    assert out.shape == (4,)
    assert out[0] == pytest.approx(0.0, abs=1e-15)
    assert np.isnan(out[1]) and np.isnan(out[2])
    assert out[3] == pytest.approx(stats.psi([0.5, 0.5], [70, 30]), rel=1e-15)
    assert np.isnan(stats.psi([0.0, 0.0], [1, 2]))
    assert isinstance(stats.psi([0.5, 0.5], [1, 2]), float)
    three_d = np.ones((2, 3, 4))
    assert stats.psi(np.full(4, 0.25), three_d).shape == (2, 3)


def test_psi_broadcast_reference_equals_tiled_reference():
    r = rng(1)
    ref = r.dirichlet(np.ones(6))
    counts = r.multinomial(300, r.dirichlet(np.ones(6)), size=50)
    np.testing.assert_allclose(
        stats.psi(ref, counts), stats.psi(np.tile(ref, (50, 1)), counts), rtol=1e-15, atol=0
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.psi(0.5, [1, 2]),
        lambda: stats.psi([0.5, 0.5], [-1, 2]),
        lambda: stats.psi([0.5, 0.5], [1, 2], eps=0.0),
        lambda: stats.psi(np.ones((2, 0)), np.ones((2, 0))),
    ],
)
def test_psi_rejects_bad_input(call):
    with pytest.raises(ValueError):
        call()


@SETTINGS
@given(ref_and_counts())
def test_psi_rowwise_equals_batched(data):
    ref, counts = data
    np.testing.assert_allclose(
        stats.psi(ref, counts), rowwise(lambda c: stats.psi(ref, c), counts), rtol=1e-13, equal_nan=True
    )


# Jensen-Shannon, L-infinity --------------------------------------------------------------------


def test_js_distance_matches_scipy():
    r = rng(2)
    p = r.integers(0, 50, size=(200, 7)).astype(float)
    q = r.dirichlet(np.ones(7) * 0.5, size=200)
    p[:, 0] += 1  # no zero rows
    expected = jensenshannon(p, q, base=2, axis=1)
    np.testing.assert_allclose(stats.js_distance(p, q), expected, rtol=1e-10, atol=1e-12)
    for i in range(5):
        assert stats.js_distance(p[i], q[i]) == pytest.approx(
            jensenshannon(p[i], q[i], base=2), rel=1e-10, abs=1e-12
        )


def test_js_distance_edges():
    assert stats.js_distance([1, 0], [0, 1]) == pytest.approx(1.0, abs=1e-15)
    assert stats.js_distance([5, 0, 0], [0, 2, 2]) == pytest.approx(1.0, abs=1e-15)
    assert stats.js_distance([3, 1], [30, 10]) == 0.0
    assert stats.js_distance([7], [2]) == 0.0
    out = stats.js_distance([1, 1], [[0, 0], [1, np.nan], [1, 1]])
    assert np.isnan(out[0]) and np.isnan(out[1]) and out[2] == 0.0
    assert np.isnan(stats.js_distance([0, 0], [1, 1]))


def test_linf_values_and_edges():
    assert stats.linf([1, 1, 2], [2, 1, 1]) == pytest.approx(0.25, abs=1e-15)
    assert stats.linf([1, 0, 0], [0, 0, 1]) == pytest.approx(1.0, abs=1e-15)
    r = rng(3)
    p = r.integers(1, 20, size=(30, 5)).astype(float)
    q = r.integers(1, 20, size=(30, 5)).astype(float)
    expected = np.abs(p / p.sum(1, keepdims=True) - q / q.sum(1, keepdims=True)).max(axis=1)
    np.testing.assert_allclose(stats.linf(p, q), expected, rtol=1e-14)
    out = stats.linf([[0, 0], [1, 3]], [1, 1])
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.25, abs=1e-15)


@SETTINGS
@given(count_matrix(), count_matrix())
def test_js_and_linf_rowwise_equals_batched(a, b):
    b = np.resize(b, a.shape)  # same bins
    for fn in (stats.js_distance, stats.linf):
        batched = fn(a, b)
        np.testing.assert_allclose(batched, rowwise(fn, a, b), rtol=1e-13, atol=1e-15, equal_nan=True)
        ok = ~np.isnan(batched)
        assert np.all((batched[ok] >= 0) & (batched[ok] <= 1))


# KS --------------------------------------------------------------------------------------------


def test_ks_binned_equals_ks_2samp_on_binned_samples():
    r = rng(4)
    for _ in range(20):
        b = int(r.integers(2, 15))
        ref_counts = r.integers(0, 60, size=b)
        obs_counts = r.integers(0, 60, size=b)
        ref_counts[0] += 1
        obs_counts[-1] += 1
        ref_sample = np.repeat(np.arange(b), ref_counts)
        obs_sample = np.repeat(np.arange(b), obs_counts)
        expected = st.ks_2samp(ref_sample, obs_sample).statistic
        got = stats.ks_binned(ref_counts / ref_counts.sum(), obs_counts)
        assert got == pytest.approx(expected, abs=1e-12)


def test_ks_binned_against_known_continuous_distribution():
    r = rng(5)
    data = r.normal(0.3, 1.0, size=500)
    edges = np.concatenate([[-np.inf], st.norm.ppf(np.linspace(0.1, 0.9, 9)), [np.inf]])
    counts = np.histogram(data, bins=edges)[0]
    ref_p = np.diff(st.norm.cdf(edges))
    got = stats.ks_binned(ref_p, counts)
    inner = edges[1:-1]
    ecdf = np.searchsorted(np.sort(data), inner, side="right") / data.size
    assert got == pytest.approx(np.max(np.abs(st.norm.cdf(inner) - ecdf)), abs=1e-12)
    # binning can only hide differences: a lower bound on the raw KS statistic
    assert got <= st.kstest(data, "norm").statistic + 1e-12


def test_ks_binned_edges():
    assert stats.ks_binned([1.0], [5]) == 0.0
    assert stats.ks_binned([1, 0, 0], [0, 0, 9]) == pytest.approx(1.0, abs=1e-15)
    out = stats.ks_binned([0.5, 0.5], [[0, 0], [1, 1]])
    assert np.isnan(out[0]) and out[1] == 0.0


@SETTINGS
@given(ref_and_counts())
def test_ks_binned_rowwise_equals_batched(data):
    ref, counts = data
    np.testing.assert_allclose(
        stats.ks_binned(ref, counts),
        rowwise(lambda c: stats.ks_binned(ref, c), counts),
        rtol=1e-13,
        atol=1e-15,
        equal_nan=True,
    )


# chi-square ------------------------------------------------------------------------------------


def test_chi2_sf_matches_scipy_on_grid():
    df = np.arange(1, 501)
    x = np.concatenate([np.geomspace(1e-8, 1e5, 600), np.linspace(0, 1100, 600)])
    xx, dd = np.meshgrid(x, df)
    expected = st.chi2.sf(xx, dd)
    got = stats.chi2_sf(xx, dd)
    normal = expected > 1e-290  # scipy is subnormal/zero below; compare absolutely there
    np.testing.assert_allclose(got[normal], expected[normal], rtol=1e-8, atol=0)
    assert np.all(got[~normal] <= 1e-289)
    assert np.all((got >= 0) & (got <= 1))


def test_chi2_sf_non_integer_df():
    r = rng(8)
    df = r.uniform(0.02, 800, size=5000)
    x = df * r.uniform(0, 3, size=5000)
    expected = st.chi2.sf(x, df)
    keep = expected > 1e-290
    np.testing.assert_allclose(stats.chi2_sf(x, df)[keep], expected[keep], rtol=1e-8)


def test_chi2_sf_extremes():
    assert stats.chi2_sf(1e5, 10) == 0.0
    assert stats.chi2_sf(1e300, 3) == 0.0
    assert stats.chi2_sf(np.inf, 3) == 0.0
    assert stats.chi2_sf(1e5, 500) == 0.0
    assert stats.chi2_sf(0.0, 4) == 1.0
    assert stats.chi2_sf(-3.0, 4) == 1.0
    assert stats.chi2_sf(1e-300, 1) == pytest.approx(1.0, abs=1e-15)
    assert math.isnan(stats.chi2_sf(np.nan, 4))
    assert math.isnan(stats.chi2_sf(3.0, 0))
    assert math.isnan(stats.chi2_sf(3.0, -2))
    assert math.isnan(stats.chi2_sf(3.0, np.nan))
    mixed = stats.chi2_sf([3.0, 4.0, np.nan, 5.0], [np.nan, 2, 2, -1])
    assert np.isnan(mixed[[0, 2, 3]]).all() and mixed[1] == pytest.approx(math.exp(-2.0), rel=1e-14)
    assert isinstance(stats.chi2_sf(3.0, 2), float)
    # just above the underflow threshold the value is still accurate
    assert stats.chi2_sf(1400.0, 1) == pytest.approx(st.chi2.sf(1400.0, 1), rel=1e-8)


def test_chi2_sf_broadcasting_and_monotonicity():
    x = np.linspace(0, 60, 601)
    got = stats.chi2_sf(x[:, None], np.array([1, 5, 20]))
    assert got.shape == (601, 3)
    assert np.all(np.diff(got, axis=0) <= 0)
    assert np.all(np.diff(got, axis=1) >= 0)  # more df: heavier tail at fixed x
    np.testing.assert_allclose(got[:, 1], stats.chi2_sf(x, 5), rtol=0)


@SETTINGS
@given(
    hnp.arrays(np.float64, hs.integers(1, 20), elements=hs.floats(0, 2000)),
    hs.integers(1, 500),
)
def test_chi2_sf_elementwise_equals_batched(x, df):
    dfs = (np.arange(x.size) % df) + 1
    batched = stats.chi2_sf(x, dfs)
    scalar = np.array([stats.chi2_sf(float(v), int(k)) for v, k in zip(x, dfs, strict=True)])
    np.testing.assert_allclose(batched, scalar, rtol=1e-13, atol=0)
    np.testing.assert_allclose(batched, st.chi2.sf(x, dfs), rtol=1e-8, atol=1e-290)


# G-test ----------------------------------------------------------------------------------------


def test_gtest_gof_matches_power_divergence_without_pooling():
    r = rng(9)
    ref = r.dirichlet(np.ones(8) * 3)
    counts = r.multinomial(400, r.dirichlet(np.ones(8) * 20), size=30)
    g, df, p = stats.gtest_gof(counts, ref, min_expected=0.0)
    assert df.tolist() == [7] * 30
    for i in range(30):
        expected = st.power_divergence(counts[i], 400 * ref, lambda_="log-likelihood")
        assert g[i] == pytest.approx(expected.statistic, rel=1e-10)
        assert p[i] == pytest.approx(expected.pvalue, rel=1e-8)
    g1, df1, p1 = stats.gtest_gof(counts[3], ref, min_expected=0.0)
    assert isinstance(g1, float) and isinstance(df1, int) and isinstance(p1, float)
    assert (g1, df1, p1) == (g[3], 7, p[3])


def test_gtest_gof_pools_sparse_bins():
    ref = np.array([0.4, 0.4, 0.15, 0.03, 0.01, 0.01])
    counts = np.array([[30, 45, 10, 8, 4, 3]])  # n = 100: expected 40, 40, 15, 3, 1, 1
    g, df, p = stats.gtest_gof(counts, ref, min_expected=5.0)
    obs_pooled = [30, 45, 10, 8 + 4 + 3]
    exp_pooled = [40, 40, 15, 5]
    expected = st.power_divergence(obs_pooled, exp_pooled, lambda_="log-likelihood")
    assert df.tolist() == [3]
    assert g[0] == pytest.approx(expected.statistic, rel=1e-10)
    assert p[0] == pytest.approx(expected.pvalue, rel=1e-8)
    # the mask is per row: a larger sample keeps every bin
    g2, df2, p2 = stats.gtest_gof(counts * 10, ref, min_expected=5.0)
    assert df2.tolist() == [5]
    ref_full = st.power_divergence(counts[0] * 10, 1000 * ref, lambda_="log-likelihood")
    assert g2[0] == pytest.approx(ref_full.statistic, rel=1e-10)


def test_gtest_gof_two_sample_matches_chi2_contingency():
    r = rng(10)
    ref_counts = r.multinomial(5000, r.dirichlet(np.ones(6) * 5))
    ref_counts[ref_counts == 0] = 1
    ref_n = ref_counts.sum()
    counts = r.multinomial(800, r.dirichlet(np.ones(6) * 30), size=20)
    g, df, p = stats.gtest_gof(counts, ref_counts / ref_n, ref_n=ref_n, min_expected=0.0)
    for i in range(20):
        table = np.vstack([ref_counts, counts[i]])
        stat, pval, dof, _ = st.chi2_contingency(table, correction=False, lambda_="log-likelihood")
        assert g[i] == pytest.approx(stat, rel=1e-9)
        assert p[i] == pytest.approx(pval, rel=1e-8)
        assert df[i] == dof


def test_gtest_gof_two_sample_pooling_and_limits():
    ref = np.array([0.5, 0.3, 0.19, 0.01])
    counts = np.array([60, 25, 14, 1])
    # ref_n = 100: only column 4 (expected 1.0 / 1.0) is sparse; pooled alone it stays one bin
    g, df, p = stats.gtest_gof(counts, ref, ref_n=100, min_expected=2.0)
    table = np.array([[50.0, 30.0, 19.0, 1.0], [60.0, 25.0, 14.0, 1.0]])
    stat, pval, dof, _ = st.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    assert (g, df) == (pytest.approx(stat, rel=1e-10), dof)
    assert p == pytest.approx(pval, rel=1e-8)
    # pooling two sparse columns (expected 2.0 and 1.5 per row) into one
    ref = np.array([0.6, 0.38, 0.01, 0.01])
    g, df, p = stats.gtest_gof([55, 40, 3, 2], ref, ref_n=100, min_expected=2.5)
    table = np.array([[60.0, 38.0, 2.0], [55.0, 40.0, 5.0]])
    stat, pval, dof, _ = st.chi2_contingency(table, correction=False, lambda_="log-likelihood")
    assert df == dof == 2
    assert g == pytest.approx(stat, rel=1e-10) and p == pytest.approx(pval, rel=1e-8)
    # a huge reference sample converges to the goodness-of-fit test
    counts = np.array([30, 70, 20])
    ref = np.array([0.3, 0.5, 0.2])
    g_gof, _, p_gof = stats.gtest_gof(counts, ref)
    g_big, _, p_big = stats.gtest_gof(counts, ref, ref_n=1e12)
    assert g_big == pytest.approx(g_gof, rel=1e-6) and p_big == pytest.approx(p_gof, rel=1e-5)


def test_gtest_gof_edges():
    # n = 0 rows
    g, df, p = stats.gtest_gof([[0, 0, 0], [10, 10, 10]], [0.2, 0.3, 0.5])
    assert g[0] == 0.0 and p[0] == 1.0 and df[0] == 0 and df[1] == 2
    # single bin: nothing to test
    assert stats.gtest_gof([42], [1.0]) == (0.0, 0, 1.0)
    # all mass in one bin of a uniform reference
    g, df, p = stats.gtest_gof([300, 0, 0], [1 / 3, 1 / 3, 1 / 3])
    assert g == pytest.approx(2 * 300 * math.log(3), rel=1e-12) and df == 2 and p < 1e-100
    # observed mass where the known reference has none is impossible: G = inf, p = 0
    g, df, p = stats.gtest_gof([50, 50, 1], [0.5, 0.5, 0.0])
    assert g == math.inf and p == 0.0
    # ... but fine when the reference is a finite sample
    g, df, p = stats.gtest_gof([50, 50, 1], [0.5, 0.5, 0.0], ref_n=1000, min_expected=0.0)
    assert math.isfinite(g) and 0 < p < 1 and df == 2
    # zero-probability bins with no observations do not count as degrees of freedom
    g, df, p = stats.gtest_gof([50, 50, 0], [0.5, 0.5, 0.0], min_expected=0.0)
    assert (g, df, p) == (0.0, 1, 1.0)
    # everything below min_expected: one pooled bin, nothing to test
    g, df, p = stats.gtest_gof([1, 2, 0, 0], [0.25] * 4, min_expected=5.0)
    assert (g, df, p) == (0.0, 0, 1.0)
    # NaN input
    g, df, p = stats.gtest_gof([[np.nan, 3], [3, 3]], [0.5, 0.5])
    assert np.isnan(g[0]) and np.isnan(p[0]) and p[1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        stats.gtest_gof([1, -1], [0.5, 0.5])
    with pytest.raises(ValueError):
        stats.gtest_gof([1, 1], [0.5, 0.5], ref_n=-3)


@SETTINGS
@given(ref_and_counts(), hs.sampled_from([None, 50.0, 10_000.0]), hs.sampled_from([0.0, 1.0, 5.0]))
def test_gtest_gof_rowwise_equals_batched(data, ref_n, min_expected):
    ref, counts = data
    g, df, p = stats.gtest_gof(counts, ref, ref_n=ref_n, min_expected=min_expected)
    for i in range(len(counts)):
        gi, dfi, pi = stats.gtest_gof(counts[i], ref, ref_n=ref_n, min_expected=min_expected)
        assert gi == pytest.approx(g[i], rel=1e-13, abs=1e-13)
        assert dfi == df[i]
        assert pi == pytest.approx(p[i], rel=1e-12, abs=1e-300)
    assert np.all((p >= 0) & (p <= 1)) and np.all(g >= 0)
    assert np.all(p[counts.sum(axis=1) == 0] == 1.0)


# normal, proportions ---------------------------------------------------------------------


def test_norm_sf_matches_scipy():
    z = np.concatenate([np.linspace(-40, 40, 160_001), [1.959963984540054, -1.6448536269514722]])
    expected = st.norm.sf(z)
    got = stats.norm_sf(z)
    normal = expected > 1e-300
    # scipy's own error grows to ~2.2e-13 in the far tail (it rounds z / sqrt(2) first)
    np.testing.assert_allclose(got[normal], expected[normal], rtol=3e-13)
    np.testing.assert_allclose(got[np.abs(z) < 8], expected[np.abs(z) < 8], rtol=2e-14)
    np.testing.assert_allclose(got, expected, rtol=3e-13, atol=1e-300)
    # 40-digit reference values (mpmath)
    exact = {
        5.0: 2.866515718791939e-07,
        10.0: 7.619853024160525e-24,
        20.0: 2.7536241186062337e-89,
        30.0: 4.906713927148187e-198,
        37.5: 4.605353009581955e-308,
    }
    for zv, value in exact.items():
        assert stats.norm_sf(zv) == pytest.approx(value, rel=5e-13)
        assert stats.norm_sf(-zv) == pytest.approx(1.0 - value, rel=1e-15)
    assert stats.norm_sf(1.959963984540054) == pytest.approx(0.025, rel=1e-14)
    assert stats.norm_sf(0.0) == 0.5 and stats.norm_sf(np.inf) == 0.0 and stats.norm_sf(-np.inf) == 1.0


def one_sample_reference(x, n, p0, alternative):
    mu, sd = n * p0, math.sqrt(n * p0 * (1 - p0))
    if alternative == "greater":
        return st.norm.sf((x - 0.5 - mu) / sd)
    if alternative == "less":
        return st.norm.cdf((x + 0.5 - mu) / sd)
    return min(1.0, 2 * st.norm.sf(max(abs(x - mu) - 0.5, 0.0) / sd))


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_proportion_test_one_sample_formula(alternative):
    r = rng(11)
    n = r.integers(1, 5000, size=200)
    p0 = r.uniform(0.01, 0.99, size=200)
    x = r.binomial(n, np.clip(p0 + r.normal(0, 0.05, size=200), 0, 1))
    got = stats.proportion_test(x, n, p0, alternative)
    expected = [one_sample_reference(*args, alternative) for args in zip(x, n, p0, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_proportion_test_close_to_exact_binomial(alternative):
    n, p0 = 1000, 0.5
    xs = np.arange(n + 1)
    got = stats.proportion_test(xs, n, p0, alternative)
    exact = np.array([st.binomtest(int(x), n, p0, alternative=alternative).pvalue for x in xs])
    keep = (exact > 1e-3) & (exact < 0.5)
    np.testing.assert_allclose(got[keep], exact[keep], rtol=0.02)


def test_proportion_test_one_sided_complement():
    # with the continuity correction, P(X >= x) + P(X <= x - 1) = 1 exactly
    x = np.arange(1, 200)
    total = stats.proportion_test(x, 200, 0.3, "greater") + stats.proportion_test(x - 1, 200, 0.3, "less")
    np.testing.assert_allclose(total, 1.0, rtol=1e-14)


def test_proportion_test_two_sample_is_yates_chi_square():
    r = rng(12)
    for _ in range(50):
        n, n0 = int(r.integers(20, 3000)), int(r.integers(20, 3000))
        x0 = int(r.integers(1, n0))
        x = int(r.binomial(n, min(1.0, x0 / n0 * r.uniform(0.7, 1.3))))
        if x == 0 and x0 == 0:
            continue
        table = [[x, n - x], [x0, n0 - x0]]
        expected = st.chi2_contingency(table, correction=True)[1]
        got = stats.proportion_test(x, n, x0 / n0, "two-sided", n0=n0)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_proportion_test_two_sample_directions_and_limits():
    g = stats.proportion_test(70, 100, 0.5, "greater", n0=1000)
    l_ = stats.proportion_test(70, 100, 0.5, "less", n0=1000)
    two = stats.proportion_test(70, 100, 0.5, "two-sided", n0=1000)
    assert g < 1e-3 and l_ > 0.999 and two == pytest.approx(2 * g, rel=1e-12)
    # an infinitely large reference sample is the one-sample test
    for alt in ("greater", "less", "two-sided"):
        assert stats.proportion_test(37, 100, 0.3, alt, n0=np.inf) == pytest.approx(
            stats.proportion_test(37, 100, 0.3, alt), rel=1e-12
        )
        assert stats.proportion_test(37, 100, 0.3, alt, n0=1e13) == pytest.approx(
            stats.proportion_test(37, 100, 0.3, alt), rel=1e-5
        )


def test_proportion_test_edges():
    assert stats.proportion_test(0, 0, 0.3) == 1.0
    assert stats.proportion_test(0, 0, 0.3, "two-sided", n0=50) == 1.0
    assert stats.proportion_test(5, 10, 0.3, "two-sided", n0=0) == 1.0
    # degenerate p0
    assert stats.proportion_test(0, 100, 0.0, "greater") == 1.0
    assert stats.proportion_test(1, 100, 0.0, "greater") == 0.0
    assert stats.proportion_test(100, 100, 1.0, "less") == 1.0
    assert stats.proportion_test(99, 100, 1.0, "less") == 0.0
    assert stats.proportion_test(0, 100, 0.0, "two-sided") == 1.0
    got = stats.proportion_test([[1], [50]], [100, 200], 0.25)
    assert got.shape == (2, 2)
    assert got[1, 1] == stats.proportion_test(50, 200, 0.25)
    assert math.isnan(stats.proportion_test(np.nan, 10, 0.5))
    # float round-off from x = share * n is clipped, not rejected
    assert stats.proportion_test(10 * (1 + 1e-15), 10, 0.5) == stats.proportion_test(10, 10, 0.5)
    assert stats.proportion_test(3, 10, 1 + 1e-15, "less") == stats.proportion_test(3, 10, 1.0, "less")
    for bad in (
        lambda: stats.proportion_test(3, -10, 0.5),
        lambda: stats.proportion_test(-1, 10, 0.5),
        lambda: stats.proportion_test(3, 10, 1.5),
        lambda: stats.proportion_test(11, 10, 0.5),
        lambda: stats.proportion_test(3, 10, 0.5, "bigger"),
        lambda: stats.proportion_test(3, 10, 0.5, n0=-1),
    ):
        with pytest.raises(ValueError):
            bad()


@SETTINGS
@given(
    hnp.arrays(np.int64, hs.integers(1, 12), elements=hs.integers(0, 400)),
    hs.floats(0.0, 1.0),
    hs.sampled_from(["greater", "less", "two-sided"]),
    hs.sampled_from([None, 0.0, 30.0, 1e6]),
)
def test_proportion_test_elementwise_equals_batched(n, p0, alternative, n0):
    x = n // 3
    batched = stats.proportion_test(x, n, p0, alternative, n0=n0)
    scalar = [
        stats.proportion_test(int(a), int(b), p0, alternative, n0=n0) for a, b in zip(x, n, strict=True)
    ]
    np.testing.assert_allclose(batched, scalar, rtol=1e-13, atol=0)
    assert np.all((batched >= 0) & (batched <= 1))


# multiple testing ------------------------------------------------------------------------------


def brute_force_bh(p: np.ndarray, q: float) -> np.ndarray:
    """Textbook BH: find the largest k with p_(k) <= k q / m, reject every p <= p_(k)."""
    valid = [v for v in p.tolist() if not math.isnan(v)]
    m = len(valid)
    srt = sorted(valid)
    cutoff = None
    for k in range(m, 0, -1):
        if srt[k - 1] <= k * q / m:
            cutoff = srt[k - 1]
            break
    return np.array([cutoff is not None and not math.isnan(v) and v <= cutoff for v in p.tolist()], bool)


@settings(max_examples=200, deadline=None)
@given(
    hs.lists(
        hs.one_of(
            hs.floats(0, 1),
            hs.sampled_from([0.0, 0.001, 0.01, 0.02, 0.05, 1.0, float("nan")]),
        ),
        max_size=60,
    ),
    hs.sampled_from([0.01, 0.05, 0.1, 0.25]),
)
def test_benjamini_hochberg_matches_brute_force(values, q):
    p = np.array(values, dtype=np.float64)
    got = stats.benjamini_hochberg(p, q)
    assert got.dtype == bool and got.shape == p.shape
    np.testing.assert_array_equal(got, brute_force_bh(p, q))


def test_benjamini_hochberg_cases():
    assert stats.benjamini_hochberg([]).shape == (0,)
    assert stats.benjamini_hochberg([np.nan, np.nan]).tolist() == [False, False]
    # step-up: the 2nd smallest fails its own threshold but is rejected through the 3rd
    p = [0.001, 0.03, 0.036, 0.9]
    assert stats.benjamini_hochberg(p, q=0.05).tolist() == [True, True, True, False]
    # NaNs do not count towards m
    assert stats.benjamini_hochberg([0.02, 0.04, np.nan, np.nan], q=0.05).tolist() == [
        True,
        True,
        False,
        False,
    ]
    grid = np.array([[0.001, 0.5], [0.002, np.nan]])
    assert stats.benjamini_hochberg(grid, q=0.01).tolist() == [[True, False], [True, False]]
    with pytest.raises(ValueError):
        stats.benjamini_hochberg([0.1], q=1.5)
