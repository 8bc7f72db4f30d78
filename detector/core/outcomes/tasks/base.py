"""The model-task interface: one object per task owns everything that depends on what the model predicts.

A *task* (``binary``, ``multiclass``, ``regression``) answers, for the outcome side of the
monitor:

* how a label is decoded (:meth:`Task.decode_labels`: 0/1, a class name, a number; a wrong
  type is an error naming the fix, never a silent drop);
* which prediction columns an event carries (:meth:`Task.prediction_columns`);
* which outcome counters a cohort keeps per slice row (:meth:`Task.counters`, a
  :class:`Counters` of named additive arrays) and how predictions and (prediction, label)
  pairs are folded into them (:meth:`Task.add_predictions`, :meth:`Task.add_pairs`);
* the metrics a cohort exports (:meth:`Task.metrics`) and the outcome checks it runs
  (:meth:`Task.checks`, a list of :class:`~detector.core.checks.result.Result` that
  :func:`~detector.core.decisions.select.select_findings` turns into findings: BH across every test,
  effect-size gates, slice localisation);
* which labelled predictions are the "worst errors" for the counterexample library
  (:meth:`Task.rank_errors`).

Counters are dense arrays indexed by slice row (row 0 = all traffic), so a batch folds in with a
few ``np.bincount`` calls (:func:`fold`), two workers' counters merge by addition, a complement
row is ``row 0 - row``, and the state is plain data (:meth:`Counters.to_state`: dtype, shape
and bytes per array, with a format version; never an executable format).

>>> c = Counters("demo", {"n": np.zeros((3, 2))})
>>> c.arrays["n"][0] += [1, 2]; c.arrays["n"][2] += [1, 0]
>>> d = Counters.from_state(c.to_state()); d.merge(c); d.arrays["n"].tolist()
[[2.0, 4.0], [0.0, 0.0], [2.0, 0.0]]
>>> d.pseudo(np.array([0, 2]), np.array([2])).arrays["n"].tolist()   # rows 0, 2, then "all but 2"
[[2.0, 4.0], [2.0, 0.0], [0.0, 4.0]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, ClassVar, Protocol

import numpy as np

from detector.core.checks.result import Result
from detector.core.outcomes.cohort import fold
from detector.core.state.codec import StateError, check

__all__ = ["Task", "Counters", "LabelDecode", "PredictionColumns", "CheckContext", "Ranking", "fold", "column",
           "decode_each", "COUNTERS_FORMAT", "labels_moved"]

COUNTERS_FORMAT = "skewwatch.counters/1"
_COUNTER_DTYPES = frozenset(np.dtype(f"{o}{k}{n}").str for o in "<>" for k, n in (
    ("b", 1), ("i", 1), ("i", 2), ("i", 4), ("i", 8), ("u", 1), ("u", 2), ("u", 4), ("u", 8), ("f", 4), ("f", 8)))


def column(events: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    """One top-level field of every event (None where absent), without a Python loop per event."""
    return list(map(dict.get, events, repeat(key))) if events and type(events[0]) is dict else [e.get(key) for e in events]


def column_or(events: Sequence[Mapping[str, Any]], key: str, fallback: str) -> list[Any]:
    """:func:`column` of ``key``, with ``fallback``'s value standing in per event where ``key`` is absent."""
    raw = column(events, key)
    if None in raw:
        raw = [f if v is None else v for v, f in zip(raw, column(events, fallback), strict=True)]
    return raw


@dataclass
class LabelDecode:
    """Decoded labels: ``y`` per event (NaN where not usable), ``ok`` mask, per-event errors.

    ``errors`` holds ``(index, code, message)``; the message names the problem and the fix so a
    shell can dead-letter the event with it.
    """

    y: np.ndarray
    ok: np.ndarray
    errors: list[tuple[int, str, str]] = field(default_factory=list)


def decode_each(raw: Sequence[Any], value: Callable[[Any], float | None], missing: str,
                bad: Callable[[Any], str]) -> LabelDecode:
    """Labels one at a time: ``value(v)`` is the label as a number, None when ``v`` is not one (the
    error says ``bad(v)``); an absent label says ``missing``. Both messages name the fix."""
    n = len(raw)
    y = np.full(n, np.nan)
    ok = np.zeros(n, bool)
    errors: list[tuple[int, str, str]] = []
    for i, v in enumerate(raw):
        x = None if v is None else value(v)
        if x is not None:
            y[i], ok[i] = x, True
        elif v is None:
            errors.append((i, "missing_field", missing))
        else:
            errors.append((i, "bad_label", bad(v)))
    return LabelDecode(y, ok, errors)

