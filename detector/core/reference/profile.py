"""The training reference profile: what "normal" looked like when the model was trained.

A :class:`Reference` is plain data (JSON on disk, ``format = "skewwatch.reference/1"``), built by
``skewwatch baseline`` (:mod:`detector.core.reference.build`) and read by the engine. Serving traffic is
compared to it for *skew*; drift is measured against production's own seasonal history instead.

Numeric features carry *fine* bin edges (unique 1%..99% quantiles, bracketed by the training
minimum and the value just above the training maximum). A value ``x`` falls in bin
``searchsorted(edges, x, side="right")``: bin 0 is "below the training minimum", the last bin is
"above the training maximum", and ``freqs`` holds the training share of every bin (summing to 1
over non-missing values). Coarse (decile) bins for PSI are unions of fine bins, so one histogram
per window serves PSI, Jensen-Shannon and KS at once.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

FORMAT = "skewwatch.reference/1"

__all__ = [
    "FORMAT",
    "NumericProfile",
    "CategoricalProfile",
    "Reference",
    "ReferenceError",
    "coarse_groups",
    "value_share",
]


class ReferenceError(ValueError):
    """A reference file is missing, unreadable or not a skewwatch reference."""


class _Counted:
    """What a feature profile says about its training count and missing values."""

    count: int
    missing: int

    @property
    def missing_rate(self) -> float:
        return self.missing / self.count if self.count else 0.0

    @property
    def n(self) -> int:
        """Non-missing training values."""
        return self.count - self.missing


@dataclass
class NumericProfile(_Counted):
    """Training distribution of one numeric feature (or of the model score)."""

    count: int  # rows seen, missing included
    missing: int  # null / absent / non-finite values
    edges: list[float]  # fine bin edges, strictly increasing; len >= 2
    freqs: list[float]  # training share per fine bin, len(edges) + 1, sums to 1
    min: float
    max: float
    median: float
    iqr: float
    mean: float
    std: float
    top_value: float | None  # most frequent exact value
    top_share: float  # its share among non-missing values
    log_abs_mean: float | None  # mean of log(|x|) over non-zero values (unit-change test)
    log_abs_std: float | None  # std of log(|x|) over non-zero values
    zero_share: float = 0.0
    integer: bool = False  # every non-missing value is integral
    type: Literal["numeric"] = "numeric"


@dataclass
class CategoricalProfile(_Counted):
    """Training distribution of one categorical feature (top categories + the rest)."""

    count: int
    missing: int
    categories: dict[str, float]  # share among non-missing values, most frequent first (top-K)
    other_share: float  # share of values beyond the stored top-K
    n_distinct: int
    top_value: str | None
    top_share: float
    type: Literal["categorical"] = "categorical"


Profile = NumericProfile | CategoricalProfile


@dataclass
class SliceProfile:
    """The same per-feature profiles restricted to rows with one slice value."""

    count: int
    features: dict[str, Profile]
    label_base_rate: float | None = None
    score: NumericProfile | None = None
    codes: dict[str, CategoricalProfile] = field(default_factory=dict)  # see Reference.codes


@dataclass
class Reference:
    n_rows: int
    features: dict[str, Profile]
    slices: dict[str, dict[str, SliceProfile]] = field(default_factory=dict)
    label_column: str | None = None
    label_base_rate: float | None = None
    label_count: int = 0
    score_column: str | None = None
    score: NumericProfile | None = None
    model: str | None = None
    source: str | None = None
    created: str | None = None
    audit: dict[str, Any] = field(default_factory=dict)  # leakage / availability findings
    # hour-of-day profiles of seasonal features (see detector.core.reference.hourly):
    # {"counts": [24], "features": {name: [24 x profile|None]}, "slices": {dim: {value: {name: [24]}}},
    #  "clock": [features the calendar sets, e.g. a local hour or weekday]}
    hourly: dict[str, Any] = field(default_factory=dict)
    time_column: str | None = None
    # numeric features with few distinct values (version codes 7.1, 7.2; counts): their values as
    # categories (canonical text, e.g. "7.1", "3"), used when serving sends them as strings
    # (detector.core.reference.reconcile)
    codes: dict[str, CategoricalProfile] = field(default_factory=dict)
    # the score against the label in training: {"auc", "slope", "slope_se", "positives", "negatives"}
    outcome: dict[str, Any] = field(default_factory=dict)
    # how the profile was read: {"rows_read", "rows_sampled", "seed", "method", "quantile_rank_error",
    # "confidence", "exact", "sampled"} (detector.core.reference.streamed); {} = every row profiled
    sample: dict[str, Any] = field(default_factory=dict)
    # the joint structure of the numeric features (detector.core.checks.multivariate.pca: fit_pca's plain
    # dict, standardised by hour of day when the data has a time column); {} = not fitted
    multivariate: dict[str, Any] = field(default_factory=dict)
    # what the model predicts and the outcome facts of its task (detector.core.outcomes.tasks.reference:
    # {"format": "skewwatch.task/1", "task": "binary" | "multiclass" | "regression", ...}); {} = a binary
    # classifier profiled as before (references older than tasks read as binary)
    task: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    @property
    def task_name(self) -> str:
        """``binary``, ``multiclass`` or ``regression`` (binary when the reference predates tasks)."""
        return str(self.task.get("task") or "binary")

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)

    def save(self, path: str | Path) -> None:
        data = self.to_json()
        p = Path(path)
        if p.suffix == ".gz":
            data = gzip.compress(data)
        p.write_bytes(data)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reference:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ReferenceError(
                f"not a skewwatch reference (format={d.get('format') if isinstance(d, dict) else None!r},"
                f" expected {FORMAT!r}); build one with `skewwatch baseline --data TRAIN --out REF.json`"
            )
        try:
            feats = {k: _profile(v) for k, v in d["features"].items()}
            slices = {
                dim: {
                    val: SliceProfile(
                        count=int(sp["count"]),
                        features={k: _profile(v) for k, v in sp.get("features", {}).items()},
                        label_base_rate=sp.get("label_base_rate"),
                        score=_profile(sp["score"]) if sp.get("score") else None,
                        codes={k: _profile(v) for k, v in (sp.get("codes") or {}).items()},  # type: ignore[misc]
                    )
                    for val, sp in vals.items()
                }
                for dim, vals in d.get("slices", {}).items()
            }
            score = d.get("score")
            return cls(
                n_rows=int(d["n_rows"]),
                features=feats,
                slices=slices,
                label_column=d.get("label_column"),
                label_base_rate=d.get("label_base_rate"),
                label_count=int(d.get("label_count") or 0),
                score_column=d.get("score_column"),
                score=_profile(score) if score else None,  # type: ignore[arg-type]
                model=d.get("model"),
                source=d.get("source"),
                created=d.get("created"),
                audit=d.get("audit") or {},
                hourly=_hourly(d.get("hourly") or {}),
                time_column=d.get("time_column"),
                codes={k: _profile(v) for k, v in (d.get("codes") or {}).items()},  # type: ignore[misc]
                outcome=dict(d.get("outcome") or {}),
                sample=d.get("sample") or {},
                multivariate=dict(d.get("multivariate") or {}),
                task=dict(d.get("task") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReferenceError(f"reference file is damaged ({type(exc).__name__}: {exc}); rebuild it") from exc

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ReferenceError(f"cannot read reference {p}: {exc.strerror or exc}") from exc
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ReferenceError(f"reference {p} is not valid JSON ({exc})") from exc
        return cls.from_dict(d)


def _hourly(h: dict[str, Any]) -> dict[str, Any]:
    if not h:
        return {}

    def _list(ps: list[Any]) -> list[Any]:
        return [_profile(p) if p else None for p in ps]

    return {
        "counts": list(h.get("counts", [])),
        "features": {k: _list(v) for k, v in h.get("features", {}).items()},
        "slices": {dim: {val: {k: _list(v) for k, v in per.items()} for val, per in vals.items()}
                   for dim, vals in h.get("slices", {}).items()},
        **({"clock": [str(k) for k in h["clock"]]} if h.get("clock") else {}),
    }


def _profile(d: dict[str, Any]) -> Profile:
    t = d.get("type")
    if t == "numeric":
        return NumericProfile(**{k: v for k, v in d.items() if k in NumericProfile.__dataclass_fields__})
    if t == "categorical":
        return CategoricalProfile(
            **{k: v for k, v in d.items() if k in CategoricalProfile.__dataclass_fields__}
        )
    raise ValueError(f"unknown profile type {t!r}")


def _clean(o: Any) -> Any:
    """JSON has no NaN/Inf: map them to None so the file stays standard JSON."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_clean(v) for v in o]
    if isinstance(o, np.generic):
        return _clean(o.item())
    return o


