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

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from detector.core.reference.profile import CategoricalProfile, NumericProfile, Reference, SliceProfile

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
MAX_SLICE_VALUES = 50  # per slice column, the most frequent values get a SliceProfile
MAX_CODES = 50  # a numeric feature with at most this many distinct values also gets a category view
MIN_SLICE_ROWS = 30  # ... if they have at least this many rows

_TRUE = frozenset({"1", "1.0", "true"})  # label spellings accepted (after strip + lower)
_FALSE = frozenset({"0", "0.0", "false"})
#: Text values (after stripping blanks, compared case-insensitively) that mean "missing".
MISSING_TOKENS = frozenset({"", "na", "n/a", "null", "none", "nan"})
_TEXT_MISSING = MISSING_TOKENS


class ProfileError(ValueError):
    """The columns cannot be profiled as asked; the message names the column and the fix."""


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
def numeric_profile(values: np.ndarray, n_fine: int = 100) -> NumericProfile:
    """The :class:`NumericProfile` of one numeric array (NaN/inf = missing)."""
    return _numeric(np.asarray(values, dtype=np.float64), _quantile_grid(n_fine))


def categorical_profile(values: np.ndarray | Sequence[Any], top_k: int = 1000) -> CategoricalProfile:
    """The :class:`CategoricalProfile` of one text array (None / NaN = missing)."""
    return _categorical(_as_text(np.asarray(values, dtype=object)), top_k)


def typed_values(name: str, values: np.ndarray, kind: str | None = None) -> np.ndarray:
    """A column as :func:`build_reference` profiles it: float64 when numeric (``kind="numeric"``
    parses text, raising :class:`ProfileError` on a non-number), else object str/None."""
    return _typed(name, np.asarray(values), kind)


def label_values(name: str, values: np.ndarray) -> np.ndarray:
    """A label column as float 0.0/1.0 with NaN for missing; other values raise ProfileError."""
    return _label01(name, values)


# ----------------------------------------------------------------------------- typing
def to_text(v: Any) -> str | None:
    """The string form of a value in a text column (None/NaN/missing tokens -> None).

    >>> [to_text(v) for v in (1234.0, 12.5, True, "DE", " NA ", None, float("nan"), [1, 2])]
    ['1234', '12.5', 'true', 'DE', None, None, None, '[1,2]']
    """
    if v is None:
        return None
    if isinstance(v, str):
        if (len(v) <= 4 or v[0].isspace() or v[-1].isspace()) and v.strip().lower() in MISSING_TOKENS:
            return None
        return v if type(v) is str else str(v)  # np.str_ -> str (JSON keys must be plain str)
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        f = float(v)
        if f != f:  # NaN
            return None
        if f.is_integer() and abs(f) < 1e16:
            return str(int(f))
        return repr(f)
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    try:
        return orjson.dumps(v, default=str).decode()
    except TypeError:
        return str(v)


def _quantile_grid(n_fine: int) -> np.ndarray:
    return np.arange(1, n_fine, dtype=np.float64) / n_fine


def _typed(name: str, a: np.ndarray, override: str | None) -> np.ndarray:
    """float64 array (numeric) or object array of str/None (categorical)."""
    kind = a.dtype.kind
    if override == "categorical":
        return _as_text(a)
    if override == "numeric" or kind in "fiub":
        return _as_float(name, a)
    return _as_text(a)


def _as_float(name: str, a: np.ndarray) -> np.ndarray:
    kind = a.dtype.kind
    if kind in "fiub":
        return a.astype(np.float64, copy=False)
    vals = a.tolist()
    try:
        return np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
    except (ValueError, TypeError):
        pass
    out = np.empty(len(vals), dtype=np.float64)
    bad: dict[str, int] = {}
    for i, v in enumerate(vals):
        out[i] = np.nan
        if v is None:
            continue
        if isinstance(v, str) and v.strip().lower() in _TEXT_MISSING:
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            key = repr(v)
            bad[key] = bad.get(key, 0) + 1
    if bad:
        shown = ", ".join(list(bad)[:5]) + (", ..." if len(bad) > 5 else "")
        raise ProfileError(
            f"column {name!r} is declared numeric but has {sum(bad.values())} value(s) that are not numbers"
            f" ({shown}); fix the data or declare it categorical"
        )
    return out


