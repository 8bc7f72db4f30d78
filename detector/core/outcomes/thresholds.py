"""The outcome checks' settings (effect sizes, minimum counts) and the pseudo-row arrays they read.

Shared by :mod:`detector.core.outcomes.checks` and :mod:`detector.core.outcomes.expected`; plain data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OutcomeThresholds", "Arrays"]


@dataclass(frozen=True)
class OutcomeThresholds:
    """Effect sizes and minimum counts of the outcome checks (see the table in :mod:`detector.core.outcomes.checks`)."""

    min_labels: int = 100  # labelled pairs a pseudo-row needs for a rate test
    min_class: int = 20  # positives and negatives each, for AUC
    base_factor: int = 3  # the baseline needs base_factor x the current minimum
    base_rate_ratio: float = 1.5
    base_rate_ratio_critical: float = 2.0
    base_rate_abs: float = 0.01
    ece_delta: float = 0.05
    ece_delta_critical: float = 0.1
    oe_ratio: float = 1.3
    oe_ratio_critical: float = 2.0
    # calibration slope against training's or the baseline's (critical: oe_ratio_critical): a slope outside
    # [0.8, 1.25] of the reference is the usual line for scores too extreme (overfitting) or too timid in
    # clinical prediction (Steyerberg; Van Calster et al. 2016); the slope test's span is sized for it
    slope_ratio: float = 1.25
    auc_drop: float = 0.05
    auc_drop_critical: float = 0.1
    pr_drop: float = 0.1
    pr_drop_critical: float = 0.2
    min_decisions: int = 30
    brier_ratio: float = 1.25
    brier_ratio_critical: float = 1.5
    river_brier_ratio: float = 1.2
    critical_labels: int = 500  # "critical" (fires at once) needs at least this many labelled pairs
    # ... and this many of the rarer outcome (positives or negatives): the pooling target, at which a
    # ratio of 1.5 shows at p < 0.001 with 80% power (see OutcomeSettings.min_events)
    critical_events: int = 70
    small_count: float = 30.0  # below this many expected events, p-values use exact Poisson tails
    match_ratio: float = 0.8
    match_ratio_critical: float = 0.5
    match_abs: float = 0.05
    delay_ratio: float = 1.5
    delay_ratio_critical: float = 3.0
    correction_delta: float = 0.02
    correction_delta_critical: float = 0.1
    inconsistency_ratio: float = 1.5


@dataclass
class Arrays:
    """Pseudo-row arrays of one cohort (or of the baseline): see :class:`~detector.core.outcomes.cohort.Cohort`."""

    cnt: np.ndarray
    rel: np.ndarray
    hist: np.ndarray
    delay: np.ndarray
    arrivals: np.ndarray  # (P, 2): labels that arrived (first + corrections), corrections
