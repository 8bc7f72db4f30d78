"""The alert kinds: one record per kind, the only table of their facts.

Every module that needs a fact about a kind reads it here: the alert manager (which kinds exist,
which are outcome or parity kinds), triage (default cause and action, pipeline kinds), finding
selection (which statistic is the more specific explanation), outcome evaluation (which kinds mean
"the inputs changed"), the status page and report (feature-level kinds, ratio statistics), the
simulator's fault table and the Grafana dashboard builder (statistic names per panel).

A record holds:

``name``          the ``kind`` of the alert contract (README)
``scope``         ``feature`` (an alert names one feature, or the score) or ``model`` (``feature`` null)
``family``        ``input`` (window checks on served events), ``parity`` (served vs offline values)
                  or ``outcome`` (matured label cohorts): which evaluation owns the kind's incidents
``cause/action``  what triage says when nothing else in the window changes the diagnosis
``pipeline``      the kind names a fault in the feature pipeline (wins over drift in triage and gates)
``input_change``  an open incident of this kind means the model's inputs changed (so outcome moves
                  are not concept drift)
``priority``      rank among findings of the same feature and slice, most specific first (lower wins);
                  ``None`` = unranked (after every ranked one)
``statistics``    the statistics the kind is measured with; each may carry its own priority (a more
                  or less specific reading of the same kind), ``ratio=True`` when the value is a
                  multiplicative ratio (x100 and x0.01 are equally far from 1), and ``chart`` naming
                  the dashboard panel that draws it

Adding a kind or a statistic: docs/how-to-add-a-check.md.

>>> KINDS["unit_shift"].cause, KINDS["unit_shift"].action
('pipeline_skew', 'fix_data')
>>> is_ratio("scale_ratio"), is_ratio("psi")
(True, False)
>>> rank("feature_drift", "time_shift_hours") < rank("unit_shift", "scale_ratio") < rank("feature_drift", "psi")
True
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = [
    "Kind", "Statistic", "KINDS", "CAUSES", "ACTIONS", "ACTION_OF", "ALL_KINDS", "OUTCOME_KINDS", "PARITY_KINDS", "INPUT_KINDS", "DAY_KINDS",
    "FEATURE_KINDS", "PIPELINE_KINDS", "INPUT_CHANGE", "kind", "statistic", "is_ratio", "priority", "rank",
    "statistics_for_chart",
]

CAUSES = ("pipeline_skew", "covariate_drift", "label_drift", "concept_drift", "decision_policy", "serving_health",
          "label_quality")
ACTIONS = ("fix_data", "fix_model", "fix_system")
#: the lever each cause points at (a kind's default action is its cause's)
ACTION_OF = {"pipeline_skew": "fix_data", "covariate_drift": "fix_data", "label_drift": "fix_model",
             "concept_drift": "fix_model", "decision_policy": "fix_system", "serving_health": "fix_system",
             "label_quality": "fix_data"}


@dataclass(frozen=True)
class Statistic:
    """One statistic of a kind. ``name`` may hold ``*`` for a family (``estimated_*_ratio``)."""

    name: str
    priority: int | None = None  # None = the kind's
    ratio: bool = False
    chart: str | None = None  # the dashboard panel that draws it ("distribution", "scale")


@dataclass(frozen=True)
class Kind:
    name: str
    scope: str  # feature | model
    family: str  # input | parity | outcome
    cause: str
    action: str
    statistics: tuple[Statistic, ...]
    priority: int | None = None
    pipeline: bool = False
    input_change: bool = False

    def __post_init__(self) -> None:
        if self.scope not in ("feature", "model") or self.family not in ("input", "parity", "outcome"):
            raise ValueError(f"kind {self.name}: scope {self.scope!r} / family {self.family!r} unknown")
        if self.cause not in CAUSES or ACTION_OF[self.cause] != self.action:
            raise ValueError(f"kind {self.name}: cause {self.cause!r} / action {self.action!r} not a pair of the vocabulary")


def _s(name: str, priority: int | None = None, chart: str | None = None) -> Statistic:
    # every statistic named ``*_ratio`` is a multiplicative ratio except the labelled share, a one-sided fraction
    return Statistic(name, priority, name.endswith("_ratio") and name != "match_rate_ratio", chart)


_DIST = "distribution"
_PIPE = {"scope": "feature", "family": "input", "cause": "pipeline_skew", "action": "fix_data", "pipeline": True,
         "input_change": True}

# Priorities: the order of the most specific explanation, within a family. Input kinds: facts about the
# pipeline (schema, shifted clock, units, nulls, defaults, new values), serving health, policy, then
# the generic "the distribution moved" readings, against training before against production's own past.
_RECORDS = (
    # ------------------------------------------------------------------ input: pipeline faults
    Kind("schema", statistics=(_s("absent_share"), _s("unexpected_share"), _s("type_mismatch_share"),
                               _s("constant_share")), priority=10, **_PIPE),
    Kind("unit_shift", statistics=(_s("scale_ratio", chart="scale"),), priority=30, **_PIPE),
    Kind("missing_values", statistics=(_s("missing_rate_delta"), _s("missing_rate_delta_24h"),
                                       _s("missing_rate_vs_seasonal")), priority=40, **_PIPE),
    Kind("default_value_spike", statistics=(_s("value_share"), _s("value_share_24h"), _s("value_share_vs_seasonal")),
         priority=50, **_PIPE),
    Kind("unseen_categories", statistics=(_s("unseen_share"),), priority=60, **_PIPE),
    # ------------------------------------------------------------------ input: serving health and policy
    Kind("fallback_rate", "model", "input", "serving_health", "fix_system", (_s("fallback_rate"),), priority=70),
    Kind("latency", "model", "input", "serving_health", "fix_system", (_s("p95_ratio"),), priority=80),
    Kind("decision_rate", "model", "input", "decision_policy", "fix_system",
         (_s("threshold", priority=90), _s("decision_rate_delta"), _s("override_rate_delta"), _s("capacity_use")),
         priority=100),
    # ------------------------------------------------------------------ input: distributions
    Kind("feature_drift", "feature", "input", "covariate_drift", "fix_data", (
        _s("time_shift_hours", priority=20),
        _s("out_of_range_share", priority=120), _s("out_of_range_share_24h", priority=132),
        _s("psi", priority=140, chart=_DIST), _s("linf", priority=150, chart=_DIST),
        _s("psi_24h", priority=162, chart=_DIST), _s("linf_24h", priority=164, chart=_DIST),
        _s("psi_vs_seasonal", priority=170, chart=_DIST), _s("linf_vs_seasonal", priority=180, chart=_DIST),
        _s("mean_shift", priority=200),
    ), input_change=True),
    # the served score, charted and ranked like a feature; inputs stable and scores moved = the served artefact
    Kind("score_drift", "feature", "input", "serving_health", "fix_system", (
        _s("value_share", priority=110), _s("value_share_24h"), _s("value_share_vs_seasonal"),
        _s("out_of_range_share", priority=130), _s("out_of_range_share_24h", priority=134),
        _s("psi", priority=160), _s("psi_24h", priority=166), _s("psi_vs_seasonal", priority=190),
        _s("mean_shift", priority=210), _s("predicted_class_psi"), _s("prediction_psi"),
    ), input_change=True),
    Kind("multivariate_drift", "model", "input", "covariate_drift", "fix_data", (_s("reconstruction_error_ratio"),),
         input_change=True),
    # ------------------------------------------------------------------ parity
    Kind("feature_parity", statistics=(_s("mismatch_rate"),), **{**_PIPE, "family": "parity"}),
    # ------------------------------------------------------------------ outcomes
    Kind("label_delay", "model", "outcome", "label_quality", "fix_data", (
        _s("match_rate_ratio", priority=300), _s("delay_median_ratio", priority=310), _s("correction_rate", priority=320),
        _s("base_rate_inconsistency"),
    ), priority=370),
    Kind("label_drift", "model", "outcome", "label_drift", "fix_model",
         (_s("base_rate_ratio"), _s("class_prior_ratio"), _s("target_psi"), _s("target_shift")), priority=330),
    Kind("concept_drift", "model", "outcome", "concept_drift", "fix_model", (_s("error_rate_change"),), priority=340),
    Kind("performance", "model", "outcome", "concept_drift", "fix_model", (
        _s("auc_drop"), _s("precision_drop"), _s("recall_drop"), _s("brier_ratio"), _s("accuracy_drop"),
        _s("macro_f1_drop"), _s("confusion_shift"), _s("mae_ratio"), _s("rmse_ratio"),
        _s("estimated_*_ratio"), _s("estimated_*_drop"),
    ), priority=350),
    Kind("calibration", "model", "outcome", "decision_policy", "fix_system",
         (_s("ece_delta"), _s("observed_expected_ratio"), _s("calibration_slope")), priority=360),
)

#: name -> record, in declaration order
KINDS: dict[str, Kind] = {k.name: k for k in _RECORDS}

ALL_KINDS = frozenset(KINDS)
OUTCOME_KINDS = frozenset(k.name for k in _RECORDS if k.family == "outcome")
PARITY_KINDS = frozenset(k.name for k in _RECORDS if k.family == "parity")
INPUT_KINDS = frozenset(k.name for k in _RECORDS if k.family == "input")
FEATURE_KINDS = frozenset(k.name for k in _RECORDS if k.scope == "feature")
PIPELINE_KINDS = frozenset(k.name for k in _RECORDS if k.pipeline)
INPUT_CHANGE = frozenset(k.name for k in _RECORDS if k.input_change)
#: the kinds the trailing day's tests report (a statistic ending in ``_24h``, detector.core.checks.daily)
DAY_KINDS = frozenset(k.name for k in _RECORDS if any(s.name.endswith("_24h") for s in k.statistics))


def kind(name: str) -> Kind:
    """The record of a kind; a clear error for a name that is not one."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"alert kind {name!r} is not registered in detector.core.decisions.kinds; known: {sorted(KINDS)}") from None