def _as_text(a: np.ndarray) -> np.ndarray:
    """object array of str/None, non-strings in their string form (see :func:`to_text`)."""
    if a.dtype.kind == "O" and set(map(type, a.tolist())) <= {str, type(None)}:
        return a
    out = np.empty(len(a), dtype=object)
    out[:] = [to_text(v) for v in a.tolist()]
    return out


def _label01(name: str, a: np.ndarray) -> np.ndarray:
    """Label column -> float 0/1 with NaN for missing; anything else is an error."""
    if a.dtype.kind in "fiub":
        x = a.astype(np.float64, copy=False)
        ok = np.isnan(x) | (x == 0) | (x == 1)
        if ok.all():
            return x
        bad = np.unique(x[~ok])
        shown = ", ".join(repr(float(v)) for v in bad[:5]) + (", ..." if len(bad) > 5 else "")
        n_bad = int((~ok).sum())
    else:
        out = np.full(len(a), np.nan)
        bad_counts: Counter[str] = Counter()
        for i, v in enumerate(a.tolist()):
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            if isinstance(v, bool | int | float) and v in (0, 1):
                out[i] = float(v)
                continue
            s = str(v).strip().lower()
            if s in _TEXT_MISSING:
                continue
            if s in _TRUE:
                out[i] = 1.0
            elif s in _FALSE:
                out[i] = 0.0
            else:
                bad_counts[repr(v)] += 1
        if not bad_counts:
            return out
        shown = ", ".join(sorted(bad_counts)[:5]) + (", ..." if len(bad_counts) > 5 else "")
        n_bad = sum(bad_counts.values())
    raise ProfileError(
        f"label column {name!r} must hold 0/1 (or true/false) values; {n_bad} row(s) hold other values ({shown})."
        " A binary label is needed for the base rate: map the target to 0/1, leave --label-column out, or profile"
        " a multiclass / regression model with --task multiclass / --task regression"
    )


def _base_rate(label: np.ndarray) -> tuple[float | None, int]:
    known = ~np.isnan(label)
    n = int(known.sum())
    return (float(label[known].mean()) if n else None), n


# ----------------------------------------------------------------------------- profiles
def _profile(
    v: np.ndarray, qs: np.ndarray, top_k: int, like: NumericProfile | CategoricalProfile | None = None
) -> NumericProfile | CategoricalProfile:
    if v.dtype.kind != "f":
        return _categorical(v, top_k)
    return _numeric(v, qs, like.edges if isinstance(like, NumericProfile) else None)


def _numeric(x: np.ndarray, qs: np.ndarray, edges: list[float] | None = None) -> NumericProfile:
    """Profile of one float array; ``edges`` given = bin on them (slices use the global edges)."""
    count = len(x)
    s = np.sort(x[np.isfinite(x)])
    n = len(s)
    if n == 0:
        e0 = [] if edges is None else list(edges)
        return NumericProfile(
            count=count, missing=count, edges=e0, freqs=[0.0] * (len(e0) + 1) if e0 else [], min=None, max=None, median=None,  # type: ignore[arg-type]
            iqr=None, mean=None, std=None, top_value=None, top_share=0.0,  # type: ignore[arg-type]
            log_abs_mean=None, log_abs_std=None, zero_share=0.0, integer=False,
        )  # fmt: skip
    lo, hi = float(s[0]), float(s[-1])
    if edges is None:
        q = np.quantile(s, qs, method="inverted_cdf")  # observed values: no interior bin is empty
        e = np.unique(np.concatenate(([lo], q, [np.nextafter(hi, np.inf)])))
    else:
        e = np.asarray(edges, dtype=np.float64)
    # counts per bin b = searchsorted(edges, x, side="right"): the values x with
    # edges[b-1] <= x < edges[b]; on sorted data that is a difference of left-insertion points
    # (O(len(edges) log n) instead of O(n log len(edges))).
    below = np.searchsorted(s, e, side="left")
    counts = np.diff(np.concatenate(([0], below, [n])))
    q1, med, q3 = (float(v) for v in np.quantile(s, [0.25, 0.5, 0.75]))
    # most frequent exact value: longest run in the sorted values (first = smallest on ties)
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    runs = np.diff(np.append(starts, n))
    top = int(np.argmax(runs))
    nz = s[s != 0]
    if len(nz):
        la = np.log(np.abs(nz))
        la_mean, la_std = float(la.mean()), float(la.std())
    else:
        la_mean = la_std = None
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(s.mean()), float(s.std())
    return NumericProfile(
        count=count,
        missing=count - n,
        edges=e.tolist(),
        freqs=(counts / n).tolist(),
        min=lo,
        max=hi,
        median=med,
        iqr=q3 - q1,
        mean=mean,
        std=std,
        top_value=float(s[starts[top]]),
        top_share=float(runs[top] / n),
        log_abs_mean=la_mean,
        log_abs_std=la_std,
        zero_share=float((n - len(nz)) / n),
        integer=bool(np.all(np.floor(s) == s)),
    )


