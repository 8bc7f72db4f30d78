"""Faults: what breaks, when, where, and which alert a monitor should raise for it.

A :class:`Fault` has a ``kind`` (one per fault class of the seed article), an onset and optional
end (hours after the scenario start), an optional ``slice`` restriction (e.g. ``{"region": "eu"}``)
and an optional linear ``ramp_h`` (gradual onset). Its per-event *intensity* ``w`` is in [0, 1]:
0 before the onset, outside the slice and after the end (recovery is immediate), rising linearly
to 1 over the ramp. Share-type faults hit ``share * w`` of the events; magnitude-type faults
(drifts, score shift) scale with ``w``.

Each kind belongs to a *stage* of generation: ``world`` (the world itself changes; the offline
pipeline sees it too), ``label`` (the truth changes), ``serving`` (only the served features
break; offline features keep the true values), ``model`` (the score/decision/serving health), and
``arrival`` (only label arrival). :data:`KINDS` also carries the expected alert ``kind`` (its
``cause`` and ``action`` are the kind's, from :mod:`detector.core.decisions.kinds`, unless the fault sets
another cause), and the alert kinds that may legitimately fire as a *consequence* (``also``).

>>> f = Fault("unit_change", onset_h=40, end_h=52)
>>> f.features, f.params["factor"]
(('amount',), 100.0)
>>> intensity(Fault("covariate_drift", 10, ramp_h=4), np.array([9.0, 12.0, 20.0])).tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from detector.core.decisions.kinds import ACTION_OF, kind
from detector.sim.features import GROUPS, SLICE_DIMS

__all__ = ["Fault", "KindInfo", "KINDS", "intensity", "slice_mask"]


@dataclass(frozen=True)
class KindInfo:
    stage: str  # world | label | serving | model | arrival
    alert: str  # expected alert kind (registered in detector.core.decisions.kinds)
    features: tuple[str, ...]  # default features ((): the fault is not about a feature)
    params: Mapping[str, Any]
    also: tuple[str, ...] = ()  # alert kinds that may follow as a consequence
    ramp_h: float = 0.0  # default ramp
    summary: str = ""
    cause: str = ""  # "" = the alert kind's default cause (a fault whose statistic names another cause sets it)
    action: str = ""  # "" = the action that goes with the cause

    def __post_init__(self) -> None:
        k = kind(self.alert)
        for a in self.also:
            kind(a)
        cause = self.cause or k.cause
        object.__setattr__(self, "cause", cause)
        object.__setattr__(self, "action", self.action or ACTION_OF[cause])


_PIPE = ("feature_parity", "score_drift", "decision_rate", "performance", "calibration")
KINDS: dict[str, KindInfo] = {
    "unit_change": KindInfo("serving", "unit_shift", ("amount",),
                            {"factor": 100.0}, ("feature_drift",) + _PIPE,
                            summary="a feature is served in other units (x factor, e.g. dollars -> cents)"),
    "missing_jump": KindInfo("serving", "missing_values", ("ip_risk_score",),
                             {"share": 0.4}, _PIPE, summary="a feature is null in `share` of events"),
    "default_spike": KindInfo("serving", "default_value_spike", ("account_age_days",),
                              {"share": 0.3, "value": 0.0}, ("feature_drift",) + _PIPE,
                              summary="a feature is replaced by a default value in `share` of events"),
    "new_category": KindInfo("serving", "unseen_categories", ("device",),
                             {"share": 0.2, "value": "harmonyos"}, ("feature_drift",) + _PIPE,
                             summary="a brand-new category takes `share` of a categorical feature"),
    "renamed_category": KindInfo("serving", "unseen_categories", ("country",),
                                 {"old": "DE", "new": "GER"}, ("feature_drift",) + _PIPE,
                                 summary="a category is renamed (old -> new) by the serving pipeline"),
    "join_failure": KindInfo("serving", "missing_values", GROUPS["account"],
                             {"share": 0.3}, _PIPE, summary="a join fails: a group of related features null together"),
    "covariate_drift": KindInfo("world", "feature_drift",
                                ("amount", "distance_from_home_km"), {"magnitude": 1.0, "category": None},
                                ("score_drift", "decision_rate", "label_drift"), ramp_h=8.0,
                                summary="input distributions shift gradually (world change)"),
    "slice_drift": KindInfo("world", "feature_drift", ("amount",),
                            {"magnitude": 1.5, "category": None}, ("score_drift", "decision_rate", "label_drift"),
                            ramp_h=4.0, summary="drift in one slice only"),
    "timezone_shift": KindInfo("serving", "feature_drift", ("hour_of_day",),
                               {"hours": None}, _PIPE, cause="pipeline_skew", summary="hour_of_day computed in UTC instead of local time"),
    "score_drift": KindInfo("model", "score_drift", (),
                            {"shift": 1.2, "model_version": None}, ("decision_rate", "calibration", "performance"),
                            summary="the served model's scores shift up (a bad model artifact)"),
    "threshold_change": KindInfo("model", "decision_rate", (),
                                 {"threshold": 0.3}, (), summary="the decision threshold changes"),
    "override_surge": KindInfo("model", "decision_rate", (),
                               {"rate": 0.6, "reason": "not_fraud_per_reviewer"}, (),
                               summary="reviewers override a much larger share of the model's flags (alert fatigue)"),
    "fallback_surge": KindInfo("model", "fallback_rate", (),
                               {"share": 0.25}, ("score_drift", "decision_rate", "performance", "calibration"),
                               summary="the service falls back to a default score"),
    "latency_spike": KindInfo("model", "latency", (),
                              {"factor": 5.0}, (), summary="serving latency multiplies"),
    "label_drift": KindInfo("label", "label_drift", (),
                            {"factor": 2.0}, ("calibration", "performance"),
                            summary="the true base rate changes (x factor); inputs stable"),
    "concept_drift": KindInfo("label", "concept_drift",
                              ("behavior_score_1", "ip_risk_score", "amount"), {}, ("performance", "calibration"),
                              ramp_h=2.0, summary="the effect of some features on the label flips sign"),
    "label_delay_increase": KindInfo("arrival", "label_delay", (),
                                     {"factor": 5.0}, (), summary="labels arrive `factor` times later"),
    "parity_skew": KindInfo("serving", "feature_parity", ("n_tx_24h",),
                            {"share": 0.5, "mode": "stale", "delta": 1.0, "digits": -1},
                            ("performance", "calibration"), summary="served values differ from the offline pipeline's"),
    "feature_absent": KindInfo("serving", "schema", ("device_trust_score",),
                               {}, ("missing_values",) + _PIPE, summary="a feature key disappears from serving"),
    "unexpected_feature": KindInfo("serving", "schema", ("promo_code_used",),
                                   {}, (), summary="a new, unknown feature key appears in serving"),
}


@dataclass(frozen=True)
class Fault:
    """One injected fault. ``feature`` is shorthand for ``features=(feature,)``."""

    kind: str
    onset_h: float
    end_h: float | None = None
    feature: str | None = None
    features: tuple[str, ...] = ()
    slice: Mapping[str, str] = field(default_factory=dict)
    ramp_h: float | None = None  # None = the kind's default
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        info = KINDS.get(self.kind)
        if info is None:
            raise ValueError(f"Fault.kind {self.kind!r} is unknown; use one of {sorted(KINDS)}")
        feats = tuple(self.features) or ((self.feature,) if self.feature else info.features)
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "feature", feats[0] if len(feats) == 1 else None)
        unknown = set(self.params) - set(info.params)
        if unknown:
            raise ValueError(f"Fault({self.kind}).params: unknown {sorted(unknown)}; known {sorted(info.params)}")
        object.__setattr__(self, "params", MappingProxyType({**info.params, **self.params}))
        object.__setattr__(self, "slice", MappingProxyType(dict(self.slice)))
        object.__setattr__(self, "ramp_h", info.ramp_h if self.ramp_h is None else float(self.ramp_h))
        for dim, value in self.slice.items():
            if dim not in SLICE_DIMS or value not in SLICE_DIMS[dim]:
                raise ValueError(f"Fault.slice {dim}={value!r} is not a slice value; dims {dict(SLICE_DIMS)}")
        if self.end_h is not None and self.end_h <= self.onset_h:
            raise ValueError(f"Fault({self.kind}): end_h {self.end_h} must be after onset_h {self.onset_h}")

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]


def intensity(fault: Fault, t_h: np.ndarray) -> np.ndarray:
    """Per-event intensity in [0, 1] at hours-since-start ``t_h`` (ignoring the slice)."""
    if fault.ramp_h and fault.ramp_h > 0:
        w = np.clip((t_h - fault.onset_h) / fault.ramp_h, 0.0, 1.0)
    else:
        w = (t_h >= fault.onset_h).astype(np.float64)
    if fault.end_h is not None:
        w = np.where(t_h >= fault.end_h, 0.0, w)
    return w


def slice_mask(fault: Fault, slice_codes: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Boolean mask of the events inside the fault's slice (None = all events)."""
    mask = None
    for dim, value in fault.slice.items():
        m = slice_codes[dim] == SLICE_DIMS[dim].index(value)
        mask = m if mask is None else mask & m
    return mask
