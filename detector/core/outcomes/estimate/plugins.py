"""The multiclass and regression plug-ins of the window estimates (:mod:`.monitor`; binary lives there).

A plug-in owns the counters a window keeps for its task's estimates and the arithmetic:

* **multiclass** (CBPE): the expected confusion of the window from the class scores, each read
  through its class's calibration map (``cbpe``, ``cbpe_v``, ``cbpe_c`` of
  :class:`~detector.core.outcomes.tasks.multiclass.MulticlassTask`, folded by that task's own code);
  expected accuracy and macro-F1 with their stated errors (:func:`.cbpe.multiclass_estimates`);
  tested against training's realised accuracy / macro-F1 (the decision is the argmax class, the
  same rule in training and production). Needs class scores in the events and calibration maps in
  the reference (``skewwatch baseline --task multiclass --scores-column``).
* **regression** (DLE): the expected |error| of each prediction from its inputs and the
  prediction itself (:class:`.dle.DLEModel`, fitted at baseline on held-out predictions), summed per
  window; expected MAE and RMSE with their stated errors, tested as ratios to training's realised
  MAE / RMSE (``estimated_mae_ratio``, ``estimated_rmse_ratio``).

At label maturity both meet their realised values (:meth:`PerformanceEstimates.matured`): the
matured cohort's task counters give the realised metric of all traffic (multiclass: the labelled
confusion matrix; regression: labelled pairs, sum of |error| and of error^2), pooled over windows
until it rests on :data:`~.stated_error.MIN_COUNTS` labelled pairs; the gap and its z feed the exported
estimate error and the stated error's inflation, as for binary models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.core.outcomes.cohort import fold
from detector.core.outcomes.estimate.cbpe import multiclass_estimates
from detector.core.outcomes.estimate.dle import DLEModel, estimated_errors
from detector.core.outcomes.estimate.stated_error import MIN_COUNTS
from detector.core.outcomes.tasks.base import Counters

__all__ = ["MulticlassEstimator", "RegressionEstimator"]

_UNSEEN = "\x00unseen"  # a served category the reference never saw: the DLE model's "other" bin


class MulticlassEstimator:
    """Expected accuracy and macro-F1 of a multiclass model from its calibrated class scores."""

    task = "multiclass"
    ratio = True
    metrics = ("accuracy", "macro_f1")
    keys = ("cbpe", "cbpe_v", "cbpe_c")
    source = "realised"

    def __init__(self, spec: Mapping[str, Any], default_threshold: float = 0.5, layout: Any = None) -> None:
        from detector.core.outcomes.tasks.multiclass import MulticlassTask

        self.t = MulticlassTask(spec)
        if self.t.cal is None:
            raise ValueError("no calibration maps in the multiclass reference: rebuild it with --scores-column")
        self.ref = dict(spec.get("metrics") or {})
        self.tau = {k: float(v) for k, v in (spec.get("estimate_tau") or {}).items()}
        self.realised_shapes = {"conf": (self.t.C, self.t.C)}  # labelled confusion (true x predicted) of all traffic

    def counters(self, rows: int) -> Counters:
        full = self.t.counters(rows)
        return Counters("estimate", {k: full[k] for k in self.keys})

    def fold(self, c: Counters, ridx: np.ndarray, b: Any) -> None:
        out = getattr(b, "outputs", None)
        if not out or all(s is None for s in out.get("scores") or []):
            return  # no class scores: nothing to estimate from
        events = [{"predicted_class": p, "scores": s} for p, s in zip(out["predicted_class"], out["scores"], strict=True)]
        p = self.t.prediction_columns(events)
        full = self.t.counters(c.rows)
        self.t.add_predictions(full, ridx, p)
        for k in self.keys:
            c[k] += full[k]

    def estimate(self, arrays: Mapping[str, np.ndarray], with_tau: bool = True) -> dict[str, np.ndarray]:
        return multiclass_estimates(arrays["cbpe"], arrays["cbpe_v"], arrays["cbpe_c"], self.t.cal_var,
                                    self.tau if with_tau else None)

    def reference(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {m: float(self.ref[m]) for m in self.metrics if self.ref.get(m) is not None} | {"n": float(self.ref.get("n") or 0)}

    def realised(self, cohort: Any) -> dict[str, np.ndarray]:
        """A matured cohort's labelled confusion matrix of all traffic (additive); empty without task counters."""
        tc = getattr(cohort, "tc", None)
        if tc is None or "conf" not in tc.arrays or tc["conf"].shape[1:] != self.realised_shapes["conf"]:
            return {}
        return {"conf": np.asarray(tc["conf"][0], dtype=np.float64).copy()}

    def realised_metrics(self, r: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
        """Realised accuracy and macro-F1 -> (value, labelled pairs), once they rest on :data:`MIN_COUNTS` pairs."""
        from detector.core.outcomes.tasks.multiclass_checks import confusion_metrics

        conf = r.get("conf")
        if conf is None:
            return {}
        n = float(conf.sum())
        if n <= 0:
            return {}
        m = confusion_metrics(conf[None])
        out = {k: (float(m[k][0]), n) for k in self.metrics if n >= MIN_COUNTS[k]}
        return {k: v for k, v in out.items() if v[0] == v[0]}


class RegressionEstimator:
    """Expected MAE and RMSE of a regression model from its inputs and predictions (the DLE model)."""

    task = "regression"
    ratio = False  # errors in the target's units
    metrics = ("mae", "rmse")
    keys = ("dle",)
    realised_shapes = {"err": (3,)}  # labelled pairs, sum |error|, sum error^2 (all traffic)
    source = "realised on held-out rows"

    def __init__(self, spec: Mapping[str, Any], default_threshold: float = 0.5, layout: Any = None) -> None:
        if not spec.get("dle"):
            raise ValueError("no expected-error model in the regression reference: rebuild it with its features")
        self.model = DLEModel(spec["dle"])
        self.ref = dict(spec.get("errors") or {})
        names = {i["name"] for i in self.model.inputs}
        self.num = [(n, j) for j, n in enumerate(getattr(layout, "numeric", []) or []) if n in names]
        vocab = getattr(layout, "cat_vocab", {}) or {}
        self.cat = [(n, j, np.array([*vocab[n], _UNSEEN, None], dtype=object))
                    for j, n in enumerate(getattr(layout, "categorical", []) or []) if n in names]

    def counters(self, rows: int) -> Counters:
        return Counters("estimate", {"dle": np.zeros((rows, 5))})

    def fold(self, c: Counters, ridx: np.ndarray, b: Any) -> None:
        v = b.score  # a regression model's prediction (detector.core.inputs.events)
        k = np.flatnonzero(np.isfinite(v))
        if k.size == 0:
            return
        feats: dict[str, np.ndarray] = {n: b.num[k, j] for n, j in self.num}
        for n, j, text in self.cat:
            feats[n] = text[np.clip(b.cat_codes[k, j], 0, len(text) - 1)]
        m, var = self.model.predict_with_var(feats, v[k])
        c["dle"] += fold(ridx[k], c.rows, 5, None, np.stack([np.ones(k.size), m, m * m, m**4, var], axis=1))

    def estimate(self, arrays: Mapping[str, np.ndarray], with_tau: bool = True) -> dict[str, np.ndarray]:
        return estimated_errors(self.model, arrays["dle"])

    def reference(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        return {k: float(self.ref[k]) for k in ("mae", "rmse", "mae_se", "rmse_se", "n") if self.ref.get(k) is not None}

    def realised(self, cohort: Any) -> dict[str, np.ndarray]:
        """A matured cohort's labelled pairs with a prediction, sum of |error| and of error^2 (all traffic)."""
        from detector.core.outcomes.tasks.regression_checks import I

        tc = getattr(cohort, "tc", None)
        if tc is None or "cnt" not in tc.arrays:
            return {}
        row = np.asarray(tc["cnt"][0], dtype=np.float64)
        return {"err": np.array([row[I["lv"]], row[I["ea"]], row[I["es2"]]])}

    def realised_metrics(self, r: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
        """Realised MAE and RMSE -> (value, labelled pairs), once they rest on :data:`MIN_COUNTS` pairs."""

        e = r.get("err")
        if e is None or e[0] <= 0:
            return {}
        n = float(e[0])
        vals = {"mae": float(e[1]) / n, "rmse": math.sqrt(max(float(e[2]), 0.0) / n)}
        return {k: (v, n) for k, v in vals.items() if n >= MIN_COUNTS[k]}
