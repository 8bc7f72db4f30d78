"""Label values and metric families for the Prometheus exporter: bounded label values, bucket layouts,
and the small readers the collector uses on the engine's state (:mod:`detector.exporters.prometheus`).

Label values are bounded: slice and version values longer than :data:`MAX_LABEL_CHARS` are
shortened (start + hash), feature names the reference does not know fold into
:data:`UNEXPECTED`, and every label set of a family is kept once (the largest value wins).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from detector.core.inputs.served import all_traffic_row

ALL = "all"  # slice label of the whole traffic
MAX_MODELS = 100
MAX_VERSIONS = 10
MAX_REASONS = 64
MAX_LABEL_CHARS = 120  # longer slice / version label values are shortened (start + hash)
SCORE_BUCKETS = 12  # exported score histogram buckets (+Inf)
OTHER = "__other__"
UNEXPECTED = "__unexpected__"  # feature label of every feature name the reference does not know
ARRAYS = ("num", "cat", "nz", "slog", "slog2", "sx", "cand", "rates", "lat", "absent", "type_err", "nonfinite")
JOIN_STATES = {"matched": "matched", "duplicates": "duplicate", "corrections": "correction", "expired": "expired",
         "evicted": "evicted", "orphans": "orphan", "rejected": "rejected", "joined": "joined", "unjoined": "unjoined"}
OUTCOME_FAMILIES = (  # OutcomeMonitor.stats()["slices"][slice] key -> (family, help); last evaluated cohort
    ("match_rate", "skewwatch_cohort_labelled_ratio", "Share of the cohort's predictions that had a label at "
     "evaluation (label age = maturity)."),
    ("base_rate", "skewwatch_label_positive_ratio", "Share of the cohort's labels that are positive."),
    ("ece", "skewwatch_calibration_error_ratio", "Expected calibration error (10 equal-width score bins)."),
    ("brier", "skewwatch_brier_score", "Brier score: mean squared error of the score against the label."),
    ("auc", "skewwatch_roc_auc_ratio", "ROC AUC of the score against the labels."),
    ("pr_auc", "skewwatch_pr_auc_ratio", "Precision-recall AUC (average precision) of the score."),
    ("precision", "skewwatch_precision_ratio", "Precision of the decisions taken (threshold in force)."),
    ("recall", "skewwatch_recall_ratio", "Recall of the decisions taken (threshold in force)."),
    ("threshold", "skewwatch_decision_threshold", "Mean decision threshold in force (score units)."),
    ("best_threshold", "skewwatch_decision_best_threshold", "Cost-minimising threshold given the configured costs "
     "and review capacity (score units)."),
    ("expected_cost", "skewwatch_expected_cost", "Expected cost per labelled prediction at the threshold in force "
     "(configured cost units)."),
    # regression models (errors in the target's own units, hence no unit suffix)
    ("mae", "skewwatch_outcome_mae", "Mean absolute error of the cohort's labelled predictions (regression; target units)."),
    ("rmse", "skewwatch_outcome_rmse", "Root mean squared error of the cohort's labelled predictions (regression; target units)."),
    ("bias", "skewwatch_outcome_bias", "Mean of prediction minus target over the cohort's labelled predictions (regression; "
     "target units; positive = over-predicting)."),
    ("r2", "skewwatch_outcome_r2", "Coefficient of determination of the cohort's labelled predictions (regression)."),
    # multiclass models
    ("accuracy", "skewwatch_accuracy_ratio", "Share of the cohort's labelled predictions whose class is right (multiclass)."),
    ("macro_f1", "skewwatch_macro_f1_ratio", "Macro-averaged F1 over the classes of the cohort's labelled predictions "
     "(multiclass)."),
)
CLASS_OUTCOME_FAMILIES = (  # stats()["slices"][slice]["class_<key>"][class] -> (family, help); multiclass models
    ("class_recall", "skewwatch_class_recall_ratio", "Recall of one class: share of its labelled predictions' true "
     "members predicted as it (multiclass)."),
    ("class_precision", "skewwatch_class_precision_ratio", "Precision of one class: share of the predictions of it "
     "whose label agrees (multiclass)."),
)
PARITY_FAMILIES = (  # stats()["parity"]["features"][feature][slice] key -> (family, help)
    ("mismatch_rate", "skewwatch_feature_parity_mismatch_ratio", "Share of joined predictions whose served value "
     "differs from the offline (training pipeline) value, last evaluated window."),
    ("missing_one_side", "skewwatch_feature_parity_missing_ratio", "Share of joined predictions with the value "
     "missing on exactly one side (served or offline)."),
)
LABEL_GAUGES = (  # stats()["labels"] key -> (family, help); the label join is shared by all models
    ("coverage", "skewwatch_label_coverage_ratio", "Share of predictions that left the label store with a label "
     "(the rest expired or were evicted)."),
    ("match_rate", "skewwatch_label_match_ratio", "Share of label events that found their prediction (the rest "
     "are orphans)."),
    ("pending", "skewwatch_labels_pending", "Predictions held waiting for their label."),
    ("early_held", "skewwatch_labels_early_held", "Labels held waiting for their prediction."),
    ("early_held_bytes", "skewwatch_labels_early_held_bytes", "Estimated memory of the labels held waiting for "
     "their prediction (bounded by detector.max_early_label_bytes)."),
)


def slice_label(key: str | Mapping[str, str]) -> str:
    """The ``slice`` label value of a core slice key or dict (long values shortened, see :func:`bounded`).

    >>> slice_label(""), slice_label({}), slice_label("region=eu"), slice_label({"region": "eu"})
    ('all', 'all', 'region=eu', 'region=eu')
    """
    if isinstance(key, Mapping):
        key = ",".join(f"{k}={v}" for k, v in sorted(key.items()))
    return bounded(key) if key else ALL


def bounded(value: str, limit: int = MAX_LABEL_CHARS) -> str:
    """A label value of at most ``limit`` characters: longer ones keep their start and a hash of the
    whole, so distinct values stay distinct and one hostile value cannot bloat every scrape.

    >>> bounded("eu"), len(bounded("x" * 5000)), bounded("x" * 5000) != bounded("x" * 4999)
    ('eu', 120, True)
    """
    if len(value) <= limit:
        return value
    digest = hashlib.blake2b(value.encode("utf-8", "replace"), digest_size=6).hexdigest()
    return value[: limit - len(digest) - 1] + "~" + digest


class FeatureLabels:
    """``feature`` label values: the reference's features (and ``score``) as they are; any other
    name (an unexpected feature in the payload, i.e. producer-chosen text) folds into
    :data:`UNEXPECTED`, so the label set stays bounded by the reference.

    >>> f = FeatureLabels(["amount", "country"])
    >>> f("amount"), f("score"), f(""), f("x" * 5000)
    ('amount', 'score', '', '__unexpected__')
    """

    def __init__(self, known: Iterable[str]) -> None:
        self.known = frozenset(known) | {"score", ""}

    def __call__(self, name: str | None) -> str:
        name = name or ""
        return name if name in self.known else UNEXPECTED


def feature_labels(ms: Any) -> FeatureLabels:
    lay = getattr(ms, "layout", None)
    return FeatureLabels([*getattr(lay, "numeric", ()), *getattr(lay, "categorical", ())])


def is_finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def get_field(obj: Any, *names: str) -> Any:
    """First present value of ``names`` from a mapping or an object's attributes."""
    if obj is None:
        return None
    for n in names:
        v = obj.get(n) if isinstance(obj, Mapping) else getattr(obj, n, None)
        if v is not None:
            return v
    return None


