"""The columnar table every stage of a world writes into, and the arrival process that starts it.

A :class:`Frame` holds one row per prediction, in true event-time order. Stages fill it in
turn (world features -> served features -> model -> policy -> serving -> outcome -> labels ->
clock); a fault hooks into one stage and changes only rows at or after its onset.

Arrivals are a Poisson process per region and minute whose intensity follows the region's
*local* clock (the world's ``volume`` function); the average over a week is the ``rate``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["Frame", "World", "arrivals", "stream_rng", "softmax_draw", "bump", "local_parts", "DAY"]

DAY = 86400.0


def stream_rng(*key: Any) -> np.random.Generator:
    """An independent, reproducible generator per named stream (``key`` parts: str or int)."""
    ints = [zlib.crc32(str(k).encode()) if not isinstance(k, int) else int(k) for k in key]
    return np.random.default_rng(np.random.SeedSequence(ints))


def bump(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A Gaussian bump on the 24 h circle (hours)."""
    d = np.abs(((x - centre) + 12.0) % 24.0 - 12.0)
    return np.exp(-0.5 * (d / width) ** 2)


def softmax_draw(logits: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw (index) from ``logits`` (n x k) with uniforms ``u`` (n)."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    c = np.cumsum(p, axis=1)
    c /= c[:, -1:]
    return np.minimum((c < u[:, None]).sum(axis=1), logits.shape[1] - 1)


def local_parts(t: np.ndarray, offset_h: np.ndarray, holiday: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fractional local hour, local weekday Mon=0, local-holiday flag) of UTC epoch seconds."""
    loc = t + offset_h * 3600.0
    days = np.floor(loc / DAY)
    hour = (loc - days * DAY) / 3600.0
    wday = ((days.astype(np.int64) + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
    hol = np.zeros(len(t), dtype=bool) if holiday is None else (days == np.floor(holiday / DAY))
    return hour, wday, hol


class World(Protocol):
    """What a world module provides (see world_a.py / world_b.py and SPEC.md)."""

    name: str
    model: str
    version: str
    regions: tuple[tuple[str, float, float], ...]  # (name, UTC offset h, share of traffic)
    channels: tuple[str, ...]
    default_rate: float
    rates: tuple[float, ...]  # the evaluation matrix's rates
    threshold: float
    decisions: tuple[str, str]  # (action at/above the threshold, no action)
    numeric: tuple[str, ...]
    integer: tuple[str, ...]  # numeric features written as JSON integers
    categorical: tuple[str, ...]
    score_noise: float  # sd of the model's error in log-odds
    fallback_share: float
    label_median: tuple[float, float]  # seconds: negatives, positives
    label_sigma: float
    never_labelled: float
    duplicate_labels: float
    offline_share: float
    out_of_order: float  # share of log lines held back
    train_rows: int
    train_days: int
    train_timestamps: bool
    outcome_deadline_h: float
    outcome_onset_day: float

    def holiday(self, start: float) -> float | None: ...
    def volume(self, hour: np.ndarray, wday: np.ndarray, hol: np.ndarray, region: int) -> np.ndarray: ...
    def populate(self, f: Frame, rng: np.random.Generator) -> None: ...
    def true_logit(self, f: Frame) -> np.ndarray: ...
    def model_logit(self, f: Frame) -> np.ndarray: ...
    def rules_score(self, f: Frame) -> np.ndarray: ...
    def latency(self, f: Frame, rng: np.random.Generator) -> np.ndarray: ...
    def wire_ts(self, ts: np.ndarray, f: Frame) -> list[object]: ...
    def offline_lag(self, rng: np.random.Generator, n: int) -> np.ndarray: ...


@dataclass
class Frame:
    """One row per prediction. Feature dicts map name -> float64 (NaN = null) or object arrays."""

    t: np.ndarray  # true decision time, UTC epoch seconds, sorted
    region: np.ndarray  # int index into world.regions
    hour: np.ndarray  # fractional local hour
    wday: np.ndarray  # local weekday, Mon = 0
    holiday: np.ndarray  # bool
    channel: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    truth: dict[str, np.ndarray] = field(default_factory=dict)  # the world (labels depend on it)
    observed: dict[str, np.ndarray] = field(default_factory=dict)  # what a correct pipeline records
    served: dict[str, np.ndarray] = field(default_factory=dict)  # what the payload carries
    offline: dict[str, np.ndarray] = field(default_factory=dict)  # what the offline pipeline computes
    absent: dict[str, np.ndarray] = field(default_factory=dict)  # feature -> rows where the key is missing
    as_text: dict[str, np.ndarray] = field(default_factory=dict)  # numeric feature -> rows sent as strings
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # unexpected features (NaN = not sent)
    score: np.ndarray | None = None
    model_version: np.ndarray | None = None  # object array
    threshold: np.ndarray | None = None
    fallback: np.ndarray | None = None
    latency: np.ndarray | None = None
    logit: np.ndarray | None = None  # the world's outcome log-odds
    label: np.ndarray | None = None
    label_delay: np.ndarray | None = None  # seconds; NaN = never labelled
    offline_lag: np.ndarray | None = None  # seconds; NaN = no offline event
    ts_shift: np.ndarray | None = None  # seconds added to the written ts (clock faults)

    @property
    def n(self) -> int:
        return len(self.t)

    def local_hour(self) -> np.ndarray:
        return np.floor(self.hour).astype(np.int64)


def arrivals(world: World, rng: np.random.Generator, start: float, days: float, rate: float,
             holiday: float | None = None) -> Frame:
    """Poisson arrivals per region and minute following each region's local-clock volume.

    ``holiday``: the UTC midnight of a day that every region treats as a holiday (local date).
    """
    minutes = int(round(days * 1440))
    m0 = start + 60.0 * np.arange(minutes)
    week = start + 60.0 * np.arange(7 * 1440)  # the normalisation week (no holiday)
    hol_ts = holiday
    ts, regs = [], []
    for r, (_name, off, share) in enumerate(world.regions):
        h, wd, _ = local_parts(week, np.full(len(week), off), None)
        norm = world.volume(h, wd, np.zeros(len(week), bool), r).mean()
        h, wd, hol = local_parts(m0, np.full(minutes, off), hol_ts)
        lam = rate * share * world.volume(h, wd, hol, r) / norm / 60.0
        k = rng.poisson(lam)
        t = np.repeat(m0, k) + rng.random(int(k.sum())) * 60.0
        ts.append(t)
        regs.append(np.full(len(t), r, dtype=np.int64))
    t = np.concatenate(ts)
    reg = np.concatenate(regs)
    order = np.argsort(t, kind="stable")
    t, reg = t[order], reg[order]
    offs = np.array([o for _n, o, _s in world.regions])[reg]
    hour, wday, hol = local_parts(t, offs, hol_ts)
    return Frame(t=t, region=reg, hour=hour, wday=wday, holiday=hol)