@dataclass
class PredictionColumns:
    """What a task reads from prediction events.

    * ``value``: binary score / regression prediction / multiclass confidence (the score of the
      predicted class); NaN when absent;
    * ``klass``: multiclass predicted class code (``-1`` none); binary ``-1`` (the decision
      policy lives in the monitor); regression ``-1``;
    * ``scores``: multiclass ``(n, C)`` class scores in class-code order (NaN row = none sent),
      else None; ``threshold``: binary decision threshold sent with the event (NaN = none), else None.

    Events whose prediction cannot be used have ``ok`` False and an entry in ``errors``; their
    features are still good input data (the caller counts the error and keeps the event for the
    input checks rather than dropping it).
    """

    value: np.ndarray
    klass: np.ndarray
    ok: np.ndarray
    scores: np.ndarray | None = None
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    threshold: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.value)

    def take(self, idx: np.ndarray | slice) -> PredictionColumns:
        return PredictionColumns(self.value[idx], self.klass[idx], self.ok[idx],
                                 None if self.scores is None else self.scores[idx],
                                 threshold=None if self.threshold is None else self.threshold[idx])


@dataclass
class Ranking:
    """Error type per labelled pair (index into the task's ``error_types``; -1 = not an error) and margin.

    A larger margin is a worse error (ranks first in the counterexample library).
    """

    kind: np.ndarray
    margin: np.ndarray


@dataclass
class CheckContext:
    """Everything a task's checks need besides the counters (per pseudo-row where an array).

    ``comp``: complement pseudo-rows (all traffic minus a slice); comparisons with training have
    none and mirror the all-traffic verdict on them. ``inputs_stable``: no input alert fired while
    the cohort matured (a moved prediction mix may then be a broken model, not a moved
    world, so label-drift checks also need the raw outcome to move). ``day``: the trailing day's
    counters as pseudo-rows (a full daily cycle, for comparisons with training), None before a
    full day has matured. ``reference``: the task's reference (see :mod:`detector.core.outcomes.tasks.reference`).
    """

    comp: np.ndarray
    inputs_stable: bool = True
    day: Counters | None = None
    reference: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def labels_moved(results: Sequence[Result], alpha: float = 0.01) -> np.ndarray:
    """Per pseudo-row: did the outcome's distribution move (any ``label_drift`` result tested, at p < ``alpha``
    and with at least half its warning effect)? Concept drift needs this to be False: performance that
    falls while the labels move is explained by the labels. (For binary models the monitor uses
    :func:`~detector.core.outcomes.checks.base_rate_shift` the same way.)
    """
    out: np.ndarray | None = None
    for r in results:
        if r.kind != "label_drift":
            continue
        thr = float(np.max(r.threshold)) if isinstance(r.threshold, np.ndarray) else float(r.threshold)
        eff = r.effect if r.effect is not None else np.abs(np.nan_to_num(r.value))
        half = np.log(thr) / 2 if thr > 1 else thr / 2
        m = r.tested & (np.nan_to_num(r.pvalue, nan=1.0) < alpha) & (eff >= half)
        out = m if out is None else out | m
    return out if out is not None else np.zeros(0, bool)