def value_share(p: NumericProfile | None, v: float) -> float:
    """Upper bound of the training share of one exact value (its top share, or its fine bin's).

    >>> p = NumericProfile(10, 0, [0.0, 1.0, 2.0], [0.0, 0.5, 0.5, 0.0], 0.0, 1.5, 1.0, 1.0, 1.0, 0.5, 1.0, 0.3, None, None)
    >>> value_share(p, 1.0), value_share(p, 0.5), value_share(p, 9.0)
    (0.3, 0.3, 0.0)
    """
    if p is None or not p.edges or p.n <= 0:
        return 0.0
    if p.top_value is not None and v == p.top_value:
        return float(p.top_share)
    if v < p.min or v > p.max:
        return 0.0
    b = int(np.searchsorted(np.asarray(p.edges), v, side="right"))
    return float(min(p.freqs[b], p.top_share))


def coarse_groups(edges: list[float] | np.ndarray, n_coarse: int = 10) -> np.ndarray:
    """Map every fine bin to a coarse bin so that coarse bins are ~equal-mass (decile) unions.

    Fine bins are ``len(edges) + 1`` (below-min, interior..., above-max). The below-min and
    above-max bins get coarse bins of their own so out-of-range mass is never hidden inside a
    decile. Returns an int array ``g`` with ``g[fine_bin] = coarse_bin``.

    >>> coarse_groups([0.0, 1.0, 2.0, 3.0], n_coarse=2).tolist()
    [0, 1, 1, 2, 3]
    """
    e = np.asarray(edges, dtype=np.float64)
    n_fine = len(e) + 1
    interior = n_fine - 2  # bins between edges[0] and edges[-1]
    g = np.empty(n_fine, dtype=np.int64)
    g[0] = 0
    if interior > 0:
        k = min(n_coarse, interior)
        g[1:-1] = 1 + (np.arange(interior) * k) // interior
        g[-1] = k + 1
    else:
        g[-1] = 1
    return g