def statistic(kind_name: str, name: str) -> Statistic | None:
    """The record of a kind's statistic (exact name first, then a ``*`` family), or None."""
    k = KINDS.get(kind_name)
    if k is None:
        return None
    exact = next((s for s in k.statistics if s.name == name), None)
    return exact or next((s for s in k.statistics if "*" in s.name and fnmatchcase(name, s.name)), None)


_RATIO = tuple(s for k in _RECORDS for s in k.statistics if s.ratio)


def is_ratio(name: str) -> bool:
    """Whether a statistic (of any kind) is a multiplicative ratio, judged by its distance from 1 both ways."""
    return any(s.name == name or ("*" in s.name and fnmatchcase(name, s.name)) for s in _RATIO)


def priority(family: str) -> list[tuple[str, str | None]]:
    """(kind, statistic or None = any other statistic of the kind), most specific first, for one family."""
    ranked: list[tuple[int, int, tuple[str, str | None]]] = []
    for k in _RECORDS:
        if k.family != family:
            continue
        for s in k.statistics:
            if s.priority is not None:
                ranked.append((s.priority, len(ranked), (k.name, s.name)))
        if k.priority is not None:
            ranked.append((k.priority, len(ranked), (k.name, None)))
    return [key for _, _, key in sorted(ranked)]


def rank(kind_name: str, stat: str, order: list[tuple[str, str | None]] | None = None) -> int:
    """Position of (kind, statistic) in ``order`` (default: the kind's family); unranked = after all."""
    if order is None:
        k = KINDS.get(kind_name)
        order = priority(k.family) if k is not None else []
    for i, (kn, sn) in enumerate(order):
        if kn == kind_name and sn == stat:
            return i
    for i, (kn, sn) in enumerate(order):
        if kn == kind_name and sn is None:
            return i
    return len(order)


def statistics_for_chart(kind_name: str, chart: str) -> list[str]:
    """Names of a kind's statistics drawn on one dashboard panel."""
    return [s.name for s in kind(kind_name).statistics if s.chart == chart]
