"""Binary classifiers (fraud, churn): a ``score`` in [0, 1], a 0/1 label - today's outcome model behind the task interface.

This is an adapter: the counters are exactly those of :class:`~detector.core.outcomes.cohort.Cohort`
(``cnt``, ``rel``, ``hist``; the label-delay histogram is not task-specific and stays with the
cohort) and the checks are :func:`~detector.core.outcomes.checks.outcome_checks`, so binary
models behave as before. New here: ``phist``, the ``(not acted / acted) x 100 score bins``
histogram of *all* predictions (``2 x 100 x 8`` bytes per row), from which
:func:`~detector.core.outcomes.estimate.cbpe.binary_estimates` estimates accuracy, precision, recall and
ROC AUC before any label arrives. docs/tasks-integration.md describes how cohort.py and
checks.py move behind this module.

The decision (acted or not) is the monitor's policy (the event's ``decision``, else its
``threshold``, else the default threshold): the caller sets ``klass`` to 0/1 before folding.

>>> t = BinaryTask()
>>> t.decode_labels([1, 0.0, True, "1", 2]).ok.tolist()
[True, True, True, False, False]
>>> p = t.prediction_columns([{"score": 0.9, "threshold": 0.5}, {"score": 1.7}])
>>> p.ok.tolist(), p.errors[0][1]
([True, False], 'bad_score')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.checks import Arrays, OutcomeThresholds, outcome_checks
from detector.core.outcomes.cohort import (
    N_HIST,
    N_REL,
    NC,
    C,
    Cohort,
    auc_se,
    average_precision,
    binned_auc,
    brier,
    ece,
)
from detector.core.outcomes.estimate.calibration import score_bin
from detector.core.outcomes.tasks.base import (
    CheckContext,
    Counters,
    LabelDecode,
    PredictionColumns,
    Ranking,
    column,
    column_or,
    decode_each,
    fold,
)
from detector.core.stats.effects import div

__all__ = ["BinaryTask"]


class _CohortView(Cohort):
    """A Cohort whose arrays are a Counters' arrays (so Cohort's own folding code does the work)."""

    def __init__(self, c: Counters) -> None:  # noqa: D107 - deliberately not the dataclass __init__
        self.start = self.end = 0.0
        self.rows = c.rows
        self.cnt, self.rel, self.hist = c["cnt"], c["rel"], c["hist"]
        self.delay = np.zeros((0, 0))


class BinaryTask:
    """The binary task (reference optional: without one there are no estimates)."""

    name: ClassVar[str] = "binary"
    error_types: ClassVar[tuple[str, ...]] = ("false_positive", "false_negative")

    def __init__(self, ref: Mapping[str, Any] | None = None, thresholds: OutcomeThresholds | None = None) -> None:
        self.ref = ref or {}
        self.cal = self.ref.get("calibration")
        self.th = thresholds or OutcomeThresholds()

    # ---------------------------------------------------------------- decoding
    def decode_labels(self, raw: Sequence[Any]) -> LabelDecode:
        return decode_each(raw, lambda v: float(v) if type(v) in (int, float, bool) and v in (0, 1) else None,
                           "label event has no 'label'; a binary label is 0/1 or true/false",
                           lambda v: f"label={str(v)[:40]!r}: binary labels must be 0/1 or true/false "
                                     "(class names belong to --task multiclass, numbers to --task regression)")

    def prediction_columns(self, events: Sequence[Mapping[str, Any]]) -> PredictionColumns:
        """``score`` (``prediction`` when no score is sent): a probability in [0, 1]; optional ``threshold``."""
        raw = column_or(events, "score", "prediction")  # per event: "prediction" stands in for an absent "score"
        n = len(raw)
        value = np.full(n, np.nan)
        ok = np.ones(n, bool)
        errors: list[tuple[int, str, str]] = []
        for i, v in enumerate(raw):
            if v is None:
                continue
            if type(v) in (int, float) and math.isfinite(v) and 0.0 <= v <= 1.0:
                value[i] = v
            else:
                ok[i] = False
                errors.append((i, "bad_score", f"score={str(v)[:40]!r} must be a probability in [0, 1]; a model with "
                                               "another numeric output is monitored with --task regression"))
        thr = np.array([t if type(t) in (int, float) else np.nan for t in column(events, "threshold")], dtype=np.float64)
        return PredictionColumns(value, np.full(n, -1, dtype=np.int64), ok, None, errors, threshold=thr)

    # ---------------------------------------------------------------- counters
    def counters(self, rows: int) -> Counters:
        return Counters(self.name, {"cnt": np.zeros((rows, NC)), "rel": np.zeros((rows, N_REL, 3)),
                                    "hist": np.zeros((rows, 2, N_HIST)), "phist": np.zeros((rows, 2, N_HIST))})

    def add_predictions(self, c: Counters, ridx: np.ndarray, p: PredictionColumns,
                        features: Mapping[str, np.ndarray] | None = None) -> None:
        """``p.klass``: the decision (1 acted, 0 not, -1 unknown) set by the caller's policy."""
        thr = p.threshold if p.threshold is not None else np.full(p.n, np.nan)
        _CohortView(c).add_predictions(ridx, p.value, p.klass.astype(np.int8), thr)
        k = np.flatnonzero(~np.isnan(p.value) & (p.klass >= 0))
        if k.size:
            b = score_bin(p.value[k], N_HIST) + N_HIST * (p.klass[k] > 0)
            c["phist"] += fold(ridx[k], c.rows, 2 * N_HIST, b, np.ones(k.size)).reshape(c.rows, 2, N_HIST)

    def add_pairs(self, c: Counters, ridx: np.ndarray, value: np.ndarray, klass: np.ndarray, y: np.ndarray,
                  weight: np.ndarray) -> None:
        _CohortView(c).add_pairs(ridx, value, klass.astype(np.int8), y, weight, None)

    # ---------------------------------------------------------------- metrics and checks
    def metrics(self, c: Counters) -> dict[str, np.ndarray]:
        cnt = c["cnt"]
        neg, pos = c["hist"][:, 0, :], c["hist"][:, 1, :]
        auc, _ = binned_auc(neg, pos)
        tp, fp, fn = cnt[:, C["tp"]], cnt[:, C["fp"]], cnt[:, C["fn"]]
        out = {"predictions": cnt[:, C["pred"]], "labelled": cnt[:, C["lab"]], "base_rate": div(cnt[:, C["pos"]], cnt[:, C["lab"]]),
               "auc": auc, "auc_se": auc_se(auc, pos.sum(1), neg.sum(1)), "pr_auc": average_precision(neg, pos),
               "ece": ece(c["rel"]), "brier": brier(cnt), "precision": div(tp, tp + fp), "recall": div(tp, tp + fn),
               "accuracy": div(tp + cnt[:, C["tn"]], tp + fp + fn + cnt[:, C["tn"]])}
        if self.cal is not None:
            out.update({f"estimated_{k}": v for k, v in self.estimates(c).items()})
        return out

    def estimates(self, c: Counters) -> dict[str, np.ndarray]:
        """Accuracy, precision, recall and ROC AUC expected from the score histogram (before labels), per row."""
        from detector.core.outcomes.estimate.cbpe import binary_estimates

        if self.cal is None:
            raise ValueError("no calibration map in the reference: run `skewwatch baseline` with --label-column and "
                             "--score-column to estimate performance before labels")
        return binary_estimates(c["phist"], self.cal, self.ref.get("estimate_tau"))

    def checks(self, cur: Counters, base: Counters, ctx: CheckContext) -> list[Result]:
        """Today's :func:`outcome_checks`; ``ctx.extra`` carries the cohort's generic arrays and training values.

        ``ctx.extra``: ``delay`` / ``arrivals`` (cur, base) pseudo-row arrays and ``outcome_args``,
        the keyword arguments of :func:`outcome_checks` the monitor computes (``ref_rate``, ...).
        """
        ex = ctx.extra
        a_cur = Arrays(cur["cnt"], cur["rel"], cur["hist"], ex["delay"][0], ex["arrivals"][0])
        a_base = Arrays(base["cnt"], base["rel"], base["hist"], ex["delay"][1], ex["arrivals"][1])
        day = ctx.day["cnt"] if ctx.day is not None else None
        return outcome_checks(a_cur, a_base, self.th, comp=ctx.comp, day=day, inputs_stable=ctx.inputs_stable,
                              **ex["outcome_args"])

    def rank_errors(self, value: np.ndarray, klass: np.ndarray, y: np.ndarray, threshold: np.ndarray) -> Ranking:
        """False positives (acted, label 0: margin score - threshold) and false negatives (threshold - score)."""
        kind = np.where((klass == 1) & (y == 0), 0, np.where((klass == 0) & (y == 1), 1, -1))
        margin = np.where(kind == 0, value - threshold, threshold - value)
        return Ranking(kind.astype(np.int64), np.where((kind >= 0) & np.isfinite(margin), margin, 0.0))
