"""Multiclass models (routing, intent): a ``predicted_class``, optional class ``scores``, a class label.

Classes are the reference's top-K (``classes``, the last one ``__other__``: any class not in the
list), so class codes are the same on every worker and cohorts merge by addition. Counters per
slice row (``C`` classes including ``__other__``):

==========  ============  ==============================================================================
array       shape         what
==========  ============  ==============================================================================
``cnt``     (R, 9)        predictions, with a class, with scores; labelled pairs, labelled with a class,
                          correct, labelled with scores, sum of confidence, sum of confidence x correct
``pcls``    (R, C)        predicted class counts of *all* predictions (prediction prior drift)
``conf``    (R, C, C)     labelled pairs: true class x predicted class
``rel``     (R, 10, 3)    top-label reliability: count, sum confidence, sum correct per confidence bin
``cbpe``    (R, C, C)     expected confusion from calibrated class scores (no labels needed; only
                          with scores and a reference with calibration maps)
``cbpe_v``  (R, 2)        scored predictions in ``cbpe``, sum of p(1 - p) of the predicted class
``cbpe_c``  (R, C, 10)    the same predictions per predicted class x confidence bin (calibration error)
==========  ============  ==============================================================================

Memory: ``(9 + C + 2 C^2 + 30 + 2 + 10 C) x 8`` bytes per row (9.3 kB at the default 20 classes +
other).
The confidence of a prediction is the score of its predicted class.

>>> ref = {"task": "multiclass", "classes": ["a", "b", "__other__"]}
>>> t = MulticlassTask(ref)
>>> t.decode_labels(["a", "zzz", 7, True]).y.tolist()
[0.0, 2.0, 2.0, nan]
>>> p = t.prediction_columns([{"predicted_class": "b", "scores": {"a": 0.3, "b": 0.7}}, {"scores": {"a": 0.9, "b": 0.1}}])
>>> p.klass.tolist(), p.value.tolist()
([1, 0], [0.7, 0.9])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from detector.core.checks.window import Result
from detector.core.inputs.validate import SCORES_SUM_TOL
from detector.core.outcomes.estimate.calibration import score_bin
from detector.core.outcomes.estimate.cbpe import (
    N_CAL_BINS,
    calibrated_classes,
    coarse_calibration_var,
    multiclass_estimates,
)
from detector.core.outcomes.tasks.base import (
    CheckContext,
    Counters,
    LabelDecode,
    PredictionColumns,
    Ranking,
    column,
    fold,
)
from detector.core.outcomes.tasks.multiclass_checks import MulticlassThresholds, multiclass_checks
from detector.core.outcomes.tasks.multiclass_confusion import confusion_metrics, macro_f1_se
from detector.core.stats.effects import div

__all__ = ["MulticlassTask", "CNT", "N_REL"]

CNT = ("pred", "classified", "scored", "lab", "lc", "correct", "sc", "conf_s", "conf_y")
I = {k: i for i, k in enumerate(CNT)}  # noqa: E741 - column index of each counter
N_REL = 10
_SCORE_TOL = SCORES_SUM_TOL  # class scores are probabilities: their sum may exceed 1 by at most this (rounding)


def _class_name(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return str(int(v))
    return None


class MulticlassTask:
    """The multiclass task for one model (built from its task reference, see :mod:`.reference`)."""

    name: ClassVar[str] = "multiclass"
    error_types: ClassVar[tuple[str, ...]] = ("misclassified",)

    def __init__(self, ref: Mapping[str, Any], thresholds: Any = None) -> None:
        classes = list(ref.get("classes") or [])
        if len(classes) < 2 or classes[-1] != "__other__":
            raise ValueError("a multiclass reference needs its class list ending in '__other__'; "
                             "run `skewwatch baseline --task multiclass`")
        self.ref = ref
        self.classes = classes
        self.C = len(classes)
        self.code = {c: i for i, c in enumerate(classes[:-1])}
        self.cal = ref.get("calibration") if ref.get("calibration") and len(ref["calibration"]) == self.C else None
        self.cal_var = coarse_calibration_var(self.cal) if self.cal is not None else None
        self.th = thresholds or MulticlassThresholds()

    def _codes(self, names: Sequence[str | None]) -> np.ndarray:
        other = self.C - 1
        get = self.code.get
        return np.fromiter((-1 if v is None else get(v, other) for v in names), dtype=np.int64, count=len(names))

    # ---------------------------------------------------------------- decoding
    def decode_labels(self, raw: Sequence[Any]) -> LabelDecode:
        """Class names (strings; integers are taken as names); classes beyond the reference's are ``__other__``."""
        names = [_class_name(v) for v in raw]
        codes = self._codes(names)
        ok = codes >= 0
        errors = [(i, "missing_field" if raw[i] is None else "bad_label",
                   "label event has no 'label'" if raw[i] is None else
                   f"label={str(raw[i])[:40]!r}: a multiclass label is the class name (a string, e.g. \"billing\"); "
                   "0/1 labels belong to a binary model, numbers to --task regression")
                  for i in np.flatnonzero(~ok).tolist()]
        return LabelDecode(np.where(ok, codes, np.nan).astype(np.float64), ok, errors)

    def prediction_columns(self, events: Sequence[Mapping[str, Any]]) -> PredictionColumns:
        """``predicted_class`` and/or ``scores`` (``{class: probability}``, summing to 1; argmax when no class)."""
        n = len(events)
        names = [_class_name(v) for v in column(events, "predicted_class")]
        raw_scores = column(events, "scores")
        klass = self._codes(names)
        ok = np.ones(n, bool)
        errors: list[tuple[int, str, str]] = []
        scores = None
        if any(s is not None for s in raw_scores):
            from detector.core.outcomes.tasks.reference import scores_matrix

            scores = scores_matrix(raw_scores, self.classes)
            for i, s in enumerate(raw_scores):
                if s is None:
                    continue
                vals = list(s.values()) if isinstance(s, dict) else None
                if not vals or not all(type(v) in (int, float) and 0.0 <= v <= 1.0 for v in vals) \
                        or sum(vals) > 1.0 + _SCORE_TOL:
                    ok[i] = False
                    scores[i] = np.nan
                    errors.append((i, "bad_scores", f"scores={str(s)[:60]}: class scores must be an object of "
                                                    "probabilities in [0, 1] summing to at most 1 (softmax output)"))
                elif klass[i] < 0:  # no predicted_class: the argmax of the scores
                    best = max(s.items(), key=lambda kv: kv[1])[0]
                    klass[i] = self._codes([_class_name(best) or str(best)])[0]
        bad_class = np.array([v is not None and nm is None for v, nm in zip(column(events, "predicted_class"), names, strict=True)],
                             dtype=bool)
        for i in np.flatnonzero((bad_class | (klass < 0)) & ok).tolist():  # one error per event
            ok[i] = False
            errors.append((i, "bad_prediction", "a multiclass prediction needs \"predicted_class\" (a class name) "
                                                "or \"scores\" ({class: probability})"))
        klass = np.where(ok, klass, -1)
        value = np.full(n, np.nan)
        if scores is not None:
            has = ok & ~np.isnan(scores).any(1) & (klass >= 0)
            value[has] = scores[np.flatnonzero(has), klass[has]]
        return PredictionColumns(value, klass, ok, scores, errors)

    # ---------------------------------------------------------------- counters
    def counters(self, rows: int) -> Counters:
        C = self.C
        return Counters(self.name, {"cnt": np.zeros((rows, len(CNT))), "pcls": np.zeros((rows, C)),
                                    "conf": np.zeros((rows, C, C)), "rel": np.zeros((rows, N_REL, 3)),
                                    "cbpe": np.zeros((rows, C, C)), "cbpe_v": np.zeros((rows, 2)),
                                    "cbpe_c": np.zeros((rows, C, N_CAL_BINS))})

    def add_predictions(self, c: Counters, ridx: np.ndarray, p: PredictionColumns,
                        features: Mapping[str, np.ndarray] | None = None) -> None:
        R, C = c.rows, self.C
        has = p.klass >= 0
        scored = ~np.isnan(p.value) & has
        w = np.stack([np.ones(p.n), has, scored], axis=1)
        c["cnt"][:, :3] += fold(ridx, R, 3, None, w)
        if has.any():
            k = np.flatnonzero(has)
            c["pcls"] += fold(ridx[k], R, C, p.klass[k], np.ones(k.size))
        if self.cal is not None and p.scores is not None and scored.any():
            k = np.flatnonzero(scored)
            q = calibrated_classes(self.cal, p.scores[k])  # (m, C), rows sum to 1
            kl = p.klass[k]
            for j in np.unique(kl).tolist():  # column j of the expected confusion: predictions of class j
                sel = kl == j
                c["cbpe"][:, :, j] += fold(ridx[k[sel]], R, C, None, q[sel])
            qp = q[np.arange(k.size), kl]
            c["cbpe_v"] += fold(ridx[k], R, 2, None, np.stack([np.ones(k.size), qp * (1 - qp)], axis=1))
            cb = kl * N_CAL_BINS + score_bin(p.value[k], N_CAL_BINS)
            c["cbpe_c"] += fold(ridx[k], R, C * N_CAL_BINS, cb, np.ones(k.size)).reshape(R, C, N_CAL_BINS)

    def add_pairs(self, c: Counters, ridx: np.ndarray, value: np.ndarray, klass: np.ndarray, y: np.ndarray,
                  weight: np.ndarray) -> None:
        """Fold pairs (``y`` = class code) with weight +1 (a label) or -1 (a label being replaced)."""
        R, C = c.rows, self.C
        yc = np.nan_to_num(y, nan=-1).astype(np.int64)
        has = (klass >= 0) & (yc >= 0)
        correct = has & (klass == yc)
        scored = has & ~np.isnan(value)
        s = np.where(scored, value, 0.0)
        w = np.stack([weight, weight * has, weight * correct, weight * scored, weight * s, weight * s * correct], axis=1)
        c["cnt"][:, 3:] += fold(ridx, R, 6, None, w)
        if has.any():
            k = np.flatnonzero(has)
            c["conf"] += fold(ridx[k], R, C * C, yc[k] * C + klass[k], weight[k]).reshape(R, C, C)
        if scored.any():
            k = np.flatnonzero(scored)
            b = score_bin(value[k], N_REL)
            for j, col in enumerate((np.ones(k.size), value[k], correct[k].astype(np.float64))):
                c["rel"][:, :, j] += fold(ridx[k], R, N_REL, b, weight[k] * col)

    # ---------------------------------------------------------------- metrics
    def metrics(self, c: Counters) -> dict[str, np.ndarray]:
        """Per row: counts, accuracy, macro-F1 (+ its SE), per-class precision / recall, mean confidence."""
        m = confusion_metrics(c["conf"])
        cnt = c["cnt"]
        out = {"predictions": cnt[:, I["pred"]], "labelled": cnt[:, I["lab"]], "accuracy": m["accuracy"],
               "macro_f1": m["macro_f1"], "macro_f1_se": macro_f1_se(c["conf"]), "precision": m["precision"],
               "recall": m["recall"], "mean_confidence": div(cnt[:, I["conf_s"]], cnt[:, I["sc"]])}
        if self.cal is not None:
            out.update({f"estimated_{k}": v for k, v in self.estimates(c).items()})
        return out

    def estimates(self, c: Counters) -> dict[str, np.ndarray]:
        """Accuracy and macro-F1 expected from the calibrated class scores (before labels), per row."""
        return multiclass_estimates(c["cbpe"], c["cbpe_v"], c["cbpe_c"], self.cal_var, self.ref.get("estimate_tau"))

    def checks(self, cur: Counters, base: Counters, ctx: CheckContext) -> list[Result]:
        return multiclass_checks(self, cur, base, ctx)

    def rank_errors(self, value: np.ndarray, klass: np.ndarray, y: np.ndarray, threshold: np.ndarray) -> Ranking:
        """A wrong class is an error; the more confident the wrong prediction, the worse (no score: margin 0)."""
        yc = np.nan_to_num(y, nan=-1).astype(np.int64)
        wrong = (klass >= 0) & (yc >= 0) & (klass != yc)
        return Ranking(np.where(wrong, 0, -1).astype(np.int64), np.where(wrong, np.nan_to_num(value), 0.0))

