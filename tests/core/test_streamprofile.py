"""The bounded-memory reference: row sample, exact column summaries, and the profile built from them."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from detector.core.reference.build import ProfileError, build_reference
from detector.core.reference.colsummary import FrequentCounter, NumericSummary
from detector.core.reference.reservoir import RowSample
from detector.core.reference.streamed import TableProfiler, quantile_rank_error


def table(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    amount = np.round(np.exp(r.normal(3, 1, n)), 2)
    amount[r.random(n) < 0.03] = np.nan
    country = np.array(["DE", "FR", "US", "IT", "ES"], dtype=object)[r.choice(5, n, p=[0.4, 0.3, 0.15, 0.1, 0.05])]
    country[r.random(n) < 0.02] = None
    region = np.array(["eu", "us", "apac"], dtype=object)[r.choice(3, n, p=[0.6, 0.3, 0.1])]
    score = r.random(n).round(4)
    return {
        "ts": 1.7e9 + r.integers(0, 30 * 86400, n).astype(np.float64),
        "amount": amount,
        "n_tx": r.poisson(2, n).astype(np.float64),
        "zero_heavy": np.where(r.random(n) < 0.7, 0.0, r.normal(5, 1, n)),
        "country": country,
        "region": region,
        "score": score,
        "y": (r.random(n) < 0.1 + 0.3 * (region == "apac")).astype(np.float64),
    }


ROLES = dict(label_column="y", score_column="score", slice_columns=["region"], time_column="ts")


def feed(p: TableProfiler, cols: dict[str, np.ndarray], chunk: int) -> TableProfiler:
    n = len(next(iter(cols.values())))
    for s in range(0, n, chunk):
        p.update(s, {k: v[s : s + chunk] for k, v in cols.items()})
    return p


def comparable(ref) -> dict:
    d = ref.to_dict()
    d.pop("created"), d.pop("sample")
    return d


def test_a_table_within_the_budget_gives_exactly_the_in_memory_reference() -> None:
    cols = table(6_000)
    whole = build_reference(cols, **ROLES)
    streamed = feed(TableProfiler(sample_rows=6_000, label="y", score="score", slices=["region"]), cols, 1_000)
    ref = streamed.reference(**ROLES)
    assert comparable(ref) == comparable(whole)
    assert ref.sample["rows_read"] == ref.sample["rows_sampled"] == 6_000 and ref.sample["quantile_rank_error"] == 0.0


def test_the_sample_does_not_depend_on_chunking_and_is_in_table_order() -> None:
    cols = {"x": np.arange(50_000, dtype=np.float64)}
    rows = []
    for chunk in (50_000, 4_096, 777):
        s = RowSample(1_000, seed=7)
        for start in range(0, 50_000, chunk):
            s.add(start, {"x": cols["x"][start : start + chunk]})
        rows.append(s.row_numbers())
        np.testing.assert_array_equal(s.columns()["x"], rows[-1].astype(np.float64))
    assert all(np.array_equal(rows[0], r) for r in rows[1:])
    assert np.all(np.diff(rows[0]) > 0) and len(rows[0]) == 1_000
    assert not np.array_equal(rows[0], RowSample(1_000, seed=8).row_numbers())  # another seed, another sample


def test_every_row_is_equally_likely_to_be_sampled() -> None:
    n, m, trials = 400, 40, 500
    hits = np.zeros(n)
    for seed in range(trials):
        s = RowSample(m, seed=seed)
        for start in range(0, n, 64):
            s.add(start, {"x": np.arange(start, min(n, start + 64), dtype=np.float64)})
        hits[s.row_numbers()] += 1
    expected = trials * m / n  # 50 per row
    sd = math.sqrt(trials * (m / n) * (1 - m / n))  # binomial
    assert abs(hits.mean() - expected) < 1e-9
    assert np.abs(hits - expected).max() < 5 * sd  # no row (first, last, chunk edges) favoured
    first, last = hits[:200].sum(), hits[200:].sum()
    assert abs(first - last) < 4 * math.sqrt(2 * trials * m / 2)


def test_sampled_reference_keeps_exact_statistics_from_every_row() -> None:
    n, m = 60_000, 5_000
    cols = table(n, seed=3)
    whole = build_reference(cols, **ROLES)
    p = feed(TableProfiler(sample_rows=m, seed=1, label="y", score="score", slices=["region"]), cols, 7_000)
    ref = p.reference(**ROLES)
    assert ref.n_rows == n and ref.sample["rows_read"] == n and ref.sample["rows_sampled"] == m
    assert ref.label_count == whole.label_count and ref.label_base_rate == pytest.approx(whole.label_base_rate, abs=1e-12)
    for name in ("amount", "n_tx", "zero_heavy"):
        a, b = ref.features[name], whole.features[name]
        assert (a.count, a.missing, a.min, a.max, a.integer) == (b.count, b.missing, b.min, b.max, b.integer)
        assert a.mean == pytest.approx(b.mean, rel=1e-12) and a.std == pytest.approx(b.std, rel=1e-10)
        assert a.zero_share == pytest.approx(b.zero_share, abs=1e-15)
        assert a.edges[0] == b.edges[0] and a.edges[-1] == b.edges[-1] and sum(a.freqs) == pytest.approx(1.0)
    c, w = ref.features["country"], whole.features["country"]
    assert (c.count, c.missing, c.n_distinct, c.top_value) == (w.count, w.missing, w.n_distinct, w.top_value)
    assert c.categories == pytest.approx(w.categories, abs=1e-15)
    assert ref.score.mean == pytest.approx(whole.score.mean, rel=1e-12) and ref.score.count == n
    for value, sp in ref.slices["region"].items():  # exact slice counts and label rates
        ws = whole.slices["region"][value]
        assert sp.count == ws.count and sp.label_base_rate == pytest.approx(ws.label_base_rate, abs=1e-12)
        f = sp.features["amount"]
        assert f.count == ws.count and f.missing == pytest.approx(ws.features["amount"].missing, rel=0.3, abs=30)
    assert sum(sp.count for sp in ref.slices["region"].values()) == n  # global and slices on one scale
    assert ref.hourly and ref.audit  # computed on the sample
    for sp in ref.slices["region"].values():  # binned on the global edges, as corrected
        assert sp.features["amount"].edges == ref.features["amount"].edges
        assert sp.score.edges == ref.score.edges
    for name, hours in ref.hourly.get("features", {}).items():
        assert all(h is None or h.type != "numeric" or h.edges == ref.features[name].edges for h in hours)


def test_sampled_quantile_edges_are_within_the_stated_rank_error() -> None:
    n, m = 200_000, 20_000
    r = np.random.default_rng(11)
    x = r.lognormal(2, 1.5, n)
    p = feed(TableProfiler(sample_rows=m, seed=2), {"x": x}, 30_000)
    ref = p.reference()
    eps = ref.sample["quantile_rank_error"]
    assert eps == pytest.approx(quantile_rank_error(m), abs=1e-6) and 0.013 < eps < 0.014
    s = np.sort(x)
    ranks = np.searchsorted(s, ref.features["x"].edges[1:-1], side="right") / n
    interior = np.arange(1, len(ranks) + 1) / 100  # the 1%..99% quantile grid
    assert np.abs(ranks - interior).max() <= eps
    assert ref.features["x"].median == pytest.approx(np.median(x), rel=0.05)


def test_a_column_absent_from_every_sampled_row_is_still_profiled_as_present() -> None:
    p = TableProfiler(sample_rows=10, seed=0)
    p.update(0, {"x": np.arange(1000.0)})
    p.update(1000, {"x": np.arange(1000.0), "rare": np.full(1000, None, dtype=object)})
    p.update(2000, {"x": np.arange(5.0), "rare": np.array(["a"] * 5, dtype=object)})
    ref = p.reference()
    assert ref.features["rare"].count == 2005 and ref.features["rare"].missing == 2000
    assert ref.features["rare"].categories == {"a": 1.0}


def test_label_that_is_not_binary_fails_fast_naming_the_rows_or_is_dropped_when_only_a_default() -> None:
    bad = {"y": np.array([0.0, 1.0, 2.0, 1.0]), "x": np.arange(4.0)}
    strict = TableProfiler(label="y", label_strict=True)
    strict.update(0, {"y": np.zeros(4), "x": np.arange(4.0)})
    with pytest.raises(ProfileError, match=r"label column 'y'.*rows 5-8"):
        strict.update(4, bad)
    lenient = TableProfiler(label="y")
    lenient.update(0, bad)
    assert not lenient.label_binary()


def test_declared_numeric_text_column_is_parsed_chunk_by_chunk() -> None:
    p = TableProfiler(types={"code": "numeric"})
    p.update(0, {"code": np.array(["1", "2", None], dtype=object)})
    with pytest.raises(ProfileError, match=r"declared numeric.*rows 4-5"):
        p.update(3, {"code": np.array(["3", "x"], dtype=object)})


def test_a_wide_table_gets_fewer_sampled_rows() -> None:
    p = TableProfiler(sample_rows=10_000, sample_cells=20_000)
    cols = {f"c{i}": np.arange(5_000.0) for i in range(10)}
    p.update(0, cols)
    p.update(5_000, cols)
    assert p.reference().sample["rows_sampled"] == 2_000


def test_numeric_summary_matches_numpy_over_chunks() -> None:
    r = np.random.default_rng(5)
    x = np.concatenate([r.normal(1e6, 1, 10_000), [np.nan, np.inf, -np.inf, 0.0]])
    s = NumericSummary()
    for part in np.array_split(x, 13):
        s.update(part)
    fin = x[np.isfinite(x)]
    assert (s.rows, s.n, s.missing, s.zeros) == (len(x), len(fin), 3, 1)
    assert s.mean == pytest.approx(fin.mean(), rel=1e-14) and s.std == pytest.approx(fin.std(), rel=1e-9)
    la = np.log(np.abs(fin[fin != 0]))
    assert s.log_mean == pytest.approx(la.mean(), rel=1e-12) and s.log_std == pytest.approx(la.std(), rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_frequent_counter_error_bound_holds_on_skewed_streams(seed: int) -> None:
    r = np.random.default_rng(seed)
    values = [f"v{int(v)}" for v in r.zipf(1.3, 50_000) % 5_000]
    c = FrequentCounter(capacity=200)
    for s in range(0, len(values), 3_000):
        c.update(values[s : s + 3_000])
    truth = Counter(values)
    assert not c.exact and c.n == len(values) and len(c.counts) <= 200
    assert c.error <= len(values) / (200 // 2 + 1)
    for v, true in truth.items():
        est = c.counts.get(v, 0)
        assert true - c.error <= est <= true
    heavy = [v for v, t in truth.items() if t > c.error]
    assert all(v in c.counts for v in heavy)
