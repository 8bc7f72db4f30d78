"""The label age at which prediction cohorts are compared, chosen once, without censoring bias.

Labels come late, heavy-tailed, positives later than negatives, some never. Every cohort must be
measured at the *same* age, or a cohort measured earlier looks like a base-rate drop: the age is a
property of the model's label process, chosen once and then fixed (a later change of the label
process is a finding - ``label_delay`` - not a reason to move the yardstick).

The choice must not trust the delays seen so far: early on only the short ones have arrived, so
their median is far too short (a log of a few days with a median delay of a day shows a median
of hours). :class:`LabelAge` therefore waits, holding the first matched pairs, and looks only at
cohorts old enough to be judged: with ``G(a)`` the share of a cohort's predictions labelled by
``a`` after its end, the age is the smallest ``A`` on the sqrt(2) grid of the window (1, 1.4, 2,
2.8, 4 ... windows) for which cohorts at least ``2A`` old show ``G(A) >= G(2A) / 2`` - half of what
arrives within twice that age is in (for log-normal delays with log-sd 1 this lands between half
the median delay and the median). Pairs matched before the age is known are then folded in as
they would have been, gated at their cohort's end + A. With every label inside a window, A is one
window; with none of that settling within the label TTL, A is the TTL.

State: the chosen age (0 while unknown) and, until then, the held pairs (bounded by
:data:`MAX_HELD`; beyond it the oldest are folded ungated and their cohorts compare with nothing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["LabelAge", "MAX_HELD", "MIN_LABELS", "grid"]

MAX_HELD = 2_000_000
MIN_LABELS = 100  # labels that must have arrived within 2A in cohorts old enough, before A is trusted


def grid(k: int, unit: float) -> float:
    """The k-th age of the sqrt(2) grid of ``unit``.

    >>> [round(grid(k, 3600.0) / 3600, 2) for k in range(6)]
    [1.0, 1.41, 2.0, 2.83, 4.0, 5.66]
    """
    return unit * 2.0 ** (k / 2)


class LabelAge:
    """Choose the comparison age once (see the module docstring); hold pairs until then."""

    def __init__(self) -> None:
        self.horizon = 0.0
        self.held: list[dict[str, np.ndarray]] = []  # batches of matched pairs (plain arrays)
        self.n_held = 0

    def hold(self, pairs: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Keep a batch of pairs until the age is known; returns batches that overflow the bound."""
        self.held.append(pairs)
        self.n_held += len(pairs["label_ts"])
        out = []
        while self.n_held > MAX_HELD and len(self.held) > 1:
            old = self.held.pop(0)
            self.n_held -= len(old["label_ts"])
            out.append(old)
        return out

    def choose(self, cohorts: list[tuple[float, float]], now: float, first_ts: float, unit: float, ttl: float) -> float:
        """Fix the age if the held pairs and ``cohorts`` ((end, predictions) of the open cohorts) allow."""
        if self.horizon > 0:
            return self.horizon
        ends = np.array([e for e, _ in cohorts])
        preds = np.array([n for _, n in cohorts], dtype=np.float64)
        if self.held:
            end = np.concatenate([b["end"] for b in self.held])
            age = np.concatenate([b["label_ts"] for b in self.held]) - end  # label age after the cohort's end
        else:
            end = age = np.zeros(0)
        k = 0
        while ends.size and (a := grid(k, unit)) <= ttl:
            ok_c = ends + 2 * a <= now
            if not ok_c.any():
                break
            ok_p = end + 2 * a <= now
            g1, g2 = float((ok_p & (age <= a)).sum()), float((ok_p & (age <= 2 * a)).sum())
            if g2 >= MIN_LABELS and g1 >= g2 / 2 and preds[ok_c].sum() > 0:
                self.horizon = min(a, ttl)
                return self.horizon
            k += 1
        if now - first_ts >= ttl:
            self.horizon = ttl
        return self.horizon

    def correct(self, slots: np.ndarray, labels: np.ndarray) -> None:
        """A corrected label for pairs still held: they will be folded with it."""
        new = dict(zip(slots.tolist(), labels.tolist(), strict=True))
        for b in self.held:
            hit = np.flatnonzero(np.isin(b["slot"], slots))
            for i in hit.tolist():
                b["y"][i] = new[int(b["slot"][i])]

    def release(self) -> list[dict[str, np.ndarray]]:
        """The held batches, once the age is known (the caller folds them, gated)."""
        out, self.held, self.n_held = self.held, [], 0
        return out

    def to_state(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "held": self.held}

    def load_state(self, st: dict[str, Any]) -> None:
        from detector.core.state.codec import check

        check(isinstance(st, dict) and isinstance(st.get("held", []), list), "label age state")
        held = []
        for b in st.get("held") or []:
            check(isinstance(b, dict) and "label_ts" in b and "end" in b
                  and all(isinstance(v, np.ndarray) and 1 <= v.ndim <= 2 and v.dtype.kind in "biuf" for v in b.values())
                  and len({len(v) for v in b.values()}) == 1, "held label pairs: equal-length numeric arrays")
            held.append({str(k): v for k, v in b.items()})
        self.horizon = float(st.get("horizon", 0.0))
        self.held = held
        self.n_held = sum(len(b["label_ts"]) for b in self.held)

