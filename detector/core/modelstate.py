"""What the engine keeps: per model (:class:`ModelState`) and across models (:class:`Counters`).

A model's state is bounded: open windows of slice rows (top-K per dimension) and fixed bins, the
seasonal baseline, the trailing day, a few candidate values per numeric feature for value spikes,
one change detector per numeric series, the clock shifts of the last windows and the last closed
window's statistics. :mod:`detector.core.state.snapshot` writes and reads all of it as plain data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector.core.checks.daily import DayRing
from detector.core.checks.multivariate.window import JointDrift
from detector.core.inputs.events import EventError, PredictionBatch, PredictionDecoder
from detector.core.inputs.fastdecode import TypedDecoder
from detector.core.inputs.layout import Layout
from detector.core.inputs.seasonal import SeasonalBaseline
from detector.core.inputs.served import ServedTotals
from detector.core.inputs.window import N_CAND, WindowCounts
from detector.core.outcomes.estimate.monitor import make_estimates
from detector.core.reference.profile import Reference, value_share
from detector.core.reference.reconcile import reconciled
from detector.core.settings import DetectorSettings
from detector.core.state.codec import StateError

__all__ = ["Counters", "ModelState", "make_detectors"]


@dataclass
class Counters:
    """The engine's running totals (all models): events, rejections by reason, late events, windows, alerts and
    checks that raised."""

    predictions: int = 0
    labels: int = 0
    feature_events: int = 0
    invalid: dict[str, int] = field(default_factory=dict)  # reason -> count
    clipped: dict[str, int] = field(default_factory=dict)  # field -> retained strings cut to max_value_bytes
    late: int = 0
    windows_closed: int = 0
    alerts_fired: int = 0
    alerts_resolved: int = 0
    check_errors: dict[str, int] = field(default_factory=dict)  # check family -> windows it raised in (core.guard)
    max_event_ts: float = float("-inf")

    def count_errors(self, errors: list[EventError]) -> None:
        for e in errors:
            self.invalid[e.reason] = self.invalid.get(e.reason, 0) + 1

    def to_state(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in vars(self).items()}

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> Counters:
        c = cls()
        for k, cur in vars(cls()).items():  # unknown keys are ignored, missing ones keep their default
            if k not in st:
                continue
            v = st[k]
            if isinstance(cur, dict):
                if not isinstance(v, dict):
                    raise StateError(f"counters: {k} must be a dict")
                setattr(c, k, {str(a): int(b) for a, b in v.items()})
            else:
                setattr(c, k, type(cur)(v))
        return c

    def count_clipped(self, clipped: dict[str, int]) -> None:
        for k, v in clipped.items():
            self.clipped[k] = self.clipped.get(k, 0) + v


class ModelState:
    """Everything the engine keeps for one model."""

    def __init__(self, name: str, ref: Reference, settings: DetectorSettings, dims: list[str],
                 codes: dict[str, dict[str, str]] | None = None) -> None:
        self.name = name
        self.settings = settings
        # code-like numeric features served as strings, compared as categories (detector.core.reference.reconcile)
        self.codes = dict(codes or {})
        self.layout = Layout(reconciled(ref, self.codes), dims, settings.slice_top_k, settings.category_top_k)
        self.decoder = PredictionDecoder(self.layout.schema, settings.no_action_decisions, settings.max_unknown_features,
                                         settings.max_value_bytes, task=ref.task_name)
        self.windows: dict[float, WindowCounts] = {}
        self.served = ServedTotals(self.layout)  # lifetime latency / score histograms (exporter)
        slots = settings.season_slots
        period = 604800.0 if settings.seasonality == "weekly" else 86400.0
        slot_len = period / slots if slots > 1 else 86400.0
        self.seasonal = SeasonalBaseline(self.layout, slots, slot_len, settings.seasonal_decay, settings.window)
        self.day = DayRing(86400.0)  # the trailing day, for skew vs training without hourly profiles
        nb = self.layout.n_num_blocks
        self.cands = np.full((nb, N_CAND), np.nan)
        # windows starting at or after cand_since[j, k] counted every hit of candidate k (it was
        # tracked before their first event): only those windows may judge it
        self.cand_since = np.full((nb, N_CAND), -np.inf)
        self.cand_ref = np.zeros((nb, N_CAND))
        for j, p in enumerate(self.layout.num_all_profiles):
            if p is not None and p.top_value is not None and p.top_share >= 0.01:
                self.cands[j, 0] = p.top_value
                self.cand_ref[j, 0] = p.top_share
        self.detectors = make_detectors(settings, nb)
        self.shift_active = np.zeros(nb, dtype=bool)
        # clock shifts seen lately: "feature|slice key" -> [hours, start of the window it was seen in] (_persistent_shifts)
        self.clock_shifts: dict[str, list[float]] = {}
        self.last_summary: dict[str, Any] = {}
        # latest value of every tested statistic: (kind, statistic, feature, slice key) -> (value, slice, threshold)
        self.last_stats: dict[tuple[str, str, str, str], tuple[float, dict[str, str], float]] = {}
        self.versions: dict[str, int] = {}
        self.last_version: str | None = None
        # the last closed window's counts (bounded: one window), for the status page and report charts
        self.last_window: WindowCounts | None = None
        self.typed: TypedDecoder | None = None  # built when this model's events dominate a batch
        # joint structure of the numeric features (detector.core.checks.multivariate.window), when the reference has it
        self.joint = JointDrift(ref.multivariate, self.layout.numeric, settings.window) if ref.multivariate else None
        # performance estimated before labels (detector.core.outcomes.estimate.monitor), when the reference supports it
        self.estimate = make_estimates(ref.task, settings.window, layout=self.layout)
        self.arrow: Any = None  # its columnar reader (detector.core.inputs.arrowdecode), built with it

    # ---------------------------------------------------------------- candidates for value spikes
    def discover_candidates(self, b: PredictionBatch, idx: np.ndarray | None = None, start: float = -np.inf) -> None:
        """Start tracking exact values that hold >= 20% of a sample of the events (``idx``: one window's)."""
        n = b.n if idx is None else idx.size
        if n < 50:
            return
        pick = np.linspace(0, n - 1, min(n, 256)).astype(np.int64)  # spread over the window, not its start
        rows = pick if idx is None else idx[pick]
        X = np.concatenate([b.num[rows], b.score[rows, None]], axis=1)
        for j in range(X.shape[1]):
            col = X[:, j]
            col = col[~np.isnan(col)]
            if col.size < 20:
                continue
            vals, cnt = np.unique(col, return_counts=True)
            top = int(np.argmax(cnt))
            if cnt[top] < 0.2 * col.size:
                continue
            v = float(vals[top])
            row = self.cands[j]
            if np.any(row == v):
                continue
            free = np.flatnonzero(np.isnan(row))
            if free.size == 0:
                continue
            self.assign_candidate(j, int(free[0]), v, start)

    def assign_candidate(self, j: int, k: int, v: float, start: float) -> None:
        """Track exact value ``v`` of numeric block ``j`` in candidate slot ``k`` from the window at ``start``
        on (from the window after the last open one, if windows at or after ``start`` already hold events)."""
        self.cands[j, k] = v
        self.cand_ref[j, k] = value_share(self.layout.num_all_profiles[j], v)
        W = self.settings.window
        self.cand_since[j, k] = max([start] + [s + W for s in self.windows if s >= start])
        self.seasonal.reset_candidate(j, k)

    def cands_complete(self, since: float) -> np.ndarray:
        """Candidate values whose hits are complete in windows from ``since`` on (NaN elsewhere)."""
        return np.where(self.cand_since <= since, self.cands, np.nan)


def make_detectors(settings: DetectorSettings, n: int) -> list[Any]:
    """One change detector per numeric series (``settings.change_detector``), none when it is ``"none"``."""
    if settings.change_detector == "none":
        return []
    from detector.core.state.drift import ADWIN, PageHinkley  # river's, with plain restorable state

    delta = settings.change_detector_delta / max(n, 1)  # Bonferroni across the model's series
    if settings.change_detector == "adwin":
        return [ADWIN(delta=delta) for _ in range(n)]
    return [PageHinkley(delta=0.005, threshold=50.0) for _ in range(n)]
