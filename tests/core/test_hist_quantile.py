"""One histogram quantile (detector.core.stats.effects.hist_quantile) for the alerted latency p95, the label
delays and evidence medians: on the same bucket bounds it reads a histogram as Prometheus' histogram_quantile
reads the exported one, so an alert's p95 and a dashboard's agree up to the exported buckets' resolution."""

from __future__ import annotations

import numpy as np

from detector.core.inputs.layout import _LAT_EDGES
from detector.core.outcomes.labels import DELAY_EDGES, N_DELAY
from detector.core.outcomes.labels import hist_quantile as delay_quantile
from detector.core.stats.effects import hist_quantile


def prometheus_histogram_quantile(q: float, bounds: np.ndarray, cumulative: np.ndarray) -> float:
    """Prometheus' bucketQuantile (promql/quantile.go) for finite ``bounds`` (``le``) and cumulative counts."""
    total = cumulative[-1]
    rank = q * total
    b = int(np.searchsorted(cumulative, rank, side="left"))
    start = 0.0 if bounds[0] > 0 else bounds[0]
    lo, below = (start, 0.0) if b == 0 else (bounds[b - 1], cumulative[b - 1])
    return float(lo + (bounds[b] - lo) * (rank - below) / (cumulative[b] - below))


def test_the_latency_quantile_is_prometheus_histogram_quantile_on_the_same_buckets() -> None:
    rng = np.random.default_rng(3)
    edges = np.asarray(_LAT_EDGES)
    for _ in range(300):
        ms = rng.lognormal(rng.uniform(0, 6), rng.uniform(0.1, 1.5), size=int(rng.integers(1, 500)))
        ms = ms[ms < edges[-1]]
        if ms.size == 0:
            continue
        h = np.bincount(np.searchsorted(edges, ms, side="right"), minlength=len(edges) + 1).astype(float)
        # the window's bin k is [edges[k-1], edges[k]); Prometheus' bucket le=edges[k-1] counts bins 0..k-1
        cum = np.cumsum(h)[:-1]
        for q in (0.5, 0.9, 0.95, 0.99):
            want = prometheus_histogram_quantile(q, edges, cum)
            got = float(hist_quantile(h[None, :], edges, q)[0])
            assert np.isclose(got, want, rtol=1e-12, atol=1e-12), (q, got, want)


def test_label_delays_use_the_same_function_log_linear_inside_a_bin() -> None:
    h = np.zeros(N_DELAY)
    h[[4, 9, 20]] = [5.0, 10.0, 1.0]
    for q in (0.1, 0.5, 0.9):
        assert delay_quantile(h, q) == float(hist_quantile(h, DELAY_EDGES, q, log=True))
    assert np.isnan(delay_quantile(np.zeros(N_DELAY), 0.5))
