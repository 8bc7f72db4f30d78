"""Tests for detector.core.reference.build: numpy / hand computations as the oracle, JSON round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

from detector.core.reference.build import (
    ProfileError,
    build_reference,
    categorical_profile,
    label_values,
    numeric_profile,
    to_text,
)
from detector.core.reference.profile import CategoricalProfile, NumericProfile, Reference

QS = np.arange(1, 100) / 100


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def obj(values) -> np.ndarray:
    a = np.empty(len(values), dtype=object)
    a[:] = list(values)
    return a


def expected_edges(v: np.ndarray) -> np.ndarray:
    """The documented construction, straight from numpy."""
    q = np.quantile(v, QS, method="inverted_cdf")
    return np.unique(np.concatenate(([v.min()], q, [np.nextafter(v.max(), np.inf)])))


def check_bins(p: NumericProfile, finite: np.ndarray) -> None:
    e = np.asarray(p.edges)
    f = np.asarray(p.freqs)
    assert len(e) >= 2 and np.all(np.diff(e) > 0), "edges strictly increasing"
    assert len(f) == len(e) + 1
    assert f.sum() == pytest.approx(1.0, abs=1e-12)
    bins = np.searchsorted(e, finite, side="right")
    np.testing.assert_allclose(f, np.bincount(bins, minlength=len(e) + 1) / len(finite), rtol=0, atol=1e-15)
    assert f[0] == 0.0 and f[-1] == 0.0, "below-min and above-max bins are empty in training"
    assert e[0] == finite.min() and e[-1] == np.nextafter(finite.max(), np.inf)


# ----------------------------------------------------------------------------- numeric features
def test_numeric_profile_matches_numpy():
    r = rng(1)
    x = r.lognormal(3, 1, 20_000).round(2)
    x[r.random(len(x)) < 0.05] = np.nan
    x[:3] = [np.inf, -np.inf, 0.0]
    x[3:10] = 0.0
    p = numeric_profile(x)
    v = x[np.isfinite(x)]
    assert p.count == len(x)
    assert p.missing == len(x) - len(v)  # NaN and +-inf are missing
    assert p.n == len(v)
    np.testing.assert_array_equal(p.edges, expected_edges(v))
    check_bins(p, v)
    assert p.min == v.min() and p.max == v.max()
    assert p.median == pytest.approx(np.median(v))
    assert p.iqr == pytest.approx(np.quantile(v, 0.75) - np.quantile(v, 0.25))
    assert p.mean == pytest.approx(v.mean()) and p.std == pytest.approx(v.std())
    vals, cnt = np.unique(v, return_counts=True)
    assert p.top_value == vals[np.argmax(cnt)]
    assert p.top_share == pytest.approx(cnt.max() / len(v))
    nz = v[v != 0]
    assert p.log_abs_mean == pytest.approx(np.log(np.abs(nz)).mean())
    assert p.log_abs_std == pytest.approx(np.log(np.abs(nz)).std())
    assert p.zero_share == pytest.approx((v == 0).mean())
    assert p.integer is False
    assert isinstance(p.edges[0], float) and isinstance(p.freqs[0], float) and isinstance(p.min, float)


def test_discrete_feature_every_interior_bin_holds_training_values():
    x = rng(2).poisson(2, 10_000).astype(float)
    p = numeric_profile(x)
    check_bins(p, x)
    # edges are observed values, so every interior bin [e_k, e_k+1) is non-empty
    assert set(p.edges[:-1]) <= set(np.unique(x).tolist())
    assert all(f > 0 for f in p.freqs[1:-1])
    assert p.integer is True
    assert p.top_value == 2.0 or p.top_value == 1.0


def test_numeric_hand_computed():
    p = numeric_profile(np.array([1.0, 2.0, 2.0, 4.0, np.nan]))
    assert p.edges == [1.0, 2.0, 4.0, np.nextafter(4.0, np.inf)]
    assert p.freqs == [0.0, 0.25, 0.5, 0.25, 0.0]
    assert (p.count, p.missing, p.min, p.max, p.median, p.iqr) == (5, 1, 1.0, 4.0, 2.0, 0.75)  # 2.5 - 1.75
    assert (p.top_value, p.top_share, p.zero_share, p.integer) == (2.0, 0.5, 0.0, True)
    assert p.mean == 2.25
    assert p.log_abs_mean == pytest.approx((0 + 2 * math.log(2) + math.log(4)) / 4)


def test_searchsorted_convention_values_at_edges():
    p = numeric_profile(np.array([0.0, 1.0, 2.0, 3.0] * 25))
    e = np.asarray(p.edges)
    # a value equal to an edge falls in the bin that *starts* at that edge (side="right")
    assert np.searchsorted(e, 0.0, side="right") == 1
    assert np.searchsorted(e, -1.0, side="right") == 0  # below the training minimum
    assert np.searchsorted(e, 3.0, side="right") == len(e) - 1  # the maximum is inside
    assert np.searchsorted(e, 3.0000001, side="right") == len(e)  # above the training maximum
    assert p.freqs == [0.0, 0.25, 0.25, 0.25, 0.25, 0.0]


def test_constant_column():
    p = numeric_profile(np.full(1000, 7.5))
    assert p.edges == [7.5, np.nextafter(7.5, np.inf)]
    assert p.freqs == [0.0, 1.0, 0.0]
    assert (p.min, p.max, p.median, p.iqr, p.std, p.top_value, p.top_share) == (7.5, 7.5, 7.5, 0.0, 0.0, 7.5, 1.0)
    z = numeric_profile(np.zeros(10))
    assert z.zero_share == 1.0 and z.log_abs_mean is None and z.log_abs_std is None
    assert z.edges == [0.0, np.nextafter(0.0, 1.0)]


def test_all_missing_column():
    p = numeric_profile(np.array([np.nan, np.inf, np.nan]))
    assert (p.count, p.missing, p.n, p.missing_rate) == (3, 3, 0, 1.0)
    assert p.edges == [] and p.freqs == []
    assert p.min is None and p.median is None and p.top_value is None and p.top_share == 0.0
    ref = build_reference({"a": np.full(5, np.nan), "b": np.arange(5.0)})
    assert isinstance(ref.features["a"], NumericProfile) and ref.features["a"].n == 0


def test_negative_and_huge_values():
    x = np.array([-1e308, -5.0, 0.0, 3.0, 1e308] * 10)
    p = numeric_profile(x)
    check_bins(p, x)
    assert p.edges[-1] == np.nextafter(1e308, np.inf)


@settings(max_examples=80, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hs.integers(1, 300),
        elements=hs.one_of(
            hs.floats(-1e6, 1e6, allow_nan=False), hs.sampled_from([0.0, 1.0, np.nan, np.inf, -3.5])
        ),
    )
)
def test_numeric_profile_invariants(x):
    p = numeric_profile(x)
    v = x[np.isfinite(x)]
    assert p.count == len(x) and p.missing == len(x) - len(v)
    if len(v) == 0:
        assert p.edges == []
        return
    check_bins(p, v)
    np.testing.assert_array_equal(p.edges, expected_edges(v))
    assert p.min <= p.median <= p.max


def test_n_fine_controls_the_grid():
    x = rng(3).normal(size=5000)
    assert len(numeric_profile(x, n_fine=10).edges) == 9 + 2
    assert len(numeric_profile(x, n_fine=100).edges) == 99 + 2


# ----------------------------------------------------------------------------- categorical features
def test_categorical_top_k_and_other_share():
    values = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"] * 5 + ["e"] * 5 + [None] * 7 + ["NA"] * 3
    p = categorical_profile(obj(values), top_k=3)
    assert isinstance(p, CategoricalProfile)
    assert (p.count, p.missing, p.n) == (110, 10, 100)  # None and "NA" are missing
    assert p.categories == {"a": 0.5, "b": 0.3, "c": 0.1}
    assert list(p.categories) == ["a", "b", "c"]  # most frequent first
    assert p.other_share == pytest.approx(0.1)
    assert p.n_distinct == 5
    assert (p.top_value, p.top_share) == ("a", 0.5)
    full = categorical_profile(obj(values))
    assert sum(full.categories.values()) == pytest.approx(1.0) and full.other_share == 0.0


def test_categorical_ties_are_broken_by_value_and_all_missing():
    p = categorical_profile(obj(["y", "x", "z", "x", "y", "z"]), top_k=2)
    assert list(p.categories) == ["x", "y"]
    e = categorical_profile(obj([None, None]))
    assert (e.n, e.categories, e.other_share, e.n_distinct, e.top_value, e.top_share) == (0, {}, 0.0, 0, None, 0.0)


def test_feature_type_inference_and_overrides():
    n = 40
    cols = {
        "f": np.linspace(0, 1, n),
        "i": np.arange(n),
        "b": np.arange(n) % 2 == 0,
        "s": obj(["x", "y"] * (n // 2)),
        "zip": np.array([1234.0, 99501.0] * (n // 2)),
        "txtnum": obj(["1.5", "NA", "2", None] * (n // 4)),
    }
    ref = build_reference(cols, types={"zip": "categorical", "txtnum": "numeric"})
    kinds = {k: p.type for k, p in ref.features.items()}
    assert kinds == {"f": "numeric", "i": "numeric", "b": "numeric", "s": "categorical",
                     "zip": "categorical", "txtnum": "numeric"}  # fmt: skip
    assert ref.features["b"].mean == 0.5 and ref.features["b"].integer
    assert ref.features["zip"].categories == {"1234": 0.5, "99501": 0.5}
    t = ref.features["txtnum"]
    assert (t.missing, t.min, t.max) == (n // 2, 1.5, 2.0)


def test_numeric_override_on_text_names_the_column():
    with pytest.raises(ProfileError, match=r"'code'.*'A1'"):
        build_reference({"code": obj(["1", "A1", "2"])}, types={"code": "numeric"})
    with pytest.raises(ProfileError, match="numeric' or 'categorical"):
        build_reference({"x": np.ones(3)}, types={"x": "number"})
    with pytest.raises(ProfileError, match="'nope'.*available columns: x"):
        build_reference({"x": np.ones(3)}, types={"nope": "numeric"})


def test_non_feature_columns():
    n = 60
    cols = {
        "prediction_id": obj([str(i) for i in range(n)]),
        "id": np.arange(n, dtype=float),
        "ts": np.arange(n, dtype=float),
        "timestamp": np.arange(n, dtype=float),
        "time": np.arange(n, dtype=float),
        "event_time": np.arange(n, dtype=float),
        "y": np.arange(n) % 2 == 0,
        "s": np.linspace(0, 1, n),
        "region": obj(["eu"] * n),
        "drop": np.zeros(n),
        "amount": np.linspace(1, 2, n),
    }
    ref = build_reference(cols, label_column="y", score_column="s", slice_columns=["region"], exclude=["drop"])
    assert list(ref.features) == ["amount"]
    assert ref.label_column == "y" and ref.score_column == "s"
    assert ref.n_rows == n


# ----------------------------------------------------------------------------- label and score
def test_label_base_rate_numeric_bool_and_text():
    y = np.array([0.0, 1.0, 1.0, np.nan, 0.0, 1.0])
    ref = build_reference({"x": np.arange(6.0), "y": y}, label_column="y")
    assert ref.label_base_rate == 0.6 and ref.label_count == 5
    ref = build_reference({"x": np.arange(4.0), "y": np.array([True, False, False, False])}, label_column="y")
    assert ref.label_base_rate == 0.25 and ref.label_count == 4
    ref = build_reference(
        {"x": np.arange(6.0), "y": obj(["true", "False", "1", "0", None, " TRUE "])}, label_column="y"
    )
    assert ref.label_base_rate == 0.6 and ref.label_count == 5
    np.testing.assert_array_equal(label_values("y", obj([True, 0, "1.0", "NA"])), [1.0, 0.0, 1.0, np.nan])


def test_label_with_other_values_is_an_error_naming_column_and_values():
    with pytest.raises(ProfileError, match=r"label column 'y'.*2 row\(s\).*2\.0, 3\.0"):
        build_reference({"x": np.arange(5.0), "y": np.array([0, 1, 2, 3, 1])}, label_column="y")
    with pytest.raises(ProfileError, match=r"label column 'y'.*'maybe'"):
        build_reference({"x": np.arange(3.0), "y": obj(["yes", "maybe", "1"])}, label_column="y")


def test_no_labels_and_score_profile():
    r = rng(4)
    s = r.beta(1, 5, 5000)
    ref = build_reference({"x": np.arange(5000.0), "y": np.full(5000, np.nan), "s": s}, label_column="y", score_column="s")
    assert ref.label_base_rate is None and ref.label_count == 0
    assert ref.score is not None
    np.testing.assert_array_equal(ref.score.edges, expected_edges(s))
    check_bins(ref.score, s)


def test_missing_roles_and_bad_shapes():
    with pytest.raises(ProfileError, match="label column 'y' not found; available columns: a, b"):
        build_reference({"a": np.ones(3), "b": np.ones(3)}, label_column="y")
    with pytest.raises(ProfileError, match="slice column 'r' not found"):
        build_reference({"a": np.ones(3)}, slice_columns=["r"])
    with pytest.raises(ProfileError, match="different lengths"):
        build_reference({"a": np.ones(3), "b": np.ones(4)})
    with pytest.raises(ProfileError, match="no rows"):
        build_reference({"a": np.ones(0)})


# ----------------------------------------------------------------------------- slices
def slice_data(seed: int = 5):
    r = rng(seed)
    sizes = {"eu": 400, "us": 250, "apac": 100, "tiny": 29, "edge": 30}
    region = obj([k for k, n in sizes.items() for _ in range(n)] + [None] * 40)
    n = len(region)
    perm = r.permutation(n)
    region = region[perm]
    amount = r.lognormal(3, 1, n)
    amount[region == "eu"] *= 3
    y = (r.random(n) < np.where(region == "us", 0.5, 0.1)).astype(float)
    score = r.beta(2, 5, n)
    country = obj(r.choice(["DE", "FR", "US"], n))
    return {"region": region, "amount": amount, "country": country, "y": y, "score": score}


def test_slice_profiles():
    cols = slice_data()
    ref = build_reference(cols, label_column="y", score_column="score", slice_columns=["region"])
    sl = ref.slices["region"]
    assert list(sl) == ["eu", "us", "apac", "edge"]  # by count; < 30 rows ("tiny") and missing skipped
    glob = ref.features["amount"]
    for value, sp in sl.items():
        m = cols["region"] == value
        assert sp.count == int(m.sum())
        a = sp.features["amount"]
        assert isinstance(a, NumericProfile)
        # binned on the global edges so slice and global histograms compare bin by bin
        assert a.edges == glob.edges
        x = cols["amount"][m]
        np.testing.assert_allclose(
            a.freqs, np.bincount(np.searchsorted(glob.edges, x, side="right"), minlength=len(glob.edges) + 1) / len(x)
        )
        assert a.median == pytest.approx(np.median(x)) and a.count == len(x)
        c = sp.features["country"]
        assert isinstance(c, CategoricalProfile) and c.n == len(x)
        assert sp.label_base_rate == pytest.approx(cols["y"][m].mean())
        assert sp.score is not None and sp.score.edges == ref.score.edges
        assert sp.score.n == len(x)
    assert sl["us"].label_base_rate > sl["eu"].label_base_rate


def test_slice_values_are_capped_at_50():
    n_values = 60
    region = obj([f"r{i:02d}" for i in range(n_values) for _ in range(30 + i)])
    ref = build_reference({"region": region, "x": np.arange(len(region), dtype=float)}, slice_columns=["region"])
    kept = ref.slices["region"]
    assert len(kept) == 50
    assert list(kept)[0] == "r59" and "r00" not in kept  # the most frequent 50


def test_numeric_slice_column_uses_string_form():
    region = np.repeat([1.0, 2.0], 40)
    ref = build_reference({"region": region, "x": np.arange(80.0)}, slice_columns=["region"])
    assert set(ref.slices["region"]) == {"1", "2"}


# ----------------------------------------------------------------------------- serialisation
def test_reference_round_trip(tmp_path):
    cols = slice_data()
    cols["empty"] = np.full(len(cols["y"]), np.nan)
    cols["const"] = np.full(len(cols["y"]), 3.0)
    ref = build_reference(
        cols, label_column="y", score_column="score", slice_columns=["region"], source="train.csv", model="fraud"
    )
    assert ref.model == "fraud" and ref.source == "train.csv" and ref.created
    for name in ("ref.json", "ref.json.gz"):
        ref.save(tmp_path / name)
        back = Reference.load(tmp_path / name)
        assert back == ref
        assert back.to_json() == ref.to_json()
    assert Reference.from_dict(ref.to_dict()) == ref


def test_to_text():
    assert [to_text(v) for v in (1234.0, -2.0, 12.5, 1e20, True, False, 7, "x", "", "null", " None ")] == [
        "1234", "-2", "12.5", "1e+20", "true", "false", "7", "x", None, None, None,
    ]  # fmt: skip


def test_profile_is_fast_enough():
    """200k rows x 6 features in well under the budget (1M x 25 takes a few seconds)."""
    import time

    r = rng(6)
    n = 200_000
    cols = {f"x{i}": r.normal(size=n) for i in range(5)}
    cols["c"] = obj(r.choice(["a", "b", "c", "d"], n))
    t = time.perf_counter()
    build_reference(cols)
    assert time.perf_counter() - t < 10


def test_time_column_adds_hourly_profiles_and_round_trips(tmp_path):
    r = rng(8)
    n = 24 * 200
    ts = 1795564800.0 + np.arange(n) * 18.0  # 24 hours
    hour = (ts // 3600) % 24
    cols = {
        "when": obj([f"{np.datetime64(int(t), 's')}Z" for t in ts]),  # RFC 3339 strings
        "amount": r.lognormal(3, 1, n) * np.where(hour < 6, 5.0, 1.0),  # seasonal
        "flat": r.normal(size=n),
        "empty": np.full(n, np.nan),
        "region": obj(r.choice(["eu", "us"], n)),
    }
    ref = build_reference(cols, time_column="when", slice_columns=["region"])
    assert "when" not in ref.features and ref.time_column == "when"
    assert "amount" in ref.hourly["features"] and "empty" not in ref.hourly["features"]
    assert sum(ref.hourly["counts"]) == n
    ref.save(tmp_path / "ref.json")
    assert Reference.load(tmp_path / "ref.json") == ref
    with pytest.raises(ProfileError, match="time column 'nope' not found"):
        build_reference(cols, time_column="nope")
