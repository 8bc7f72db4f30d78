"""Regression error estimated before labels arrive (direct loss estimation, DLE-style).

At baseline an *expected-|error| model* ``m(x, prediction)`` is fitted on the reference's
labelled rows: an additive model over quantile-binned inputs (each numeric input in decile bins
plus a missing bin, each categorical input in its top values plus "other" and "missing", the
prediction itself in decile bins), ridge-regularised (every bin effect is shrunk as if it had
``ridge`` extra rows at the overall mean) and fitted by least squares on ``|y - prediction|``,
so ``m`` is a conditional mean. No iterations, no randomness, closed form; a few hundred
coefficients as plain data (``format = "skewwatch.dle/1"``).

Five-fold cross-fitting measures how far the model is from the truth on rows it did not see:

* a second additive model ``v(x, prediction)`` of the squared out-of-fold deviation
  ``(|e| - m)^2``: the variance of a pair's |e| around its estimate (errors vary more where
  they are larger, and more in some regions than others); ``kappa = sum (|e| - m)^2 / sum m^2``
  summarises it;
* ``rho = sum e^2 / sum m^2``: the expected squared error of a pair is ``rho m^2``, so the
  window's expected RMSE is ``sqrt(rho sum m^2 / n)``; ``kappa4`` is the matching variance
  factor of ``e^2`` around ``rho m^2``;
* ``bias`` (mean of ``|e| - m``) and its standard error: the systematic error of the estimate;
* ``tau_rel``: with timestamps, the extra spread of an hour's MAE around its estimate beyond
  sampling (:mod:`.stated_error`), relative to the MAE - the model's misfit at some times of day.

Per window the counters hold ``n, sum m, sum m^2, sum m^4, sum v`` (additive), so the estimated
MAE is ``sum m / n`` with standard error ``sqrt(sum v / n^2 + bias_se^2 + (tau_rel MAE)^2)`` - the error of the
estimate against the MAE the labels will show, if the error process is unchanged.

Honest limits: the estimate assumes the distribution of the error *given the inputs* is what it
was in the reference (no concept drift: under a concept change the estimate stays put while the
realised error grows - the gap is then the signal, exported as the estimate's own error). It sees
only what its inputs show, additively (no interactions). When errors do not depend on the inputs
(homoscedastic noise), ``m`` is a constant and the estimate says only "as in training". The
reference must hold the model's predictions on rows it was not trained on: in-sample errors
understate production errors and so does an estimate fitted on them.

>>> rng = np.random.default_rng(0)
>>> x = rng.uniform(0, 1, 4000); pred = 10 * x; y = pred + rng.normal(0, 0.1 + 2 * x)
>>> spec = fit_dle({"x": x}, pred, y)
>>> model = DLEModel(spec)
>>> m = model.predict({"x": np.array([0.05, 0.95])}, np.array([0.5, 9.5]))
>>> bool(m[0] < 0.5 < 1.0 < m[1])     # small errors at small x, large ones at large x
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.core.outcomes.estimate.stated_error import MIN_GROUP_ROWS, systematic_error
from detector.core.stats.effects import bin_of, div

__all__ = ["DLE_FORMAT", "fit_dle", "DLEModel", "estimated_errors", "PREDICTION"]

DLE_FORMAT = "skewwatch.dle/1"
PREDICTION = "__prediction__"
_QS = np.arange(1, 10) / 10.0  # decile edges


def _numeric_input(name: str, x: np.ndarray) -> dict[str, Any] | None:
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        return None
    edges = np.unique(np.quantile(fin, _QS))
    return {"name": name, "type": "numeric", "edges": [float(e) for e in edges]}


def _categorical_input(name: str, x: np.ndarray, max_values: int) -> dict[str, Any] | None:
    vals = [v for v in x.tolist() if v is not None and v == v]
    if not vals:
        return None
    uniq, cnt = np.unique(np.asarray(vals, dtype=object).astype(str), return_counts=True)
    top = uniq[np.argsort(-cnt, kind="stable")][:max_values]
    return {"name": name, "type": "categorical", "values": [str(v) for v in top]}


def _codes(inp: Mapping[str, Any], x: np.ndarray | None, n: int) -> np.ndarray:
    """Bin of each row for one input: 0..k-1 values, k = "other"/above, last = missing."""
    if inp["type"] == "numeric":
        e = np.asarray(inp["edges"], dtype=np.float64)
        k = len(e) + 1
        if x is None:
            return np.full(n, k, dtype=np.int64)
        xf = np.asarray(x, dtype=np.float64)
        return np.where(np.isfinite(xf), bin_of(xf, e), k)
    values = inp["values"]
    k = len(values) + 1
    if x is None:
        return np.full(n, k, dtype=np.int64)
    lut = {v: i for i, v in enumerate(values)}
    other = len(values)
    return np.fromiter((k if v is None or v != v else lut.get(v if isinstance(v, str) else str(v), other)
                        for v in np.asarray(x, dtype=object).tolist()), dtype=np.int64, count=n)


def _width(inp: Mapping[str, Any]) -> int:
    return (len(inp["edges"]) + 2) if inp["type"] == "numeric" else (len(inp["values"]) + 2)


def _design(inputs: list[dict[str, Any]], cols: Mapping[str, np.ndarray], prediction: np.ndarray) -> np.ndarray:
    """(n, inputs) column index of each row's bin in the one-hot design."""
    n = len(prediction)
    off = 0
    out = np.empty((n, len(inputs)), dtype=np.int64)
    for j, inp in enumerate(inputs):
        x = prediction if inp["name"] == PREDICTION else cols.get(inp["name"])
        out[:, j] = off + _codes(inp, x, n)
        off += _width(inp)
    return out


