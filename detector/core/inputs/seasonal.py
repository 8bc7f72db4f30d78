"""Production's own history, by time of day (and week): the baseline for *drift*.

Traffic at 03:00 is not traffic at 18:00, and Monday is not Sunday. Comparing a window with the
trailing hour would "detect drift" every morning, so each closed window is folded into the
*slot* of its time of day (``settings.season_slots`` slots: hour of day, or hour of week) with
exponential decay per day (``seasonal_decay``). A window is then compared with the history of
its own slot, and only once that slot has ``seasonal_min_days`` of history. Counts are coarse
(decile) bins so the state is small: ``slots x rows x (coarse bins + categories + rates)``.

The series of a window that belong to an open incident do not teach the baseline (:class:`Frozen`),
so a fault that persists keeps alerting instead of slowly becoming "normal" — and only those
series: everything else keeps learning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.core.inputs.layout import Layout
from detector.core.inputs.window import N_CAND, RATE, WindowCounts
from detector.core.state.codec import check, load_arrays, pairs, unpairs

__all__ = ["SeasonalBaseline", "Frozen", "coarse_starts"]

#: rate columns each serving-health / policy kind owns (the rest of the rates keep learning)
_RATE_SERIES = {
    "decision_rate": ("acted", "decided", "overridden", "flag_overridden"),
    "fallback_rate": ("fallback", "fallback_known"),
    "latency": ("latency_known",),
}


@dataclass
class Frozen:
    """Which series of a window must not teach the baseline (they belong to an open incident).

    Freezing is per series, not per model: an incident on one feature keeps only that feature's
    history as it was; every other feature, the score and the serving and policy rates go on
    learning, so one long incident cannot starve the checks that need a clean history.
    """

    num: np.ndarray  # (numeric blocks incl. the score,) bool
    cat: np.ndarray  # (categorical columns,) bool
    rates: np.ndarray  # (rate columns,) bool
    latency: bool = False
    thresholds: bool = False

    @classmethod
    def none(cls, sb: SeasonalBaseline) -> Frozen:
        return cls(np.zeros(len(sb.blocks), bool), np.zeros(sb.cat.shape[2], bool), np.zeros(len(RATE), bool))

    @classmethod
    def of(cls, sb: SeasonalBaseline, lay: Layout, keys: Iterable[tuple[str, str | None]]) -> Frozen:
        """The series behind (kind, feature) pairs of findings and open incidents."""
        fz = cls.none(sb)
        for kind, feature in keys:
            if kind in _RATE_SERIES:
                fz.rates[[RATE[c] for c in _RATE_SERIES[kind]]] = True
                fz.latency |= kind == "latency"
                fz.thresholds |= kind == "decision_rate"
            elif feature == "score":
                fz.num[-1] = True
            elif feature in lay.numeric:
                fz.num[lay.numeric.index(feature)] = True
            elif feature in lay.categorical:
                j = lay.categorical.index(feature)
                off = int(lay.cat_offsets[j])
                fz.cat[off : off + int(lay.cat_sizes[j])] = True
        return fz


def coarse_starts(lay: Layout) -> tuple[np.ndarray, list[slice]]:
    """Column starts for ``np.add.reduceat`` fine -> coarse over the flat numeric block space,
    and each block's slice in the coarse space (its last coarse column is the missing bin)."""
    starts: list[int] = []
    blocks: list[slice] = []
    pos = 0
    for j, g in enumerate(lay.coarse):
        off = int(lay.num_offsets[j])
        change = np.flatnonzero(np.diff(g)) + 1
        s = [off] + (off + change).tolist() + [off + len(g)]  # last: the missing bin
        starts.extend(s)
        blocks.append(slice(pos, pos + len(s)))
        pos += len(s)
    return np.asarray(starts, dtype=np.int64), blocks


