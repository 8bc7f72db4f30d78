"""Regression models (demand, price, ETA): a numeric ``prediction``, a numeric label.

Counters per slice row (``Counters`` arrays; ``B`` prediction bins, ``T`` target bins - the
reference's decile edges, so 10 each by default - and ``E`` log-spaced error bins):

==========  ==============  ===========================================================================
array       shape           what
==========  ==============  ===========================================================================
``cnt``     (R, 11)         predictions, with a value, sum / sum of squares of the prediction; labelled
                            pairs, labelled with a prediction, sums of y, y^2, error e = pred - y, |e|, e^2
``phist``   (R, B)          prediction histogram of *all* predictions (prediction drift, no labels needed)
``joint``   (R, B, T)       labelled pairs: prediction bin x target bin (target drift, label histogram)
``perr``    (R, B, 4)       per prediction bin: sum |e|, e^2, e, prediction (errors for this prediction mix)
``ehist``   (R, 2, E)       |e| on fixed log-spaced bins (relative to the reference error scale), by sign
``dle``     (R, 5)          with a DLE model only: predictions estimated, sum m, m^2, m^4 of the expected |e|,
                            sum of its variance
==========  ==============  ===========================================================================

Memory: ``(11 + B + B T + 4 B + 2 E + 5) x 8`` bytes per row (~2.7 kB with 10 x 10 bins and
``E = 72``). Error quantiles come from ``ehist``: within one bin, i.e. 10 bins per decade, so
a quantile is exact to a factor ``10 ** 0.1`` (+-12%), log-linearly interpolated inside it;
MAE, RMSE and bias are exact (from the sums). Everything is a sum: workers merge by addition.

>>> ref = {"task": "regression", "target": {"edges": [1.0, 2.0, 3.0], "hist": [0.25] * 4, "n": 100},
...        "errors": {"scale": 0.5}}
>>> t = RegressionTask(ref)
>>> lab = t.decode_labels([2.5, "7", True, None, float("inf")])
>>> lab.ok.tolist(), [e[1] for e in lab.errors]
([True, False, False, False, False], ['bad_label', 'bad_label', 'missing_field', 'bad_label'])
>>> c = t.counters(1)
>>> p = t.prediction_columns([{"prediction": 2.0}, {"prediction": 4.0}])
>>> t.add_predictions(c, np.zeros((2, 1), dtype=np.int64), p)
>>> t.add_pairs(c, np.zeros((2, 1), dtype=np.int64), p.value, p.klass, np.array([2.5, 3.0]), np.ones(2))
>>> m = t.metrics(c); float(m["mae"][0]), float(m["bias"][0]), round(float(m["rmse"][0]), 4)
(0.75, 0.25, 0.7906)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from detector.core.checks.window import Result
from detector.core.outcomes.tasks.base import (
    CheckContext,
    Counters,
    LabelDecode,
    PredictionColumns,
    Ranking,
    column_or,
    decode_each,
    fold,
)
from detector.core.outcomes.tasks.regression_checks import CNT, I, RegressionThresholds, regression_checks
from detector.core.stats.effects import bin_of, div, hist_quantile

__all__ = ["RegressionTask", "CNT", "ERR_EDGES_REL"]

#: |error| bin edges relative to the reference error scale: 1e-4 .. 1e3 x scale, 10 per decade
ERR_EDGES_REL = 10.0 ** (np.arange(-40, 31) / 10.0)


def _edges(ref: Mapping[str, Any], key: str) -> np.ndarray | None:
    part = ref.get(key)
    if not part or not part.get("edges"):
        return None
    return np.asarray(part["edges"], dtype=np.float64)


class RegressionTask:
    """The regression task for one model (built from its task reference, see :mod:`.reference`)."""

    name: ClassVar[str] = "regression"
    error_types: ClassVar[tuple[str, ...]] = ("over_prediction", "under_prediction")

    def __init__(self, ref: Mapping[str, Any], thresholds: Any = None) -> None:
        t_edges = _edges(ref, "target")
        p_edges = _edges(ref, "prediction")
        if t_edges is None and p_edges is None:
            raise ValueError("a regression reference needs the target's or the prediction's quantile edges; "
                             "run `skewwatch baseline --task regression` with --label-column or --prediction-column")
        self.ref = ref
        self.t_edges = t_edges if t_edges is not None else p_edges
        self.p_edges = p_edges if p_edges is not None else t_edges
        scale = float((ref.get("errors") or {}).get("scale") or 0.0)
        if not scale > 0:
            tgt = ref.get("target") or {}
            scale = 0.1 * float(tgt.get("std") or 0.0) or 1.0
        self.scale = scale
        self.e_edges = ERR_EDGES_REL * scale
        self.B, self.T, self.E = len(self.p_edges) + 1, len(self.t_edges) + 1, len(self.e_edges) + 1
        self.dle = None
        if ref.get("dle"):
            from detector.core.outcomes.estimate.dle import DLEModel

            self.dle = DLEModel(ref["dle"])
        self.th = thresholds or RegressionThresholds()

    # ---------------------------------------------------------------- decoding
    def decode_labels(self, raw: Sequence[Any]) -> LabelDecode:
        """Numbers (int or float, finite); anything else is an error naming the fix."""
        return decode_each(raw, lambda v: float(v) if type(v) in (int, float) and math.isfinite(v) else None,
                           "label event has no 'label'; a regression label is a number", _bad_target)

    def prediction_columns(self, events: Sequence[Mapping[str, Any]]) -> PredictionColumns:
        """``prediction`` (a finite number; ``score`` is accepted when ``prediction`` is absent)."""
        raw = column_or(events, "prediction", "score")  # per event: "score" stands in for an absent "prediction"
        n = len(raw)
        ok = np.ones(n, bool)
        errors: list[tuple[int, str, str]] = []
        if set(map(type, raw)) <= {int, float, type(None)}:
            value = np.array(raw, dtype=np.float64)  # None -> NaN
            bad = ~np.isfinite(value) & np.fromiter((v is not None for v in raw), bool, n)
        else:  # strings, booleans, objects: checked one by one (numpy would parse "12.5" silently)
            value = np.full(n, np.nan)
            bad = np.zeros(n, bool)
            for i, v in enumerate(raw):
                if type(v) in (int, float) and math.isfinite(v):
                    value[i] = v
                elif v is not None:
                    bad[i] = True
        for i in np.flatnonzero(bad).tolist():
            value[i] = np.nan
            ok[i] = False
            errors.append((i, "bad_prediction", f"prediction={str(raw[i])[:40]!r} must be a finite number "
                                                "(a regression model's output)"))
        return PredictionColumns(value, np.full(n, -1, dtype=np.int64), ok, None, errors)

    # ---------------------------------------------------------------- counters
    def counters(self, rows: int) -> Counters:
        arrays = {"cnt": np.zeros((rows, len(CNT))), "phist": np.zeros((rows, self.B)),
                  "joint": np.zeros((rows, self.B, self.T)), "perr": np.zeros((rows, self.B, 4)),
                  "ehist": np.zeros((rows, 2, self.E))}
        if self.dle is not None:
            arrays["dle"] = np.zeros((rows, 5))
        return Counters(self.name, arrays)

    def add_predictions(self, c: Counters, ridx: np.ndarray, p: PredictionColumns,
                        features: Mapping[str, np.ndarray] | None = None) -> None:
        R = c.rows
        v = p.value
        fin = np.isfinite(v)
        x = np.where(fin, v, 0.0)
        w = np.stack([np.ones(len(v)), fin, x, x * x], axis=1)
        c["cnt"][:, :4] += fold(ridx, R, 4, None, w)
        if fin.any():
            k = np.flatnonzero(fin)
            c["phist"] += fold(ridx[k], R, self.B, bin_of(v[k], self.p_edges), np.ones(k.size))
        if self.dle is not None and features is not None and fin.any():
            k = np.flatnonzero(fin)
            m, var = self.dle.predict_with_var({name: col[k] for name, col in features.items()}, v[k])
            c["dle"] += fold(ridx[k], R, 5, None, np.stack([np.ones(k.size), m, m * m, m**4, var], axis=1))

    def add_pairs(self, c: Counters, ridx: np.ndarray, value: np.ndarray, klass: np.ndarray, y: np.ndarray,
                  weight: np.ndarray) -> None:
        """Fold pairs with weight +1 (a label) or -1 (a label being replaced by a correction)."""
        R = c.rows
        c["cnt"][:, I["lab"]] += fold(ridx, R, 1, np.zeros(len(y), dtype=np.int64), weight)[:, 0]
        ok = np.isfinite(value) & np.isfinite(y)
        if not ok.any():
            return
        k = np.flatnonzero(ok)
        r, v, yy, w = ridx[k], value[k], y[k], weight[k]
        e = v - yy
        ae = np.abs(e)
        cols = np.stack([w, w * yy, w * yy * yy, w * e, w * ae, w * e * e], axis=1)
        c["cnt"][:, I["lv"]:] += fold(r, R, 6, None, cols)
        pb, tb = bin_of(v, self.p_edges), bin_of(yy, self.t_edges)
        c["joint"] += fold(r, R, self.B * self.T, pb * self.T + tb, w).reshape(R, self.B, self.T)
        for j, col in enumerate((ae, e * e, e, v)):
            c["perr"][:, :, j] += fold(r, R, self.B, pb, w * col)
        eb = bin_of(ae, self.e_edges) + self.E * (e < 0)
        c["ehist"] += fold(r, R, 2 * self.E, eb, w).reshape(R, 2, self.E)

    # ---------------------------------------------------------------- metrics
    def metrics(self, c: Counters) -> dict[str, np.ndarray]:
        """Per row: counts, MAE, RMSE, bias (mean prediction - target), R^2, |error| quantiles, means."""
        cnt = c["cnt"]
        n = cnt[:, I["lv"]]
        mae, mse, bias = div(cnt[:, I["ea"]], n), div(cnt[:, I["es2"]], n), div(cnt[:, I["es"]], n)
        my = div(cnt[:, I["ys"]], n)
        sst = cnt[:, I["ys2"]] - n * np.nan_to_num(my) ** 2
        ah = c["ehist"].sum(1)
        out = {"predictions": cnt[:, I["pred"]], "labelled": cnt[:, I["lab"]], "mae": mae, "rmse": np.sqrt(mse),
               "bias": bias, "r2": 1.0 - div(cnt[:, I["es2"]], sst),
               "mean_prediction": div(cnt[:, I["ps"]], cnt[:, I["valued"]]), "mean_target": my}
        for q in (0.5, 0.9, 0.99):
            out[f"abs_error_p{round(q * 100)}"] = hist_quantile(ah, self.e_edges, q, log=True)
        if "dle" in c.arrays:
            from detector.core.outcomes.estimate.dle import estimated_errors

            est = estimated_errors(self.dle, c["dle"])  # type: ignore[arg-type]
            out.update({f"estimated_{k}": v for k, v in est.items()})
        return out

    def checks(self, cur: Counters, base: Counters, ctx: CheckContext) -> list[Result]:
        return regression_checks(self, cur, base, ctx)

    def rank_errors(self, value: np.ndarray, klass: np.ndarray, y: np.ndarray, threshold: np.ndarray) -> Ranking:
        """Every pair with a prediction is an error of some size: over (pred > y) or under; margin |e|."""
        e = value - y
        ok = np.isfinite(e)
        kind = np.where(ok, np.where(e >= 0, 0, 1), -1)
        return Ranking(kind.astype(np.int64), np.where(ok, np.abs(e), 0.0))


def _bad_target(v: Any) -> str:
    what = "a string" if isinstance(v, str) else ("true/false" if isinstance(v, bool) else f"{str(v)[:40]!r}")
    return (f"label={str(v)[:40]!r} is {what}: a regression model's label must be a finite JSON number "
            "(send 12.5, not \"12.5\"); for class names use --task multiclass")