def _categorical(v: np.ndarray, top_k: int) -> CategoricalProfile:
    count = len(v)
    counter = Counter(v.tolist())
    missing = 0
    for k in [k for k in counter if to_text(k) is None]:  # None and the missing tokens ("NA", ...)
        missing += counter.pop(k)
    n = count - missing
    items = counter.items()
    top = heapq.nsmallest(top_k, items, key=_order) if len(counter) > top_k else sorted(items, key=_order)
    cats = {k: c / n for k, c in top}
    kept = sum(c for _, c in top)
    return CategoricalProfile(
        count=count,
        missing=missing,
        categories=cats,
        other_share=(n - kept) / n if n else 0.0,
        n_distinct=len(counter),
        top_value=top[0][0] if top else None,
        top_share=top[0][1] / n if top else 0.0,
    )


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


def _code_like(v: np.ndarray) -> bool:
    """A numeric column with few distinct values (codes, versions, small counts): see Reference.codes."""
    if v.dtype.kind != "f":
        return False
    fin = v[np.isfinite(v)]
    return fin.size > 0 and np.unique(fin).size <= MAX_CODES


def _order(kv: tuple[str, int]) -> tuple[int, str]:
    return -kv[1], kv[0]  # most frequent first, ties by value


def _slices(
    dim_values: np.ndarray,
    feats: dict[str, np.ndarray],
    label: np.ndarray | None,
    score: np.ndarray | None,
    qs: np.ndarray,
    top_k: int,
    ref: Reference,
) -> dict[str, SliceProfile]:
    """Profiles of the most frequent values of one slice column (numeric ones on the global edges)."""
    text = _as_text(dim_values)
    codes_of: dict[str | None, int] = {}
    codes = np.fromiter((codes_of.setdefault(v, len(codes_of)) for v in text.tolist()), dtype=np.int64, count=len(text))
    names = list(codes_of)
    counts = np.bincount(codes, minlength=len(names))
    candidates = [(int(counts[c]), names[c], c) for c in range(len(names)) if to_text(names[c]) is not None]
    candidates.sort(key=lambda t: (-t[0], t[1]))
    chosen = [t for t in candidates[:MAX_SLICE_VALUES] if t[0] >= MIN_SLICE_ROWS]
    if not chosen:
        return {}
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(counts)))
    out: dict[str, SliceProfile] = {}
    for n_rows, value, c in chosen:
        rows = order[bounds[c] : bounds[c + 1]]
        out[str(value)] = SliceProfile(
            count=n_rows,
            features={name: _profile(a[rows], qs, top_k, ref.features[name]) for name, a in feats.items()},
            label_base_rate=_base_rate(label[rows])[0] if label is not None else None,
            score=_numeric(score[rows], qs, ref.score.edges) if score is not None and ref.score else None,
            codes={name: _categorical(_as_text(feats[name][rows]), top_k) for name in ref.codes},
        )
    return out
