"""Production's own history, by time of day (and week): the baseline for *drift*.

Traffic at 03:00 is not traffic at 18:00, and Monday is not Sunday. Comparing a window with the
trailing hour would "detect drift" every morning, so each closed window is folded into the
*slot* of its time of day (``settings.season_slots`` slots: hour of day, or hour of week) with
exponential decay per day (``seasonal_decay``). A window is then compared with the history of
its own slot, and only once that slot has ``seasonal_min_days`` of history. Counts are coarse
(decile) bins so the state is small: ``slots x rows x (coarse bins + categories + rates)``.

Windows that belong to an open incident do not teach the baseline (``freeze``), so a fault that
persists keeps alerting instead of slowly becoming "normal".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.core.layout import Layout
from detector.core.state import check, load_arrays, pairs, unpairs
from detector.core.window import RATE, WindowCounts

__all__ = ["SeasonalBaseline", "coarse_starts"]


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

    def update(self, w: WindowCounts, frozen_num: np.ndarray, frozen_cat: np.ndarray, freeze_rates: bool) -> None:
        """Fold a closed window into its slot. ``frozen_*`` are per-block / per-cat-column masks."""
        s = self.slot(w.start)
        k = self.decay_per_update
        coarse = self.coarse(w)
        nx = coarse_nonmissing(coarse, self.blocks)
        new_num = self.num[s] * k + coarse
        new_cat = self.cat[s] * k + w.cat
        if frozen_num.any():
            cols = np.zeros(new_num.shape[1], dtype=bool)
            for j in np.flatnonzero(frozen_num).tolist():
                cols[self.blocks[j]] = True
            new_num[:, cols] = self.num[s][:, cols]
            keep_sx = frozen_num
        else:
            keep_sx = np.zeros(len(self.blocks), dtype=bool)
        if frozen_cat.any():
            new_cat[:, frozen_cat] = self.cat[s][:, frozen_cat]
        self.num[s] = new_num
        self.cat[s] = new_cat
        sx_new = self.sx[s] * k + w.sx
        nx_new = self.nx[s] * k + nx
        sx_new[:, keep_sx] = self.sx[s][:, keep_sx]
        nx_new[:, keep_sx] = self.nx[s][:, keep_sx]
        self.sx[s], self.nx[s] = sx_new, nx_new
        if not freeze_rates:
            self.rates[s] = self.rates[s] * k + w.rates
            self.lat[s] = self.lat[s] * k + w.lat
            for v in list(self.thresholds):
                self.thresholds[v] *= k
            for v, c in w.thresholds.items():
                if v in self.thresholds or len(self.thresholds) < 16:
                    self.thresholds[v] = self.thresholds.get(v, 0.0) + c
        self.days[s] += self.days_per_update

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

    def merge(self, other: SeasonalBaseline) -> None:
        """Combine two workers' baselines (their windows were disjoint partitions of traffic)."""
        for name in ("num", "cat", "rates", "lat", "sx", "nx"):
            getattr(self, name)[...] += getattr(other, name)
        self.days = np.maximum(self.days, other.days)
        for v, c in other.thresholds.items():
            self.thresholds[v] = self.thresholds.get(v, 0.0) + c


_STATE_ARRAYS = ("num", "cat", "rates", "lat", "sx", "nx", "days")


def coarse_nonmissing(coarse: np.ndarray, blocks: list[slice]) -> np.ndarray:
    """Non-missing count per numeric block from coarse counts (last column of a block = missing)."""
    out = np.empty(coarse.shape[:-1] + (len(blocks),))
    for j, b in enumerate(blocks):
        out[..., j] = coarse[..., b.start : b.stop - 1].sum(axis=-1)
    return out