def _solve(codes: np.ndarray, target: np.ndarray, D: int, ridge: float) -> tuple[float, np.ndarray]:
    """Ridge least squares on the one-hot design given as column indices: (intercept, coefficients)."""
    mu = float(target.mean())
    r = target - mu
    F = codes.shape[1]
    xtx = np.zeros((D, D))
    for a in range(F):
        for b in range(a, F):
            blk = np.bincount(codes[:, a] * D + codes[:, b], minlength=D * D).reshape(D, D)
            xtx += blk if a == b else blk + blk.T
    xty = np.zeros(D)
    for a in range(F):
        xty += np.bincount(codes[:, a], weights=r, minlength=D)
    beta = np.linalg.solve(xtx + ridge * np.eye(D), xty)
    return mu, beta


def fit_dle(features: Mapping[str, np.ndarray], prediction: np.ndarray, target: np.ndarray, *, ridge: float = 10.0,
            folds: int = 5, max_categories: int = 20, max_rows: int = 200_000, seed: int = 0,
            groups: np.ndarray | None = None) -> dict[str, Any]:
    """Fit the expected-|error| model on reference rows (see the module docstring); plain data out.

    ``features``: name -> column (float for numeric, str/None objects for categorical). Rows
    without a finite prediction and target are skipped; above ``max_rows`` a seeded uniform
    sample of that many rows is used. ``groups`` (hour of day per row, -1 unknown) measures the
    systematic error term ``tau_rel``.
    """
    pred = np.asarray(prediction, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    keep = np.flatnonzero(np.isfinite(pred) & np.isfinite(y))
    if keep.size < 50 * folds:
        raise ValueError(f"the expected-error model needs at least {50 * folds} labelled rows with a prediction; "
                         f"got {keep.size}")
    rng = np.random.default_rng(seed)
    if keep.size > max_rows:
        keep = np.sort(rng.choice(keep, max_rows, replace=False))
    cols = {k: np.asarray(v)[keep] for k, v in features.items()}
    pred, y = pred[keep], y[keep]
    grp = np.asarray(groups)[keep] if groups is not None else None
    inputs: list[dict[str, Any]] = []
    for name, x in cols.items():
        inp = _numeric_input(name, x.astype(np.float64)) if x.dtype.kind in "fiub" else _categorical_input(name, x, max_categories)
        if inp is not None:
            inputs.append(inp)
    inputs.append(_numeric_input(PREDICTION, pred) or {"name": PREDICTION, "type": "numeric", "edges": [0.0]})
    D = sum(_width(i) for i in inputs)
    codes = _design(inputs, cols, pred)
    ae = np.abs(pred - y)
    floor = 0.05 * float(ae.mean()) if ae.mean() > 0 else 1e-12
    fold_of = rng.permutation(len(y)) % folds
    oof = np.empty(len(y))
    for k in range(folds):
        tr, te = fold_of != k, fold_of == k
        mu, beta = _solve(codes[tr], ae[tr], D, ridge)
        oof[te] = np.maximum(mu + beta[codes[te]].sum(1), floor)
    mu, beta = _solve(codes, ae, D, ridge)
    m2 = float((oof * oof).sum())
    resid = ae - oof
    vfloor = 0.05 * float((resid * resid).mean())
    vmu, vbeta = _solve(codes, resid * resid, D, ridge)
    rho = float((ae * ae).sum() / m2)
    kappa4 = float(((ae * ae - rho * oof * oof) ** 2).sum() / (rho * rho * (oof**4).sum()))
    kappa = float((resid * resid).sum() / m2)
    tau_rel = 0.0
    if grp is not None:
        gs = [g for g in np.unique(grp[grp >= 0]).tolist() if (grp == g).sum() >= MIN_GROUP_ROWS]
        real = np.array([ae[grp == g].mean() for g in gs])
        est = np.array([oof[grp == g].mean() for g in gs])
        vv = np.maximum(vmu + vbeta[codes].sum(1), vfloor)
        se = np.array([np.sqrt(vv[grp == g].sum()) / (grp == g).sum() for g in gs])
        tau_rel = systematic_error(real, est, se) / float(oof.mean()) if gs else 0.0
    return {
        "format": DLE_FORMAT, "inputs": inputs, "tau_rel": tau_rel, "intercept": mu, "coef": [float(b) for b in beta], "floor": floor,
        "var_intercept": vmu, "var_coef": [float(b) for b in vbeta], "var_floor": vfloor,
        "ridge": ridge, "kappa": kappa, "rho": rho, "kappa4": kappa4,
        "bias": float(resid.mean()), "bias_se": float(resid.std(ddof=1) / np.sqrt(len(y))),
        "rows": int(len(y)), "mae": float(ae.mean()), "rmse": float(np.sqrt((ae * ae).mean())),
        "oof_mae_estimate": float(oof.mean()),
    }


class DLEModel:
    """A fitted expected-|error| model (plain data in, ``predict`` out)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if spec.get("format") != DLE_FORMAT:
            raise ValueError(f"DLE model has format {spec.get('format')!r}; expected {DLE_FORMAT!r}")
        self.spec = spec
        self.inputs = list(spec["inputs"])
        self.mu = float(spec["intercept"])
        self.beta = np.asarray(spec["coef"], dtype=np.float64)
        self.floor = float(spec["floor"])
        self.vmu, self.vbeta = float(spec["var_intercept"]), np.asarray(spec["var_coef"], dtype=np.float64)
        self.vfloor = float(spec["var_floor"])
        if len(self.beta) != sum(_width(i) for i in self.inputs) or len(self.vbeta) != len(self.beta):
            raise ValueError("DLE model: the number of coefficients does not match its inputs")

    def predict(self, features: Mapping[str, np.ndarray], prediction: np.ndarray) -> np.ndarray:
        """Expected |error| per row (an input absent from ``features`` counts as missing)."""
        return self.predict_with_var(features, prediction)[0]

    def predict_with_var(self, features: Mapping[str, np.ndarray], prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(expected |error|, variance of |error| around it) per row."""
        codes = _design(self.inputs, features, np.asarray(prediction, dtype=np.float64))
        return (np.maximum(self.mu + self.beta[codes].sum(1), self.floor),
                np.maximum(self.vmu + self.vbeta[codes].sum(1), self.vfloor))


def estimated_errors(model: DLEModel, dle: np.ndarray) -> dict[str, np.ndarray]:
    """Estimated MAE / RMSE and their standard errors per row of ``dle`` counters ``(n, sum m, m^2, m^4, v)``."""
    s = model.spec
    n, s1, s2, s4, sv = dle[..., 0], dle[..., 1], dle[..., 2], dle[..., 3], dle[..., 4]
    tau = float(s.get("tau_rel") or 0.0)
    mae = div(s1, n)
    mae_se = np.sqrt(div(sv, n * n) + s["bias_se"] ** 2 + (tau * mae) ** 2)
    mse = div(s["rho"] * s2, n)
    mse_se = np.sqrt(div(s["kappa4"] * s["rho"] ** 2 * s4, n * n) + (2 * tau * mse) ** 2)
    rmse = np.sqrt(mse)
    return {"mae": mae, "mae_se": mae_se, "rmse": rmse, "rmse_se": div(mse_se, 2 * rmse), "n": n}
