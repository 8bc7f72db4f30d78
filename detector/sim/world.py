"""World parameters and the simulated clock: how much traffic arrives when.

A :class:`World` is the fixed, hashable description of the simulated business (a card-fraud
model by default): feature counts, traffic rate, label behaviour, serving health. Traffic volume
follows a local-time daily curve (trough around 05:00, peak around 20:00, ~3.3x apart) and a
weekly curve (Saturday and Sunday carry 80% of a weekday's volume); :func:`intensity` is
normalised so that its mean over a week is 1, i.e. ``rate_per_hour`` is the weekly average.

Local time is one fixed UTC offset (``tz_offset_hours``, no DST): ``hour_of_day`` and all
seasonal effects use it.

>>> w = World()
>>> round(float(intensity(np.array([0.0]), w.tz_offset_hours)[0]), 3) > 0
True
>>> peak_to_trough(w) > 3.0
True
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

__all__ = [
    "World",
    "DEFAULT_START",
    "intensity",
    "peak_to_trough",
    "local_hours",
    "chunk_seconds",
    "rng_for",
    "sample_times",
    "sigmoid",
    "to_epoch_ms",
]

#: Default scenario start: Monday 2026-11-02 00:00 local time (UTC-5).
DEFAULT_START = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)

# Daily curve: 1 + A cos(2 pi (h - PEAK) / 24) + B cos(4 pi (h - H2) / 24), in local hours.
_DAILY_A, _DAILY_PEAK, _DAILY_B, _DAILY_H2 = 0.5, 19.5, 0.2, 9.0
_WEEKEND_FACTOR = 0.8  # Saturday/Sunday volume relative to a weekday
# Mean of the raw (daily x weekly) curve over a week, for normalisation (the daily curve's mean
# over a whole day is exactly 1).
_WEEK_MEAN = (5 + 2 * _WEEKEND_FACTOR) / 7
_MAX_EVENTS_PER_CHUNK = 50_000


@dataclass(frozen=True)
class World:
    """The simulated business: everything about normal traffic (faults live in the scenario)."""

    model: str = "fraud"
    model_version: str = "2026-11-01"
    n_numeric: int = 20
    n_categorical: int = 5
    rate_per_hour: float = 3600.0  # weekly mean of prediction events per hour
    base_rate: float = 0.04  # P(label = 1) over a clean week
    threshold: float = 0.5  # decision policy: "review" if score >= threshold
    tz_offset_hours: int = -5  # local time = UTC + offset (no DST)
    # label arrival
    label_delay_median_h: float = 2.0
    label_delay_sigma: float = 1.1  # lognormal sigma of the delay
    label_missing_rate: float = 0.05  # labels that never arrive
    label_duplicate_rate: float = 0.01  # labels sent twice
    label_correction_rate: float = 0.005  # first label wrong, corrected later with revision 2
    label_correction_delay_h: float = 24.0  # median extra delay of a correction
    label_tail_hours: float = 0.0  # labels arriving up to this long after the end are emitted
    # offline feature pipeline
    offline_sample: float = 0.10  # share of predictions whose offline features are emitted
    # serving
    model_noise: float = 0.6  # std of the served model's logit error
    fallback_rate: float = 0.002
    fallback_score: float = 0.05
    latency_median_ms: float = 15.0
    latency_sigma: float = 0.35
    override_rate: float = 0.15  # share of "review" decisions approved manually
    rules_baseline: bool = False  # events carry `baseline_decision`: what a rules engine would decide

    def __post_init__(self) -> None:
        if self.n_numeric < 1 or self.n_categorical < 0:
            raise ValueError("World: n_numeric must be >= 1 and n_categorical >= 0")
        if not self.rate_per_hour > 0:
            raise ValueError(f"World.rate_per_hour must be > 0, got {self.rate_per_hour}")
        if not 0.001 <= self.base_rate <= 0.5:
            raise ValueError(f"World.base_rate must be in [0.001, 0.5], got {self.base_rate}")
        for name in ("label_missing_rate", "label_duplicate_rate", "label_correction_rate",
                     "offline_sample", "fallback_rate", "override_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"World.{name} must be in [0, 1], got {v}")

    def with_(self, **changes: object) -> World:
        """A copy with some parameters changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


def to_epoch_ms(ts: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive = UTC)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(round(ts.timestamp() * 1000))


def local_hours(t_s: np.ndarray, tz_offset_hours: int) -> tuple[np.ndarray, np.ndarray]:
    """(fractional local hour of day, local day of week 0=Monday) for epoch seconds."""
    local = t_s / 3600.0 + tz_offset_hours
    day = np.floor(local / 24.0)
    hour = local - day * 24.0
    dow = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return hour, dow


def _daily(h: np.ndarray) -> np.ndarray:
    return (1.0 + _DAILY_A * np.cos(2 * np.pi * (h - _DAILY_PEAK) / 24.0)
            + _DAILY_B * np.cos(4 * np.pi * (h - _DAILY_H2) / 24.0))


def intensity(t_s: np.ndarray, tz_offset_hours: int) -> np.ndarray:
    """Traffic multiplier at epoch seconds ``t_s`` (weekly mean 1)."""
    h, dow = local_hours(np.asarray(t_s, dtype=np.float64), tz_offset_hours)
    week = np.where(dow >= 5, _WEEKEND_FACTOR, 1.0)
    return _daily(h) * week / _WEEK_MEAN


def peak_to_trough(world: World) -> float:
    """Ratio of the busiest to the quietest instant of a weekday."""
    h = np.linspace(0.0, 24.0, 24 * 60, endpoint=False)
    d = _daily(h)
    return float(d.max() / d.min())


def chunk_seconds(world: World) -> int:
    """Length of one generation chunk: an hour, or a divisor of it for very high rates."""
    peak = world.rate_per_hour * float(_daily(np.array([20.5]))[0]) / _WEEK_MEAN
    for k in (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 60, 120, 240, 600, 1200, 3600):
        if peak / k <= _MAX_EVENTS_PER_CHUNK:
            return 3600 // k
    return 1


def rng_for(seed: int, domain: int, chunk: int, stream: int) -> np.random.Generator:
    """An independent generator per (seed, domain, chunk, stream).

    Every column has its own stream, so changing how one column is drawn (a fault) never shifts
    the random numbers of any other column: a faulted scenario and the clean one share every
    value the fault does not touch.
    """
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, domain, chunk, stream])))


def sample_times(rng: np.random.Generator, world: World, t0_ms: int, t1_ms: int) -> np.ndarray:
    """Sorted event times (epoch ms) of a non-homogeneous Poisson process on [t0, t1)."""
    bin_ms = 300_000
    starts = np.arange(t0_ms, t1_ms, bin_ms, dtype=np.int64)
    widths = np.minimum(starts + bin_ms, t1_ms) - starts
    mids = (starts + widths / 2) / 1000.0
    lam = world.rate_per_hour * intensity(mids, world.tz_offset_hours) * widths / 3_600_000.0
    counts = rng.poisson(lam)
    n = int(counts.sum())
    base = np.repeat(starts, counts)
    off = np.floor(rng.random(n) * np.repeat(widths, counts)).astype(np.int64)
    return np.sort(base + off)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
