"""PCA reconstruction error: how well the reference's joint structure still explains the numeric features.

Fitted at baseline (plain data, ``format = "skewwatch.pca/1"``): every numeric feature is turned
into normal scores by its reference quantiles (:mod:`.transform`) and standardised; principal
components are fitted on one half of the reference rows, keeping the fewest components that
explain ``variance`` (65%, as NannyML does) of the variance; the reconstruction error of a row is
the Euclidean distance between its standardised scores and their projection on those components.
Its mean and spread are measured on the *other* half (rows the fit did not see), with the
per-feature mean squared residual (the reference against which contributions are read).

Time of day: features that follow the clock (traffic at rush hour, temperature) move together
*because* of the clock, and within one hour they do not - a reference fitted on whole days would
call every rush hour a joint-structure change. When the reference has timestamps, each feature's
scores are therefore standardised by their own hour of day (UTC) before the fit, and production
rows by theirs (``hours``): the components describe how features move together *within* an
hour, which is what a one-hour window can show. Without timestamps the scores are standardised
over the whole reference (and the check leans on the production baseline, which follows the day).

A change in how features move together - a correlation that flips sign, a join that pairs the
wrong rows - leaves every marginal (and every per-feature check) unchanged and raises the
error: rows no longer sit where the components expect them.

Cost per row: ``F`` knot interpolations and one product with the ``F x F`` residual projector.

>>> rng = np.random.default_rng(0)
>>> a = rng.standard_normal(4000); b = a + 0.3 * rng.standard_normal(4000); c = rng.standard_normal(4000)
>>> spec = fit_pca({"a": a, "b": b, "c": c})
>>> m = PCAModel(spec)
>>> e_same, _ = m.errors({"a": a[:500], "b": b[:500], "c": c[:500]})
>>> e_flip, _ = m.errors({"a": a[:500], "b": -b[:500], "c": c[:500]})
>>> bool(e_flip.mean() > 1.5 * e_same.mean())
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from detector.core.checks.multivariate.transform import normal_scores, quantile_knots, score_knots
from detector.core.outcomes.estimate.stated_error import MIN_GROUP_ROWS, systematic_error

__all__ = ["PCA_FORMAT", "fit_pca", "PCAModel", "hours_of"]

PCA_FORMAT = "skewwatch.pca/1"


def hours_of(ts: np.ndarray) -> np.ndarray:
    """UTC hour of day (0..23) of epoch seconds; -1 where unknown (NaN).

    >>> hours_of(np.array([0.0, 3600.0 * 25 + 1, np.nan])).tolist()
    [0, 1, -1]
    """
    t = np.asarray(ts, dtype=np.float64)
    ok = np.isfinite(t)
    return np.where(ok, np.floor(np.mod(np.where(ok, t, 0.0), 86400.0) / 3600.0), -1).astype(np.int64)


def _matrix(columns: Mapping[str, np.ndarray], names: list[str], knots: list[Any]) -> np.ndarray:
    """Normal scores per column; ``knots``: dicts, or :func:`~.transform.score_knots` arrays (computed once)."""
    n = len(next(iter(columns.values()))) if columns else 0
    out = np.zeros((n, len(names)))
    for j, (name, k) in enumerate(zip(names, knots, strict=True)):
        col = columns.get(name)
        if col is not None:
            out[:, j] = normal_scores(np.asarray(col, dtype=np.float64), k)
    return out


def _hourly(X: np.ndarray, hours: np.ndarray | None, min_rows: int = 30) -> tuple[np.ndarray, np.ndarray] | None:
    """Per hour of day (24 x F) mean and SD of the scores; hours with few rows take the overall values."""
    if hours is None:
        return None
    mu, sd = np.tile(X.mean(0), (24, 1)), np.tile(X.std(0), (24, 1))
    for h in range(24):
        m = hours == h
        if m.sum() >= min_rows:
            mu[h], sd[h] = X[m].mean(0), X[m].std(0)
    return mu, np.where(sd > 1e-9, sd, 1.0)


def fit_pca(columns: Mapping[str, np.ndarray], variance: float = 0.65, max_rows: int = 100_000, seed: int = 0,
            max_features: int = 100, hours: np.ndarray | None = None) -> dict[str, Any]:
    """Fit the reconstruction model on reference numeric columns (see the module docstring).

    ``hours``: UTC hour of day (0..23, -1 unknown) of each row, when the reference has timestamps.
    """
    names = [k for k, v in columns.items() if np.asarray(v).dtype.kind in "fiub"]
    rng = np.random.default_rng(seed)
    n = len(next(iter(columns.values())))
    idx = np.arange(n) if n <= max_rows else np.sort(rng.choice(n, max_rows, replace=False))
    knots, keep = [], []
    for name in names:
        x = np.asarray(columns[name], dtype=np.float64)[idx]
        k = quantile_knots(x)
        if len(k["x"]) >= 3:  # a (nearly) constant feature has no joint structure to watch
            knots.append(k)
            keep.append(name)
    keep, knots = keep[:max_features], knots[:max_features]
    if len(keep) < 2:
        raise ValueError(f"multivariate drift needs at least 2 numeric features that vary; found {len(keep)}")
    Z = _matrix({k: np.asarray(columns[k])[idx] for k in keep}, keep, knots)
    hrs = None if hours is None else np.asarray(hours)[idx]
    hourly = _hourly(Z, hrs)
    mu, sd = Z.mean(0), Z.std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    X = _standardise(Z, mu, sd, hourly, hrs)
    half = rng.permutation(len(X)) % 2 == 0
    A, B = X[half], X[~half]
    _, s, vt = np.linalg.svd(A - A.mean(0), full_matrices=False)
    ratio = s**2 / np.sum(s**2)
    k = int(np.searchsorted(np.cumsum(ratio), variance) + 1)
    k = min(k, len(keep) - 1)
    W = vt[:k]
    R = B - (B @ W.T) @ W
    e = np.sqrt((R * R).sum(1))
    tau = 0.0
    if hrs is not None:  # how far an hour's mean error strays beyond sampling (after the hourly standardisation)
        hb = hrs[~half]
        gs = [g for g in range(24) if (hb == g).sum() >= MIN_GROUP_ROWS]
        if gs:
            tau = systematic_error(np.array([e[hb == g].mean() for g in gs]), np.full(len(gs), e.mean()),
                                   np.array([e[hb == g].std() / np.sqrt((hb == g).sum()) for g in gs]))
    return {"format": PCA_FORMAT, "features": keep, "knots": knots, "mean": mu.tolist(), "std": sd.tolist(),
            "hourly": None if hourly is None else {"mean": hourly[0].tolist(), "std": hourly[1].tolist()},
            "components": W.tolist(), "explained": [float(v) for v in ratio[:k]], "variance": variance,
            "error": {"mean": float(e.mean()), "sd": float(e.std(ddof=1)), "n": int(e.size), "tau": tau},
            "residual_sq_mean": [float(v) for v in (R * R).mean(0)]}


def _standardise(Z: np.ndarray, mu: np.ndarray, sd: np.ndarray, hourly: tuple[np.ndarray, np.ndarray] | None,
                 hours: np.ndarray | None) -> np.ndarray:
    if hourly is None or hours is None:
        return (Z - mu) / sd
    h = np.asarray(hours)
    ok = (h >= 0) & (h < 24)
    hh = np.where(ok, h, 0)
    return np.where(ok[:, None], (Z - hourly[0][hh]) / hourly[1][hh], (Z - mu) / sd)


class PCAModel:
    """A fitted reconstruction model: ``errors(columns)`` per row."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if spec.get("format") != PCA_FORMAT:
            raise ValueError(f"PCA model has format {spec.get('format')!r}; expected {PCA_FORMAT!r}")
        self.spec = spec
        self.features: list[str] = list(spec["features"])
        self.knots = [score_knots(k) for k in spec["knots"]]
        self.mu = np.asarray(spec["mean"], dtype=np.float64)
        self.sd = np.asarray(spec["std"], dtype=np.float64)
        self.W = np.asarray(spec["components"], dtype=np.float64)
        hz = spec.get("hourly")
        self.hourly = None if not hz else (np.asarray(hz["mean"], dtype=np.float64), np.asarray(hz["std"], dtype=np.float64))
        if self.W.shape[1] != len(self.features):
            raise ValueError("PCA model: components do not match its features")
        # the residual projector I - W'W, contiguous: one (n x F) @ (F x F) product per batch (a product
        # through the (F x k) components' transpose runs tens of times slower in a threaded BLAS)
        self.P = np.ascontiguousarray(np.eye(self.W.shape[1]) - self.W.T @ self.W)

    @property
    def F(self) -> int:
        return len(self.features)

    def errors(self, columns: Mapping[str, np.ndarray], hours: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(reconstruction error per row, squared residual per row and feature); absent features count as missing.

        ``hours``: UTC hour of day of each row (needed when the model was fitted by hour).
        """
        X = _standardise(_matrix(columns, self.features, self.knots), self.mu, self.sd, self.hourly, hours)
        R = X @ self.P
        r2 = R * R
        return np.sqrt(r2.sum(1)), r2
