"""Build the training :class:`~detector.core.reference.profile.Reference` from columns (pure: no I/O).

>>> import numpy as np
>>> ref = build_reference({"amount": np.array([1.0, 2.0, 2.0, np.nan]),
...                        "country": np.array(["DE", "FR", "DE", None], dtype=object),
...                        "y": np.array([0.0, 1.0, 0.0, 1.0])}, label_column="y")
>>> ref.features["amount"].edges, ref.features["amount"].missing, ref.label_base_rate
([1.0, 2.0, 2.0000000000000004], 1, 0.5)
>>> ref.features["country"].categories
{'DE': 0.6666666666666666, 'FR': 0.3333333333333333}

Feature types (documented, deliberately simple)
    * float/int/bool arrays -> ``numeric`` (booleans as 0/1);
    * object / str arrays -> ``categorical`` (values are compared as strings; see
      :func:`to_text` for how non-strings are spelled);
    * ``types={"zip": "categorical"}`` turns numbers into their string form (``1234.0`` ->
      ``"1234"``); ``types={"x": "numeric"}`` parses a text column as floats (an unparseable value
      is an error naming the column).

Missing values: NaN, +-inf (numeric) and None / the text missing tokens (categorical).

Code-like numbers: a numeric feature with at most :data:`MAX_CODES` distinct values (version
codes such as ``7.1``, small counts) also gets a categorical view of its values in their text
form (``Reference.codes``, globally and per slice). A CSV cannot say whether ``7.1`` is a number
or a code; when serving sends such a feature as JSON strings the engine compares it as
categories (:mod:`detector.core.reference.reconcile`) instead of paging a type change.

How a column is read (types, missing values, labels) is :mod:`detector.core.reference.columns`;
how one feature or slice column becomes a profile, :mod:`detector.core.reference.features`; this
module decides which columns are what and puts the reference together.

Not features: the label, score and slice columns, id columns (:data:`ID_COLUMNS`), time columns
(:data:`TIME_COLUMNS`) and ``exclude``.

Fine edges are ``unique([min, quantiles, nextafter(max, +inf)])`` with the quantiles taken with
``method="inverted_cdf"``: every edge is an observed value, so every interior training bin holds at
least one value (linear interpolation would invent edges between two neighbouring values of a
discrete feature and leave empty bins that make PSI/JS blow up).

Numeric statistics are over the finite values: ``std`` is the population standard deviation
(ddof=0), ``median``/``iqr`` use numpy's default (linear) quantiles, ``top_value`` is the most
frequent exact value (the smallest one on ties) and ``zero_share`` is the share of exact zeros.
A feature with no finite value at all keeps ``edges == freqs == []`` and ``None`` statistics
(``min``, ``max``, ``median``, ``iqr``, ``mean``, ``std``), so check ``profile.n`` before using them.

Slices: for every slice column, its :data:`MAX_SLICE_VALUES` most frequent values with at least
:data:`MIN_SLICE_ROWS` rows get a :class:`SliceProfile`. A slice's numeric profiles (and its score
profile) are binned on the *global* edges of that feature, so slice and global histograms are
comparable bin by bin (and global minus slice gives the complement); their other statistics are
the slice's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from detector.core.reference.columns import (
    MISSING_TOKENS,
    ProfileError,
    _as_float,
    _as_text,
    _base_rate,
    _label01,
    _typed,
    label_values,
    to_text,
    typed_values,
)
from detector.core.reference.features import (
    MAX_CODES,
    MAX_SLICE_VALUES,
    MIN_SLICE_ROWS,
    _categorical,
    _code_like,
    _numeric,
    _profile,
    _quantile_grid,
    _slices,
    categorical_profile,
    numeric_profile,
)
from detector.core.reference.profile import NumericProfile, Reference

__all__ = [
    "ID_COLUMNS",
    "TIME_COLUMNS",
    "MAX_CODES",
    "MAX_SLICE_VALUES",
    "MIN_SLICE_ROWS",
    "MISSING_TOKENS",
    "ProfileError",
    "build_reference",
    "categorical_profile",
    "label_values",
    "numeric_profile",
    "to_text",
    "typed_values",
]

ID_COLUMNS = ("prediction_id", "id")
TIME_COLUMNS = ("ts", "timestamp", "time", "event_time")


# ----------------------------------------------------------------------------- entry point
def build_reference(
    columns: Mapping[str, np.ndarray],
    *,
    label_column: str | None = None,
    score_column: str | None = None,
    slice_columns: Sequence[str] = (),
    exclude: Iterable[str] = (),
    types: Mapping[str, str] | None = None,
    top_k_categories: int = 1000,
    n_fine: int = 100,
    source: str | None = None,
    model: str | None = None,
    time_column: str | None = None,
    multivariate: bool = True,
) -> Reference:
    """Profile every feature column (plus label, score and slices) into a :class:`Reference`.

    ``n_fine`` sets the quantile grid: edges come from the ``1/n_fine .. (n_fine-1)/n_fine``
    quantiles (1%..99% for the default 100). ``top_k_categories`` caps the stored categories.
    ``time_column`` (epoch seconds/ms or RFC 3339 strings) adds hour-of-day profiles of the
    seasonal features (:func:`detector.core.reference.hourly.build_hourly`) and is never a feature.
    ``multivariate`` fits the joint structure of the numeric features (:func:`add_multivariate`).
    """
    if n_fine < 2:
        raise ProfileError(f"n_fine must be >= 2 (got {n_fine})")
    if top_k_categories < 1:
        raise ProfileError(f"top_k_categories must be >= 1 (got {top_k_categories})")
    cols = {name: np.asarray(a) for name, a in columns.items()}
    lengths = {len(a) for a in cols.values()}
    if len(lengths) > 1:
        detail = ", ".join(f"{k}={len(a)}" for k, a in cols.items())
        raise ProfileError(f"columns have different lengths ({detail}); every column needs one value per row")
    n_rows = lengths.pop() if lengths else 0
    if n_rows == 0:
        raise ProfileError("no rows to profile; the training data is empty")

    slice_columns = list(dict.fromkeys(slice_columns))
    exclude = set(exclude)
    roles = [("label", label_column), ("score", score_column), ("time", time_column)]
    for role, name in roles + [("slice", s) for s in slice_columns]:
        if name is not None and name not in cols:
            raise ProfileError(f"{role} column {name!r} not found; available columns: {', '.join(cols)}")
    non_features = {label_column, score_column, time_column, *slice_columns, *ID_COLUMNS, *TIME_COLUMNS} | exclude
    feature_names = [n for n in cols if n not in non_features]

    types = dict(types or {})
    for name, t in types.items():
        if t not in ("numeric", "categorical"):
            raise ProfileError(f"type of {name!r} must be 'numeric' or 'categorical' (got {t!r})")
        if name not in cols:
            raise ProfileError(f"types names column {name!r}, which is not in the data; available columns: {', '.join(cols)}")
        if name not in feature_names:
            raise ProfileError(
                f"types names column {name!r}, which is not a feature (label, score, slice, id, time or excluded column)"
            )

    feats = {name: _typed(name, cols[name], types.get(name)) for name in feature_names}
    qs = _quantile_grid(n_fine)

    label = _label01(label_column, cols[label_column]) if label_column is not None else None
    score = _as_float(score_column, cols[score_column]) if score_column is not None else None

    ref = Reference(
        n_rows=n_rows,
        features={name: _profile(v, qs, top_k_categories) for name, v in feats.items()},
        label_column=label_column,
        score_column=score_column,
        model=model,
        source=source,
        created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    ref.codes = {name: _categorical(_as_text(v), top_k_categories) for name, v in feats.items() if _code_like(v)}
    if label is not None:
        ref.label_base_rate, ref.label_count = _base_rate(label)
    if score is not None:
        ref.score = _numeric(score, qs)
    if score is not None and label is not None:
        ref.outcome = _score_fit(score, label)
        ref.task = _binary_task(score, label, _times(cols[time_column]) if time_column is not None else None)
    for dim in slice_columns:
        ref.slices[dim] = _slices(cols[dim], feats, label, score, qs, top_k_categories, ref)
    if time_column is not None:
        _add_hourly(ref, cols, feats, score, time_column, slice_columns)
    if multivariate:
        add_multivariate(ref, feats, _times(cols[time_column]) if time_column is not None else None)
    if label is not None:  # leakage / availability / time-split audit (detector.core.reference.audit)
        from detector.core.reference.audit import audit_training

        ref.audit = {"label_column": label_column,
                     **audit_training(feats, label, _times(cols[time_column]) if time_column is not None else None)}
    return ref


MULTIVARIATE_MIN_ROWS = 400  # half fits the components, half measures the error: 200 rows each at least


def add_multivariate(ref: Reference, feats: Mapping[str, np.ndarray], ts: np.ndarray | None = None) -> None:
    """Fit the joint structure of the numeric features into ``ref.multivariate`` (:mod:`detector.core.checks.multivariate.pca`).

    Features standardised by their UTC hour of day when ``ts`` (epoch seconds, NaN unknown) is
    given. Left empty - and the multivariate check off - with fewer than two varying numeric
    features or fewer than :data:`MULTIVARIATE_MIN_ROWS` rows.
    """
    from detector.core.checks.multivariate.pca import fit_pca, hours_of

    num = {k: v for k, v in feats.items() if v.dtype.kind == "f" and isinstance(ref.features.get(k), NumericProfile)
           and ref.features[k].n > 0}
    n = len(next(iter(num.values()))) if num else 0
    if len(num) < 2 or n < MULTIVARIATE_MIN_ROWS:
        ref.multivariate = {}
        return
    try:
        ref.multivariate = fit_pca(num, hours=None if ts is None else hours_of(ts))
    except ValueError:  # fewer than two features that vary: no joint structure to watch
        ref.multivariate = {}


def _times(t: np.ndarray) -> np.ndarray:
    from detector.core.inputs.timeparse import parse_timestamps

    return parse_timestamps(t if t.dtype.kind == "f" else t.tolist() if t.dtype.kind == "O" else t.astype(np.float64))


def _add_hourly(
    ref: Reference,
    cols: Mapping[str, np.ndarray],
    feats: dict[str, np.ndarray],
    score: np.ndarray | None,
    time_column: str,
    slice_columns: Sequence[str],
) -> None:
    from detector.core.inputs.timeparse import parse_timestamps
    from detector.core.reference.hourly import build_hourly, clock_features

    t = cols[time_column]
    ts = parse_timestamps(t if t.dtype.kind == "f" else t.tolist() if t.dtype.kind == "O" else t.astype(np.float64))
    typed: dict[str, Any] = dict(feats)  # the profiled (typed) values, not the raw columns
    if score is not None and ref.score_column is not None:
        typed[ref.score_column] = score
    for dim in slice_columns:
        typed[dim] = _as_text(cols[dim])
    ref.time_column = time_column
    # features without a single value have no bins to compare hour by hour
    with_values = replace(ref, features={k: p for k, p in ref.features.items() if p.n > 0})
    build_hourly(typed, ts, with_values, slice_columns)
    ref.hourly = with_values.hourly
    clock = clock_features(typed, ts, list(with_values.features), slice_columns)
    if ref.hourly and clock:
        ref.hourly["clock"] = clock


# ----------------------------------------------------------------------------- public helpers


# ----------------------------------------------------------------------------- typing


# ----------------------------------------------------------------------------- profiles


def _score_fit(score: np.ndarray, label: np.ndarray) -> dict[str, float]:
    """How the training scores rank and spread the labels: ROC AUC and Cox calibration slope (100 bins),
    the production cohorts' yardsticks that late labels do not bias (detector.core.outcomes.checks)."""
    from detector.core.outcomes.cohort import N_HIST, binned_auc, calibration_slope, score_bins

    ok = np.isfinite(score) & ~np.isnan(label)
    if ok.sum() == 0:
        return {}
    y = label[ok].astype(np.int64)
    hist = np.bincount(score_bins(score[ok], N_HIST) + N_HIST * y, minlength=2 * N_HIST).reshape(2, N_HIST)
    auc, _ = binned_auc(hist[0], hist[1])
    slope, se = calibration_slope(hist[0], hist[1])
    out = {"auc": float(auc), "slope": float(slope), "slope_se": float(se), "positives": int(y.sum()),
           "negatives": int((1 - y).sum())}
    return {k: v for k, v in out.items() if v == v}


def _binary_task(score: np.ndarray, label: np.ndarray, ts: np.ndarray | None) -> dict[str, Any]:
    """The binary task's reference (calibration map, realised metrics, hour-of-day systematic error) for
    performance estimated before labels (detector.core.outcomes.estimate); {} when scores leave [0, 1]."""
    from detector.core.outcomes.tasks.reference import TaskReferenceError, binary_reference

    try:
        return binary_reference(label, score, ts=ts)
    except TaskReferenceError:  # not a probability: no estimates (the score checks still run)
        return {}