class Counters:
    """Named additive arrays of one cohort (first axis: slice row), declared by a task.

    Memory: the sum of the arrays' sizes x 8 bytes (each task states its per-row size).
    """

    __slots__ = ("task", "arrays")

    def __init__(self, task: str, arrays: dict[str, np.ndarray]) -> None:
        self.task = task
        self.arrays = arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        """Only for ``c[name] += x`` (numpy adds in place): the declared shapes never change."""
        a = self.arrays[name]
        if value is not a:
            a[...] = value

    @property
    def rows(self) -> int:
        return next(iter(self.arrays.values())).shape[0] if self.arrays else 0

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values())

    def _check(self, other: Counters) -> None:
        mine = {k: a.shape for k, a in self.arrays.items()}
        theirs = {k: a.shape for k, a in other.arrays.items()}
        if other.task != self.task or mine != theirs:
            raise ValueError(f"cannot merge {other.task} counters {theirs} into {self.task} counters {mine}: "
                             "both must come from the same task and reference")

    def merge(self, other: Counters) -> None:
        """Add ``other`` in place (another worker's, or another cohort's, counts)."""
        self._check(other)
        for k, a in self.arrays.items():
            a += other.arrays[k]

    def copy(self) -> Counters:
        return Counters(self.task, {k: a.copy() for k, a in self.arrays.items()})

    def zeros_like(self) -> Counters:
        return Counters(self.task, {k: np.zeros_like(a) for k, a in self.arrays.items()})

    def pseudo(self, real: np.ndarray, slice_rows: np.ndarray) -> Counters:
        """Pseudo-rows: the ``real`` rows, then the complement (row 0 minus it) of each of ``slice_rows``."""
        return Counters(self.task, {k: np.concatenate([a[real], a[0][None] - a[slice_rows]], axis=0)
                                    for k, a in self.arrays.items()})

    @classmethod
    def total(cls, items: Sequence[Counters]) -> Counters:
        """The sum of several cohorts' counters (e.g. a trailing baseline)."""
        out = items[0].copy()
        for c in items[1:]:
            out.merge(c)
        return out

    def to_state(self) -> dict[str, Any]:
        """Plain data: format, task and per array ``{"dtype", "shape", "data": bytes}``."""
        return {"format": COUNTERS_FORMAT, "task": self.task,
                "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}
                           for k, a in self.arrays.items()}}

    @classmethod
    def from_state(cls, st: Mapping[str, Any]) -> Counters:
        """Counters from :meth:`to_state`; state that is not exactly that raises :class:`StateError`.

        The state may come from a checkpoint anyone with write access to the state topic could
        forge: only numeric dtypes are read, and the bytes must be exactly what the shape says.
        """
        check(isinstance(st, Mapping), "counters state must be a map")
        if st.get("format") != COUNTERS_FORMAT:
            raise StateError(f"counters state has format {st.get('format')!r}; expected {COUNTERS_FORMAT!r}")
        check(isinstance(st.get("task"), str) and isinstance(st.get("arrays"), Mapping), "counters task / arrays")
        return cls(st["task"], {str(k): _counter_array(k, a) for k, a in st["arrays"].items()})


def _counter_array(name: Any, a: Any) -> np.ndarray:
    check(isinstance(a, Mapping), f"counters array {name!r} must be a map")
    dtype, shape, data = a.get("dtype"), a.get("shape"), a.get("data")
    check(dtype in _COUNTER_DTYPES, f"counters array {name!r} has dtype {dtype!r}; expected a numeric dtype")
    check(isinstance(shape, list) and len(shape) <= 8 and all(type(n) is int and n >= 0 for n in shape),
          f"counters array {name!r} has shape {shape!r}")
    dt = np.dtype(dtype)
    check(isinstance(data, bytes) and len(data) == math.prod(shape) * dt.itemsize,
          f"counters array {name!r}: {type(data).__name__} of {len(data) if isinstance(data, bytes) else '?'} bytes "
          f"for shape {shape} of {dt}")
    return np.frombuffer(data, dtype=dt).reshape(shape).copy()


class Task(Protocol):
    """What every model task provides (see the module docstring)."""

    name: ClassVar[str]
    error_types: ClassVar[tuple[str, ...]]

    def decode_labels(self, raw: Sequence[Any]) -> LabelDecode: ...

    def prediction_columns(self, events: Sequence[Mapping[str, Any]]) -> PredictionColumns: ...

    def counters(self, rows: int) -> Counters: ...

    def add_predictions(self, c: Counters, ridx: np.ndarray, p: PredictionColumns,
                        features: Mapping[str, np.ndarray] | None = None) -> None: ...

    def add_pairs(self, c: Counters, ridx: np.ndarray, value: np.ndarray, klass: np.ndarray, y: np.ndarray,
                  weight: np.ndarray) -> None: ...

    def metrics(self, c: Counters) -> dict[str, np.ndarray]: ...

    def checks(self, cur: Counters, base: Counters, ctx: CheckContext) -> list[Result]: ...

    def rank_errors(self, value: np.ndarray, klass: np.ndarray, y: np.ndarray, threshold: np.ndarray) -> Ranking: ...
