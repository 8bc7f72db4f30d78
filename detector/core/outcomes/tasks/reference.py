"""What ``skewwatch baseline --task ...`` stores about the model's outputs and labels, per task.

Functions take arrays and return plain, JSON-ready dicts (``format = "skewwatch.task/1"``);
the task objects are built from them (:func:`detector.core.outcomes.tasks.make_task`).

========================  =============================================================================
task                      stored
========================  =============================================================================
``binary``                base rate, score histogram (100 bins), isotonic calibration map, realised
                          accuracy / precision / recall at the threshold and ROC AUC (for estimates)
``multiclass``            class list (top-K by frequency; the rest is ``__other__``), label and
                          predicted class priors, confusion matrix, accuracy, macro-F1, top-label
                          reliability, one calibration map per class when class scores are given
``regression``            target and prediction decile edges and histograms, MAE / RMSE / bias /
                          |error| quantiles, errors per prediction bin, the error scale, and the
                          expected-error model (:mod:`detector.core.outcomes.estimate.dle`) when features are given
========================  =============================================================================

Task inference (:func:`infer_task`, when ``--task`` is omitted): two distinct values -> binary (they
must be 0/1 or true/false), numbers with a fractional part or more than ``MAX_CLASSES_NUMERIC``
distinct values -> regression, anything else -> multiclass.

>>> infer_task([0, 1, 1, None]), infer_task([0.5, 1.25, 3.0]), infer_task(["a", "b", "c"]), infer_task([1, 2, 3, 4, 5])
('binary', 'regression', 'multiclass', 'multiclass')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detector.core.outcomes.cohort import N_HIST, binned_auc
from detector.core.outcomes.estimate.calibration import fit_calibration, score_bin
from detector.core.outcomes.estimate.stated_error import MIN_GROUP_ROWS, hour_groups, systematic_error
from detector.core.outcomes.tasks.multiclass_confusion import confusion_metrics
from detector.core.stats.effects import bin_of

__all__ = ["TASK_FORMAT", "OTHER_CLASS", "MAX_CLASSES_NUMERIC", "TaskReferenceError", "infer_task", "binary_reference",
           "multiclass_reference", "regression_reference", "numeric_summary", "scores_matrix", "plain"]

TASK_FORMAT = "skewwatch.task/1"
OTHER_CLASS = "__other__"
MAX_CLASSES_NUMERIC = 20
_TRUE, _FALSE = {"1", "true", "yes", "y", "t"}, {"0", "false", "no", "n", "f"}
_QS = np.arange(1, 10) / 10.0


class TaskReferenceError(ValueError):
    """The labels / predictions cannot be profiled for the task; the message names the fix."""


def _present(values: Sequence[Any]) -> list[Any]:
    return [v for v in values if v is not None and not (isinstance(v, float) and v != v)]


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float | np.integer | np.floating):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def plain(obj: Any) -> Any:
    """The same structure with numpy scalars and arrays as Python numbers and lists (JSON-ready)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def infer_task(values: Sequence[Any]) -> str:
    """``binary``, ``multiclass`` or ``regression`` from a label column (see the module docstring)."""
    vals = _present(list(values))
    if not vals:
        raise TaskReferenceError("the label column has no values: pass --task explicitly or fix the label column")
    distinct = set(map(str, vals)) if any(isinstance(v, str) for v in vals) else set(vals)
    if len(distinct) <= 2:
        low = {str(v).strip().lower() if not isinstance(v, bool) else str(v).lower() for v in distinct}
        low = {"1" if s in _TRUE else "0" if s in _FALSE else s for s in low}
        if low <= {"0", "1", "1.0", "0.0"}:
            return "binary"
        shown = ", ".join(sorted(map(repr, distinct)))
        raise TaskReferenceError(f"the label column has two values ({shown}): a binary label must be 0/1 or "
                                 "true/false - map it, or pass --task multiclass to monitor them as classes")
    nums = [_as_number(v) for v in vals]
    if all(x is not None for x in nums):
        arr = np.asarray(nums, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise TaskReferenceError("the label column holds non-finite numbers (inf); drop or fix those rows")
        if np.any(arr != np.round(arr)) or len(np.unique(arr)) > MAX_CLASSES_NUMERIC:
            return "regression"
    return "multiclass"


def numeric_summary(x: np.ndarray) -> dict[str, Any]:
    """Decile edges, shares on them (``len(edges) + 1`` bins), count, mean and SD of a numeric column."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"edges": [], "hist": [], "n": 0, "mean": None, "std": None}
    edges = np.unique(np.quantile(x, _QS))
    h = np.bincount(bin_of(x, edges), minlength=len(edges) + 1) / x.size
    return {"edges": [float(e) for e in edges], "hist": [float(v) for v in h], "n": int(x.size),
            "mean": float(x.mean()), "std": float(x.std())}


def _labels01(y: Sequence[Any]) -> np.ndarray:
    out = np.full(len(y), np.nan)
    for i, v in enumerate(y):
        if v is None or (isinstance(v, float) and v != v):
            continue
        s = str(v).strip().lower() if not isinstance(v, bool) else ("1" if v else "0")
        if s in _TRUE or s in ("1.0",):
            out[i] = 1.0
        elif s in _FALSE or s in ("0.0",):
            out[i] = 0.0
        else:
            raise TaskReferenceError(f"binary label {v!r} (row {i}) is not 0/1 or true/false; map the label or use "
                                     "--task multiclass")
    return out


def binary_reference(labels: Sequence[Any], score: np.ndarray | None = None, threshold: float = 0.5,
                     ts: Sequence[Any] | np.ndarray | None = None) -> dict[str, Any]:
    """Base rate, score histogram, calibration map and realised metrics at ``threshold``.

    With row timestamps ``ts``, also ``estimate_tau``: how far each metric's estimate strays from
    the realised value at some hours of day beyond sampling (:mod:`detector.core.outcomes.estimate.stated_error`).
    """
    y = _labels01(list(labels))
    out: dict[str, Any] = {"format": TASK_FORMAT, "task": "binary", "threshold": float(threshold)}
    known = ~np.isnan(y)
    out["labels"] = {"n": int(known.sum()), "base_rate": float(y[known].mean()) if known.any() else None}
    if score is None:
        return plain(out)
    s = np.asarray(score, dtype=np.float64)
    if np.any((s[np.isfinite(s)] < 0) | (s[np.isfinite(s)] > 1)):
        raise TaskReferenceError("binary scores must lie in [0, 1]; pass the model's probability as --score-column "
                                 "(or monitor a raw numeric output with --task regression)")
    fin = np.isfinite(s)
    out["score"] = {"hist": np.bincount(score_bin(s[fin], N_HIST), minlength=N_HIST).tolist(), "n": int(fin.sum())}
    both = fin & known
    if both.sum() >= 2:
        yy, ss = y[both], s[both]
        out["calibration"] = fit_calibration(ss, yy, N_HIST)
        act = ss >= threshold
        tp, fp = float((act & (yy == 1)).sum()), float((act & (yy == 0)).sum())
        fn, tn = float((~act & (yy == 1)).sum()), float((~act & (yy == 0)).sum())
        b = score_bin(ss, N_HIST)
        neg = np.bincount(b[yy == 0], minlength=N_HIST).astype(np.float64)
        pos = np.bincount(b[yy == 1], minlength=N_HIST).astype(np.float64)
        auc, _ = binned_auc(neg, pos)
        out["metrics"] = {"n": int(both.sum()), "positives": int(tp + fn), "acted": int(tp + fp),
                          "accuracy": (tp + tn) / both.sum(), "precision": tp / (tp + fp) if tp + fp else None,
                          "recall": tp / (tp + fn) if tp + fn else None, "auc": float(auc) if auc == auc else None}
        hours = hour_groups(ts, len(y))
        if hours is not None:
            out["estimate_tau"] = _binary_tau(ss, yy, act, hours[both], out["calibration"])
    return plain(out)


def _per_hour(hours: np.ndarray) -> list[np.ndarray]:
    return [m for m in (hours == g for g in range(24)) if m.sum() >= MIN_GROUP_ROWS]


def _binary_tau(s: np.ndarray, y: np.ndarray, act: np.ndarray, hours: np.ndarray, cal: dict[str, Any]) -> dict[str, float]:
    from detector.core.outcomes.estimate.cbpe import binary_estimates

    groups = _per_hour(hours)
    if not groups:
        return {}
    ph = np.stack([np.bincount(score_bin(s[m], N_HIST) + N_HIST * act[m], minlength=2 * N_HIST).reshape(2, N_HIST)
                   for m in groups]).astype(np.float64)
    est = binary_estimates(ph, cal)
    real = {"accuracy": [], "precision": [], "recall": [], "auc": []}
    for m in groups:
        yy, aa = y[m], act[m]
        tp = float((aa & (yy == 1)).sum())
        real["accuracy"].append(float((aa == (yy == 1)).mean()))
        real["precision"].append(tp / aa.sum() if aa.sum() else np.nan)
        real["recall"].append(tp / (yy == 1).sum() if (yy == 1).sum() else np.nan)
        b = score_bin(s[m], N_HIST)
        auc, _ = binned_auc(np.bincount(b[yy == 0], minlength=N_HIST).astype(float), np.bincount(b[yy == 1], minlength=N_HIST).astype(float))
        real["auc"].append(float(auc))
    return {k: systematic_error(np.array(v), est[k], est[f"{k}_se"]) for k, v in real.items()}


def scores_matrix(scores: Sequence[Mapping[str, Any] | None], classes: Sequence[str]) -> np.ndarray:
    """(n, C) matrix of per-class scores (``__other__``: 1 - the sum of the listed classes); NaN rows = none."""
    C = len(classes)
    out = np.full((len(scores), C), np.nan)
    idx = {c: i for i, c in enumerate(classes)}
    other = idx.get(OTHER_CLASS)
    for r, d in enumerate(scores):
        if not isinstance(d, Mapping) or not d:
            continue
        row = np.zeros(C)
        total = 0.0
        for k, v in d.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and v == v:
                j = idx.get(str(k), other)
                if j is not None:
                    row[j] += float(v)
                total += float(v)
        if other is not None:  # mass the producer did not list is "some other class"
            row[other] += max(0.0, 1.0 - total)
        out[r] = np.clip(row, 0.0, 1.0)
    return out


def multiclass_reference(labels: Sequence[Any], predicted: Sequence[Any] | None = None,
                         scores: Sequence[Mapping[str, Any] | None] | None = None, top_k: int = 20,
                         ts: Sequence[Any] | np.ndarray | None = None) -> dict[str, Any]:
    """Classes, priors, confusion, accuracy / macro-F1, reliability and per-class calibration maps.

    With row timestamps ``ts`` and class scores, also ``estimate_tau`` (see :func:`binary_reference`).
    """
    lab = [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in labels]
    prd = [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in (list(predicted) if predicted is not None else [None] * len(lab))]
    freq = Counter(v for v in lab if v is not None) + Counter(v for v in prd if v is not None)
    if not freq:
        raise TaskReferenceError("no class labels or predicted classes to profile; pass --label-column or --prediction-column")
    top = sorted(freq, key=lambda c: (-freq[c], c))[:top_k]
    classes = [*top, OTHER_CLASS]
    idx = {c: i for i, c in enumerate(top)}
    C = len(classes)

    def code(v: str | None) -> int:
        return -1 if v is None else idx.get(v, C - 1)

    yl = np.array([code(v) for v in lab], dtype=np.int64)
    pl = np.array([code(v) for v in prd], dtype=np.int64)
    out: dict[str, Any] = {"format": TASK_FORMAT, "task": "multiclass", "classes": classes}
    ly, lp = yl[yl >= 0], pl[pl >= 0]
    out["labels"] = {"n": int(ly.size), "priors": (np.bincount(ly, minlength=C) / max(ly.size, 1)).tolist()}
    out["predictions"] = {"n": int(lp.size), "priors": (np.bincount(lp, minlength=C) / max(lp.size, 1)).tolist()}
    both = (yl >= 0) & (pl >= 0)
    if both.any():
        conf = np.bincount(yl[both] * C + pl[both], minlength=C * C).reshape(C, C).astype(np.float64)
        m = confusion_metrics(conf[None])
        out["confusion"] = conf.astype(int).tolist()
        out["metrics"] = {"n": int(both.sum()), "accuracy": float(m["accuracy"][0]), "macro_f1": float(m["macro_f1"][0])}
    if scores is not None:
        S = scores_matrix(list(scores), classes)
        has = ~np.isnan(S).any(1)
        if (has & both).sum() >= 2:
            k = np.flatnonzero(has & both)
            out["calibration"] = [fit_calibration(S[k, j], (yl[k] == j).astype(np.float64)) for j in range(C)]
            conf_s = S[k, pl[k]]
            correct = (yl[k] == pl[k]).astype(np.float64)
            rb = score_bin(conf_s, 10)
            out["reliability"] = {"count": np.bincount(rb, minlength=10).tolist(),
                                  "confidence": np.bincount(rb, weights=conf_s, minlength=10).tolist(),
                                  "correct": np.bincount(rb, weights=correct, minlength=10).tolist()}
            hours = hour_groups(ts, len(lab))
            if hours is not None:
                out["estimate_tau"] = _multiclass_tau(S[k], yl[k], pl[k], hours[k], out["calibration"], C)
    return plain(out)


def _multiclass_tau(S: np.ndarray, y: np.ndarray, pred: np.ndarray, hours: np.ndarray, cals: list[dict[str, Any]],
                    C: int) -> dict[str, float]:
    from detector.core.outcomes.estimate.cbpe import calibrated_classes, multiclass_estimates

    groups = _per_hour(hours)
    if not groups:
        return {}
    q = calibrated_classes(cals, S)
    exp, real, nv = [], [], []
    for m in groups:
        e = np.zeros((C, C))
        for j in np.unique(pred[m]).tolist():
            e[:, j] = q[m & (pred == j)].sum(0)
        exp.append(e)
        real.append(np.bincount(y[m] * C + pred[m], minlength=C * C).reshape(C, C))
        qp = q[m, pred[m]]
        nv.append([m.sum(), float((qp * (1 - qp)).sum())])
    est = multiclass_estimates(np.asarray(exp), np.asarray(nv, dtype=np.float64))
    rm = confusion_metrics(np.asarray(real, dtype=np.float64))
    return {k: systematic_error(rm[k], est[k], est[f"{k}_se"]) for k in ("accuracy", "macro_f1")}


def regression_reference(target: np.ndarray | None, prediction: np.ndarray | None = None,
                         features: Mapping[str, np.ndarray] | None = None, dle: bool = True,
                         ts: Sequence[Any] | np.ndarray | None = None) -> dict[str, Any]:
    """Target / prediction distributions, error statistics per prediction bin and the DLE model.

    ``ts`` (row timestamps, optional) lets the estimates measure their error at each hour of day
    (:mod:`detector.core.outcomes.estimate.stated_error`).
    """
    out: dict[str, Any] = {"format": TASK_FORMAT, "task": "regression"}
    if target is None and prediction is None:
        raise TaskReferenceError("a regression reference needs --label-column (the target) or --prediction-column")
    y = None if target is None else np.asarray(target, dtype=np.float64)
    p = None if prediction is None else np.asarray(prediction, dtype=np.float64)
    if y is not None:
        out["target"] = numeric_summary(y)
    if p is not None:
        out["prediction"] = numeric_summary(p)
    if y is None or p is None:
        return plain(out)
    ok = np.isfinite(y) & np.isfinite(p)
    e = p[ok] - y[ok]
    if e.size == 0:
        return plain(out)
    ae = np.abs(e)
    pe = np.asarray(out["prediction"]["edges"], dtype=np.float64)
    pb = bin_of(p[ok], pe)
    B = len(pe) + 1
    out["errors"] = {
        "n": int(e.size), "mae": float(ae.mean()), "rmse": float(np.sqrt((e * e).mean())), "bias": float(e.mean()),
        "mae_se": float(ae.std() / np.sqrt(e.size)),
        "rmse_se": float((e * e).std() / (2 * max(np.sqrt((e * e).mean()), 1e-12) * np.sqrt(e.size))),
        "abs_quantiles": {f"p{q}": float(np.quantile(ae, q / 100)) for q in (50, 90, 99)},
        "scale": float(ae.mean()) if ae.mean() > 0 else float(np.std(y[ok]) or 1.0),
        "by_prediction_bin": {"n": np.bincount(pb, minlength=B).tolist(),
                              "abs": np.bincount(pb, weights=ae, minlength=B).tolist(),
                              "sq": np.bincount(pb, weights=e * e, minlength=B).tolist(),
                              "signed": np.bincount(pb, weights=e, minlength=B).tolist(),
                              "pred": np.bincount(pb, weights=p[ok], minlength=B).tolist()},
    }
    if dle and features:
        from detector.core.outcomes.estimate.dle import fit_dle

        try:
            out["dle"] = fit_dle(features, p, y, groups=hour_groups(ts, len(p)))
        except ValueError as exc:
            out["dle"] = None
            out["dle_skipped"] = str(exc)
    return plain(out)