def as_map(obj: Any) -> Mapping[str, Any] | None:
    if obj is None or isinstance(obj, Mapping):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return vars(obj) if hasattr(obj, "__dict__") else None


class Families:
    """Metric families created on first use, yielded in creation order."""

    def __init__(self) -> None:
        self._f: dict[str, Metric] = {}

    def gauge(self, name: str, doc: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
        if name not in self._f:
            self._f[name] = GaugeMetricFamily(name, doc, labels=labels)
        return self._f[name]  # type: ignore[return-value]

    def counter(self, name: str, doc: str, labels: tuple[str, ...]) -> CounterMetricFamily:
        if name not in self._f:
            self._f[name] = CounterMetricFamily(name, doc, labels=labels)
        return self._f[name]  # type: ignore[return-value]

    def histogram(self, name: str, doc: str, labels: tuple[str, ...]) -> HistogramMetricFamily:
        if name not in self._f:
            self._f[name] = HistogramMetricFamily(name, doc, labels=labels)
        return self._f[name]  # type: ignore[return-value]

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._f.values())


def delay_buckets(d: Any) -> tuple[list[tuple[str, float]], float] | None:
    """Cumulative ``(le, count)`` buckets and the sum of a per-bin delay histogram."""
    from detector.core.outcomes.labels import DELAY_EDGES

    if d is None:
        return None
    counts = get_field(d, "counts", "hist", "bins") if isinstance(d, Mapping) or hasattr(d, "counts") else d
    if counts is None:
        return None
    counts = np.asarray(counts, dtype=np.float64).ravel()
    edges = np.asarray(get_field(d, "edges") if isinstance(d, Mapping) and get_field(d, "edges") is not None else DELAY_EDGES,
                       dtype=np.float64)
    if counts.size != edges.size + 1:
        return None
    cum = np.cumsum(counts)
    total = get_field(d, "sum") if isinstance(d, Mapping) else None
    if not is_finite(total):  # estimate from the bins' geometric centres
        centres = np.concatenate([[edges[0] / 2], np.sqrt(edges[:-1] * edges[1:]), [edges[-1]]])
        total = float((counts * centres).sum())
    buckets = [(le_label(e), float(c)) for e, c in zip(edges.tolist(), cum[:-1].tolist(), strict=True)]
    buckets.append(("+Inf", float(cum[-1])))
    return buckets, float(total)