class SeasonalBaseline:
    def __init__(self, lay: Layout, slots: int, slot_len: float, decay: float, window: float) -> None:
        self.slots = slots
        self.slot_len = slot_len
        # ``decay`` is the weight kept per past observation of a slot (per day when daily); a slot
        # observed through several shorter windows decays by the matching fraction each time.
        self.decay_per_update = decay ** (window / slot_len)
        self.days_per_update = window / slot_len  # observations of the slot added per window
        self.starts, self.blocks = coarse_starts(lay)
        r = lay.n_rows
        n_coarse = len(self.starts)
        n_num = lay.n_num_blocks
        self.num = np.zeros((slots, r, n_coarse))
        self.cat = np.zeros((slots, r, lay.cat_total))
        self.rates = np.zeros((slots, r, len(RATE)))
        self.lat = np.zeros((slots, r, len(lay.lat_edges) + 1))
        self.sx = np.zeros((slots, r, n_num))
        self.nx = np.zeros((slots, r, n_num))  # non-missing count per block (denominator of sx)
        self.cand = np.zeros((slots, r, n_num, N_CAND))  # exact-value candidate hits (default values)
        self.cand_n = np.zeros((slots, r, n_num, N_CAND))  # non-missing values since each candidate was assigned
        self.cand_days = np.zeros((slots, n_num, N_CAND))  # history per slot since each candidate was assigned
        self.days = np.zeros(slots)  # history per slot, in days of observation
        self.thresholds: dict[float, float] = {}

    def slot(self, t: float) -> int:
        if self.slots == 1:
            return 0
        return int((t // self.slot_len) % self.slots)

    def ready(self, t: float, min_days: float) -> bool:
        return bool(self.days[self.slot(t)] >= min_days)

    def coarse(self, w: WindowCounts) -> np.ndarray:
        return np.add.reduceat(w.num, self.starts, axis=1)

    def update(self, w: WindowCounts, frozen: Frozen | None = None, cands_ok: np.ndarray | None = None) -> None:
        """Fold a closed window into its slot, except the series ``frozen`` names (open incidents).

        ``cands_ok`` (blocks x candidates): candidates whose hits this window counted completely; the
        others' history is left as it is."""
        fz = frozen or Frozen.none(self)
        s = self.slot(w.start)
        k = self.decay_per_update
        coarse = self.coarse(w)
        nx = coarse_nonmissing(coarse, self.blocks)
        new_num = self.num[s] * k + coarse
        new_cat = self.cat[s] * k + w.cat
        if fz.num.any():
            cols = np.zeros(new_num.shape[1], dtype=bool)
            for j in np.flatnonzero(fz.num).tolist():
                cols[self.blocks[j]] = True
            new_num[:, cols] = self.num[s][:, cols]
        if fz.cat.any():
            new_cat[:, fz.cat] = self.cat[s][:, fz.cat]
        self.num[s] = new_num
        self.cat[s] = new_cat
        sx_new = self.sx[s] * k + w.sx
        nx_new = self.nx[s] * k + nx
        sx_new[:, fz.num] = self.sx[s][:, fz.num]
        nx_new[:, fz.num] = self.nx[s][:, fz.num]
        self.sx[s], self.nx[s] = sx_new, nx_new
        ok = np.ones(self.cand_days.shape[1:], bool) if cands_ok is None else cands_ok.copy()
        ok[fz.num] = False
        self.cand[s] = np.where(ok[None], self.cand[s] * k + w.cand, self.cand[s])
        self.cand_n[s] = np.where(ok[None], self.cand_n[s] * k + nx[:, :, None], self.cand_n[s])
        self.cand_days[s] += np.where(ok, self.days_per_update, 0.0)
        rates = self.rates[s] * k + w.rates
        rates[:, fz.rates] = self.rates[s][:, fz.rates]
        self.rates[s] = rates
        if not fz.latency:
            self.lat[s] = self.lat[s] * k + w.lat
        if not fz.thresholds:
            for v in list(self.thresholds):
                self.thresholds[v] *= k
            for v, c in w.thresholds.items():
                if v in self.thresholds or len(self.thresholds) < 16:
                    self.thresholds[v] = self.thresholds.get(v, 0.0) + c
        self.days[s] += self.days_per_update

    def reset_candidate(self, j: int, k: int) -> None:
        """A new exact value took candidate slot ``k`` of block ``j``: its history starts now."""
        self.cand[:, :, j, k] = 0.0
        self.cand_n[:, :, j, k] = 0.0
        self.cand_days[:, j, k] = 0.0

    def established_threshold(self) -> float | None:
        if not self.thresholds:
            return None
        return max(self.thresholds.items(), key=lambda kv: kv[1])[0]

    # ------------------------------------------------------------------ state (plain data)
    def to_state(self) -> dict[str, Any]:
        st: dict[str, Any] = {k: getattr(self, k) for k in _STATE_ARRAYS}
        st["thresholds"] = pairs(self.thresholds)
        return st

    def load_state(self, st: dict[str, Any]) -> None:
        """Restore from :meth:`to_state` (the baseline was built for the same layout and settings)."""
        check(isinstance(st, dict), "seasonal baseline state must be a dict")
        load_arrays(self, st, _STATE_ARRAYS, "seasonal baseline")
        self.thresholds = {float(k): float(v) for k, v in unpairs(st["thresholds"]).items()}


_STATE_ARRAYS = ("num", "cat", "rates", "lat", "sx", "nx", "cand", "cand_n", "cand_days", "days")


def coarse_nonmissing(coarse: np.ndarray, blocks: list[slice]) -> np.ndarray:
    """Non-missing count per numeric block from coarse counts (last column of a block = missing)."""
    out = np.empty(coarse.shape[:-1] + (len(blocks),))
    for j, b in enumerate(blocks):
        out[..., j] = coarse[..., b.start : b.stop - 1].sum(axis=-1)
    return out
