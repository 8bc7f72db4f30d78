"""The outcome monitor's state of one model: open and evaluated cohorts, label delays, the river detector.

Bounded: open cohorts (at most TTL / cohort length), ``2 x baseline_cohorts`` evaluated ones, the
delay histograms and arrival counts per slice row, ``baseline_cohorts`` arrival snapshots. Plain
data through :meth:`OutcomeModel.to_state` / :meth:`OutcomeModel.load_state` (the task counters of
a multiclass or regression model's cohorts included, see :class:`~detector.core.outcomes.cohort.Cohort`).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from detector.core.outcomes.cohort import Cohort
from detector.core.outcomes.labels import N_DELAY
from detector.core.outcomes.maturity import LabelAge
from detector.core.outcomes.tasks.routing import task_of

__all__ = ["OutcomeModel"]


class OutcomeModel:
    """Outcome state of one model."""

    def __init__(self, idx: int, name: str, layout: Any, ref: Any, costs: tuple[Any, Any, Any], river_delta: float) -> None:
        from detector.core.state.drift import ADWIN  # river's, with plain restorable state

        self.idx, self.name, self.layout, self.ref = idx, name, layout, ref
        self.costs = costs
        R = layout.n_rows
        self.open: dict[float, Cohort] = {}
        self.done: dict[float, Cohort] = {}
        self.delay_all = np.zeros((R, N_DELAY))
        self.delay_cls = np.zeros((2, N_DELAY))  # all traffic, per label value (for maturity)
        self.delay_total = np.zeros(N_DELAY)  # all traffic, lifetime, not decayed (for a Prometheus histogram)
        self.delay_sum = 0.0
        self.arrivals = np.zeros((R, 2))
        self.arr_hist: deque[np.ndarray] = deque()
        self.first_ts = math.inf
        self.adwin = ADWIN(delta=river_delta)
        self.latched = False
        self.delay_unsettled = False  # a delay shift was seen and the maturity is still rising
        self.age = LabelAge()  # the label age cohorts are compared at (detector.core.outcomes.maturity)
        self.stats: dict[str, Any] = {}
        self.task = task_of(ref)  # what the model predicts (detector.core.outcomes.tasks)
        self.binary = self.task.name == "binary"

    def cohort(self, start: float, end: float) -> Cohort:
        """A new empty cohort (with the task's counters unless the model is binary)."""
        c = Cohort(start, end, self.layout.n_rows)
        if not self.binary:
            c.tc = self.task.counters(self.layout.n_rows)
        return c

    def gpred(self, pred: np.ndarray) -> np.ndarray:
        """The decision as the generic cohort counts take it: a binary model's 1/0, else -1 (so no confusion
        counts: a class code is not a decision; the task counters hold its outcomes)."""
        return pred if self.binary else np.full_like(pred, -1)

    def y01(self, y: np.ndarray) -> np.ndarray:
        """The label as the generic cohort counts take it: 0/1 for a binary model, 0 for others (their
        outcome counts are the task's)."""
        return y if self.binary else np.zeros_like(y)

    def ridx(self, codes: np.ndarray) -> np.ndarray:
        lay = self.layout
        D = len(lay.dims)
        out = np.zeros((codes.shape[0], D + 1), dtype=np.int64)
        for d in range(D):
            out[:, d + 1] = lay.row_offset(d) + codes[:, d]
        return out

    def to_state(self) -> dict[str, Any]:
        from detector.core.state.drift import detector_to_state

        return {"idx": self.idx, "open": [c.to_state() for c in self.open.values()],
                "done": [c.to_state() for c in self.done.values()], "delay_all": self.delay_all,
                "arrivals": self.arrivals, "arr_hist": list(self.arr_hist), "first_ts": self.first_ts,
                "delay_cls": self.delay_cls, "delay_total": self.delay_total, "delay_sum": self.delay_sum,
                "delay_unsettled": self.delay_unsettled, "adwin": detector_to_state(self.adwin),
                "latched": self.latched, "age": self.age.to_state(), "stats": self.stats}

    def load_state(self, s: dict[str, Any]) -> None:
        from detector.core.state.codec import check, load_arrays
        from detector.core.state.drift import detector_from_state

        R = self.layout.n_rows
        check(isinstance(s["open"], list) and isinstance(s["done"], list), "outcome cohorts")
        self.open = {c.start: c for c in (Cohort.from_state(x, R) for x in s["open"])}
        self.done = {c.start: c for c in (Cohort.from_state(x, R) for x in s["done"])}
        want = None if self.binary else {k: a.shape for k, a in self.task.counters(R).arrays.items()}
        for c in (*self.open.values(), *self.done.values()):
            got = None if c.tc is None else {k: a.shape for k, a in c.tc.arrays.items()}
            check(got == want, f"outcome cohort counters {got} do not fit the model's {self.task.name} task {want}: "
                               "the reference changed (restart without the state to start over)")
        load_arrays(self, s, ("delay_all", "arrivals", "delay_cls", "delay_total"), "outcome model")
        check(isinstance(s["arr_hist"], list), "outcome arrival history")
        for a in s["arr_hist"]:
            check(isinstance(a, np.ndarray) and a.shape == self.arrivals.shape, "outcome arrival history shape")
        self.arr_hist = deque(np.asarray(a, dtype=np.float64) for a in s["arr_hist"])
        self.delay_sum, self.first_ts = float(s["delay_sum"]), float(s["first_ts"])
        self.delay_unsettled, self.latched = bool(s["delay_unsettled"]), bool(s["latched"])
        self.adwin = detector_from_state(s["adwin"])
        self.age.load_state(s.get("age") or {})
        check(isinstance(s["stats"], dict), "outcome stats")
        self.stats = s["stats"]