def keep_max(d: dict[tuple[str, ...], float], key: tuple[str, ...], value: Any) -> None:
    v = float(value)
    d[key] = v if key not in d else max(d[key], v)


class RowView:
    """Row ``r`` of an open window's array (row 0, all traffic, as the core will fill it at close)."""

    def __init__(self, w: Any, lay: Any) -> None:
        self.w, self.lay = w, lay
        self._all: dict[str, np.ndarray] = {}

    def __call__(self, name: str, r: int) -> np.ndarray:
        a = getattr(self.w, name)
        if r != 0 or not self.lay.dims:
            return a[r]
        if name not in self._all:
            self._all[name] = all_traffic_row(a, self.lay)
        return self._all[name]


def le_label(x: float) -> str:
    return repr(float(round(x, 6)))


#: exported latency bucket bounds (ms): 1-2-5 per decade from 1 ms to 100 s, picked from the
#: window's 10-per-decade edges (so every bucket count is exact)
LATENCY_BUCKETS_MS = tuple(10.0 ** (d + k / 10) for d in range(0, 5) for k in (0, 3, 7)) + (1e5,)


def latency_buckets(edges: np.ndarray) -> tuple[list[int], list[str]]:
    """Bin indices whose cumulative count is ``<= le`` and the ``le`` labels (seconds)."""
    e = np.asarray(edges, dtype=np.float64)
    idx, labels = [], []
    for b in LATENCY_BUCKETS_MS:
        k = int(np.argmin(np.abs(e - b)))
        if abs(e[k] - b) <= 1e-9 * b:
            idx.append(k)  # bins 0..k lie below edges[k]
            labels.append(f"{e[k] / 1000.0:.4g}")
    return idx, labels


def score_buckets(n_edges: int, n: int = SCORE_BUCKETS) -> list[int]:
    """Edge indices for the exported score buckets: evenly spaced through the reference's quantile
    edges (similar training mass per bucket), last edge included.

    >>> score_buckets(92)[:3], score_buckets(92)[-1], len(score_buckets(92)), score_buckets(3)
    ([0, 8, 17], 91, 12, [0, 1, 2])
    """
    return sorted({int(round(x)) for x in np.linspace(0, n_edges - 1, min(n, n_edges))})


def midpoints(edges: np.ndarray) -> np.ndarray:
    """A representative value per bin of ``np.searchsorted(edges, x, 'right')`` (geometric inside)."""
    inner = np.sqrt(np.maximum(edges[:-1], edges[1:] * 0.5) * edges[1:])
    return np.concatenate([[0.0], inner, [edges[-1]]])


def epoch_seconds(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, int | float):
        return float(v) if is_finite(v) else None
    from detector.core.inputs.timeparse import parse_timestamps

    t = float(parse_timestamps([v])[0])
    return t if math.isfinite(t) else None
