"""Where predictions wait for their labels: the label join's store of held predictions.

A :class:`RingStore` (behind the small :class:`PendingStore` protocol) holds only what outcome
evaluation needs, in preallocated numpy columns indexed by *slot* (model index, prediction ts,
score, predicted-positive flag, slice code per dimension, and the label state), plus one dict
``prediction_id -> slot``. Slots form a FIFO ring: a record leaves it after ``ttl`` of event
time (an unlabelled one is counted as *expired*) or, when the ring holds ``max_pending``
records, the oldest is evicted (counted as *evicted* if it was still unlabelled). A labelled
record stays in the ring until its TTL too, so a later correction still finds it. The join
itself - which label event does what to a held prediction - is :mod:`detector.core.outcomes.labels`.

Memory: per held prediction ``33 + 2 * dims`` bytes of columns plus the id string and its dict
entry (~100-150 bytes in CPython), so ``max_pending`` (default 5M) bounds it at roughly 1 GB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from detector.core.outcomes.ring import Column, Ring
from detector.core.state.codec import check

__all__ = ["PENDING", "PendingStore", "RingStore", "Rows"]

PENDING = float("nan")  # label column: no label yet (the label once labelled); test with np.isnan
_DEAD = float("inf")  # slot of a duplicate prediction id inside one batch (never indexed; labels are finite)


@dataclass
class Rows:
    """Columns of some held predictions (what evaluation needs, nothing else)."""

    model: np.ndarray  # int16 model index
    ts: np.ndarray  # float64 prediction time
    score: np.ndarray  # float64, NaN = none
    pred: np.ndarray  # int8 binary: 1 = acted / score >= threshold, 0 = not; multiclass: class code; -1 = unknown
    codes: np.ndarray  # (n, dims) int16 slice code per dimension (-1 beyond the model's dims)
    label: np.ndarray  # float64 PENDING (NaN) or the label: 0/1, the class code, the target
    rev: np.ndarray  # int64 revision of the held label
    counted: np.ndarray  # int8 1 = the label is folded into its cohort's counts (set by the caller)
    aux: np.ndarray | None = None  # int8 per-prediction value for outcome listeners (-1 = none; e.g. a rules decision)


class PendingStore(Protocol):
    """Where predictions wait for labels (in memory here; could be a disk-backed store)."""

    ttl: float
    evicted: int

    def put_many(self, model: int, ids: list[str], ts: np.ndarray, score: np.ndarray, pred: np.ndarray,
                 codes: np.ndarray, aux: np.ndarray | None = None) -> np.ndarray:
        """Hold predictions; returns the mask of those stored (False: id already held)."""
        ...

    def get_many(self, ids: Sequence[str]) -> np.ndarray:
        """Slot per id, -1 when not held."""
        ...

    def read(self, slots: np.ndarray) -> Rows: ...

    def write(self, slots: np.ndarray, label: np.ndarray, rev: np.ndarray, counted: np.ndarray | None = None) -> None: ...

    def set_counted(self, slots: np.ndarray, counted: np.ndarray) -> None: ...

    def ensure_dims(self, dims: int) -> None:
        """Make room for ``dims`` slice codes per record (a model with more slice dimensions)."""
        ...

    def expire(self, now: float) -> int:
        """Drop records older than ``ttl``; returns how many of them were still unlabelled."""
        ...

    def __len__(self) -> int: ...

    def to_state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


_COLUMNS = {"model": Column(np.int16), "ts": Column(np.float64), "score": Column(np.float64), "pred": Column(np.int8),
            "label": Column(np.float64, fill=PENDING), "rev": Column(np.int64), "counted": Column(np.int8),
            "aux": Column(np.int8, fill=-1)}


class RingStore(Ring):
    """The label join's predictions in the shared ring of served predictions
    (:mod:`detector.core.outcomes.ring`): capacity doubles up to ``max_pending``; one slice code per
    dimension in ``codes`` (-1 beyond the model's dimensions)."""

    def __init__(self, ttl: float, max_pending: int, dims: int = 0, initial: int = 1 << 14) -> None:
        self.ttl = float(ttl)
        self.max_pending = int(max_pending)
        self.evicted = 0  # unlabelled records pushed out by the bound
        super().__init__({**_COLUMNS, "codes": Column(np.int16, dims, -1)}, self.max_pending, initial)

    @property
    def dims(self) -> int:
        return int(self.columns["codes"].width or 0)

    @property
    def pending(self) -> int:
        return int(np.count_nonzero(np.isnan(self.label[self.order()])))  # type: ignore[attr-defined]

    def ensure_dims(self, dims: int) -> None:
        self.widen("codes", dims)

    def _unlabelled(self, slots: np.ndarray) -> int:
        return int(np.count_nonzero(np.isnan(self.label[slots])))  # type: ignore[attr-defined]

    def _count_evicted(self, slots: np.ndarray) -> None:
        self.evicted += self._unlabelled(slots)

    def put_many(self, model: int, ids: list[str], ts: np.ndarray, score: np.ndarray, pred: np.ndarray,
                 codes: np.ndarray, aux: np.ndarray | None = None) -> np.ndarray:
        cols = {"model": np.full(len(ids), model, dtype=np.int16), "ts": ts, "score": score, "pred": pred, "codes": codes}
        if aux is not None:
            cols["aux"] = aux
        return self.put(ids, cols, dead={"label": _DEAD}, on_drop=self._count_evicted)

    def get_many(self, ids: Sequence[str]) -> np.ndarray:
        return self.slots(ids)

    def read(self, slots: np.ndarray) -> Rows:
        c: Any = self
        return Rows(c.model[slots], c.ts[slots], c.score[slots], c.pred[slots], c.codes[slots], c.label[slots],
                    c.rev[slots], c.counted[slots], c.aux[slots])

    def write(self, slots: np.ndarray, label: np.ndarray, rev: np.ndarray, counted: np.ndarray | None = None) -> None:
        c: Any = self
        c.label[slots] = label
        c.rev[slots] = rev
        if counted is not None:
            c.counted[slots] = counted

    def set_counted(self, slots: np.ndarray, counted: np.ndarray) -> None:
        self.counted[slots] = counted  # type: ignore[attr-defined]

    def expire(self, now: float) -> int:  # type: ignore[override]
        """Drop the records older than ``ttl`` at event time ``now``; returns how many were still unlabelled."""
        unlabelled = [0]

        def count(slots: np.ndarray) -> None:
            unlabelled[0] += self._unlabelled(slots)

        Ring.expire(self, now - self.ttl, on_drop=count)
        return unlabelled[0]

    def to_state(self) -> dict[str, Any]:
        st = Ring.to_state(self)
        st.update(ttl=self.ttl, max_pending=self.max_pending, evicted=self.evicted, dims=self.dims)
        return st

    def load_state(self, st: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore from :meth:`to_state`. TTL and bound stay this store's (the config may have changed);
        a state holding more than ``max_pending`` records keeps the newest."""
        check(isinstance(st, dict) and isinstance(st.get("ids"), list), "pending store state")
        dims = int(st["dims"])
        check(0 <= dims <= 64, f"pending store with {dims} slice dimensions")
        codes = st.get("codes")
        check(isinstance(codes, np.ndarray) and codes.shape == (len(st["ids"]), dims), "pending store slice codes")
        lab = st.get("label")
        if isinstance(lab, np.ndarray) and lab.dtype == np.int8:  # states from before tasks: -1 pending, -2 dead
            st = {**st, "label": np.where(lab == -1, PENDING, np.where(lab == -2, _DEAD, lab.astype(np.float64)))}
        self.widen("codes", dims)
        Ring.load_state(self, st, "pending store", defaults={"aux": -1}, narrow=("codes",))  # "aux" is newer than some states
        self.evicted = int(st["evicted"])
