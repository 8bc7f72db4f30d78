"""Detection settings: windows, bounds, thresholds. Validated once, at the edge (pydantic).

Every default here is meant to be principled rather than tuned: effect-size thresholds follow
the conventions of the field (PSI 0.2 = "significant shift", TFDV's L-infinity), each test also
has to be statistically significant for its sample size after false-discovery-rate control
across every feature x slice x statistic tested in the window, and an incident must persist
(hysteresis) before it fires. See ``README.md`` ("How alerts are decided").
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = ["parse_duration", "Duration", "Strict", "Thresholds", "DetectorSettings"]

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_duration(v: object) -> float:
    """Seconds from ``"5m"``, ``"1h"``, ``"7d"``, ``"250ms"`` or a number of seconds.

    >>> parse_duration("5m"), parse_duration("1.5h"), parse_duration(30)
    (300.0, 5400.0, 30.0)
    """
    if isinstance(v, bool):
        raise ValueError("expected a duration such as '5m', '1h' or '7d'")
    if isinstance(v, int | float):
        return float(v)
    m = _DUR.match(str(v))
    if not m:
        raise ValueError(f"{v!r} is not a duration; use e.g. '30s', '5m', '1h', '7d'")
    return float(m.group(1)) * _UNIT[m.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    """Base of every settings model: an unknown (misspelled) field is an error, and so is an invalid
    value assigned later."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Thresholds(Strict):
    """Effect-size thresholds (a finding needs the effect *and* significance)."""

    psi_warning: float = 0.2
    psi_critical: float = 0.5
    linf_warning: float = 0.15
    linf_critical: float = 0.3
    missing_delta_warning: float = 0.05
    missing_delta_critical: float = 0.2
    unit_ratio: float = 8.0  # geometric-mean ratio of |x| that says "units changed" (x100, x1000, x60, x24...)
    unit_spread_tolerance: float = 1.5  # log-spread ratio allowed for a pure unit change
    # also read a window as training mixed with training x k (a unit change begun inside it, paged one
    # window earlier). Off by default: a new segment of larger values with training's shape (premium
    # customers, a high-ticket merchant) reads exactly the same and would be paged as a pipeline fault
    unit_partial: bool = False
    default_share_delta: float = 0.1  # rise in the share of one exact value
    unseen_share_warning: float = 0.05
    unseen_share_critical: float = 0.2
    out_of_range_warning: float = 0.05
    absent_share: float = 0.5  # feature key absent from this share of events -> schema
    type_mismatch_share: float = 0.01
    decision_rate_delta: float = 0.1  # absolute change in share of events acted on
    fallback_rate_delta: float = 0.05
    latency_ratio: float = 2.0  # p95 latency vs its seasonal baseline
    mean_shift_sd: float = 0.25  # river change detector effect size (in reference SDs)
    override_rate_delta: float = 0.1  # absolute change in the share of model actions humans override
    capacity_starvation: float = 0.5  # flags below this share of the review capacity starve the queue


class DetectorSettings(Strict):
    """What the core needs; the sidecar config embeds this under ``detector:``."""

    window: Duration = Field(3600.0, gt=0, description="tumbling event-time window length")
    allowed_lateness: Duration = Field(60.0, ge=0, description="how long a window waits for late events")
    max_future: Duration = Field(86400.0, gt=0, description="offline (replay, no wall clock): reject events this far "
                                 "ahead of the stream's robust front (see detector.core.inputs.eventtime)")
    max_clock_skew: Duration = Field(900.0, gt=0, description="live: reject events this far ahead of the worker's wall clock")
    min_epoch: float = Field(946684800.0, description="reject timestamps before this (2000-01-01)")
    seasonality: Literal["daily", "weekly", "none"] = "daily"
    seasonal_decay: float = Field(0.7, gt=0, lt=1, description="weight kept per day by the seasonal baseline")
    seasonal_min_days: float = Field(1.5, ge=0, description="history a seasonal slot needs before drift tests")
    slice_dims: list[str] | None = None  # None: the reference's slice columns, else discovered
    slice_on_features: list[str] = Field(default_factory=list)
    slice_top_k: int = Field(10, ge=1, le=1000)
    max_slice_dims: int = Field(6, ge=0, le=32)
    max_models: int = Field(32, ge=1, description="models tracked at once (bounds state against rogue producers)")
    category_top_k: int = Field(50, ge=2, le=5000)
    max_unknown_features: int = Field(64, ge=0)
    typed_decode: bool = Field(True, description="decode clean events straight into typed records (faster; the "
                                                 "results are the same either way)")
    columnar_decode: bool = Field(True, description="read clean batches of events as columns with Arrow's JSON reader "
                                                    "(faster still; needs typed_decode; the results are the same)")
    # byte budgets: what an untrusted producer can make the sidecar hold (see README "Limits")
    max_id_bytes: int = Field(256, ge=8, le=65536, description="longest prediction_id accepted (UTF-8 bytes)")
    max_value_bytes: int = Field(256, ge=8, le=65536,
                                 description="longest model name accepted; other retained strings (categories, slice "
                                             "values, versions, decisions, feature names) are cut to this")
    max_early_label_bytes: int = Field(64 << 20, ge=1 << 16,
                                       description="memory for labels that arrive before their prediction")
    max_parity_bytes: int = Field(256 << 20, ge=1 << 16,
                                  description="memory for served features kept for parity plus offline events waiting")
    min_count: int = Field(100, ge=1, description="events a slice needs in a window for distribution tests")
    min_count_rate: int = Field(50, ge=1, description="events needed for rate and scale tests (missing, units, defaults...)")
    fdr_q: float = Field(0.001, gt=0, lt=1, description="Benjamini-Hochberg false discovery rate per window")
    fire_after: int = Field(2, ge=1, description="consecutive breaching windows before a warning fires")
    fire_after_critical: int = Field(1, ge=1)
    resolve_after: int = Field(3, ge=1, description="consecutive clean windows before an alert resolves")
    no_action_decisions: list[str] = Field(
        default_factory=lambda: ["approve", "allow", "accept", "pass", "none", "no_action", "ok", "0", "false"]
    )
    change_detector: Literal["adwin", "page_hinkley", "none"] = "adwin"
    change_detector_delta: float = Field(0.002, gt=0, lt=1)
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @model_validator(mode="after")
    def _check(self) -> DetectorSettings:
        if self.allowed_lateness >= self.window * 4:
            raise ValueError("allowed_lateness must be shorter than 4 windows; it holds windows open in memory")
        return self

    @property
    def season_slots(self) -> int:
        if self.seasonality == "none" or self.window >= 86400:
            return 1
        per_day = max(1, int(round(86400 / max(self.window, 3600))))
        return per_day * (7 if self.seasonality == "weekly" else 1)
