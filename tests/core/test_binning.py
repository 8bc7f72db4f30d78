"""The fine-bin lookup gives exactly what ``np.searchsorted(edges, x, side="right")`` gives."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from detector.core.inputs.binning import Bins

_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_edges = st.one_of(
    arrays(np.float64, st.integers(0, 120), elements=st.floats(-1e6, 1e6)).map(np.sort),
    st.sampled_from([np.array([0.0, 1.0, np.nextafter(1.0, 2.0)]), np.array([5.0]), np.array([-np.inf, 0.0, 1.0]),
                     np.array([0.0, 0.0, 0.0, 1.0]), np.linspace(0, 1, 21), np.array([-1e308, 1e308])]),
)


@settings(max_examples=200, deadline=None)
@given(edges=st.lists(_edges, min_size=1, max_size=5), data=st.data())
def test_same_bins_as_searchsorted(edges, data):
    n = data.draw(st.integers(0, 60))
    X = np.empty((len(edges), n))
    for j, e in enumerate(edges):
        pool = [*e.tolist(), *np.nextafter(e, np.inf).tolist(), *np.nextafter(e, -np.inf).tolist()] if e.size else [0.0]
        X[j] = [data.draw(st.one_of(_floats, st.sampled_from(pool))) for _ in range(n)]
    got = Bins(edges).index(X)
    want = np.stack([np.searchsorted(e, X[j], side="right") for j, e in enumerate(edges)]) if n else got
    assert got.dtype == np.int64 and np.array_equal(got, want)


def test_values_on_a_quantile_grid():
    rng = np.random.default_rng(2)
    edges = [np.quantile(rng.lognormal(3, 1, 10_000), np.linspace(0, 1, 101)), np.unique(rng.poisson(2.0, 500)).astype(float)]
    X = np.stack([rng.lognormal(3, 1, 5000).round(2), rng.poisson(2.0, 5000).astype(float)])
    X[:, ::50] = np.nan
    X[0, :101] = edges[0]
    got = Bins(edges).index(X)
    assert np.array_equal(got, np.stack([np.searchsorted(e, X[j], side="right") for j, e in enumerate(edges)]))
