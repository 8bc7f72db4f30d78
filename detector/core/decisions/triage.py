"""Root-cause triage: which lever to pull — fix data, fix model, or fix the system.

The rules follow the decision framework of the domain brief:

- parity, missingness, unit, default-value, schema and category signals are **pipeline skew**
  (the model is fed something other than what it was trained on) -> ``fix_data``;
- inputs moved -> **covariate drift** -> ``fix_data`` (refresh training data);
- the outcome base rate moved -> **label drift** -> ``fix_model`` (recalibrate / retrain);
- neither moved but performance or calibration fell -> **concept drift** -> ``fix_model``;
- performance *estimated* from the scores fell (``estimated_*``, before labels) -> the upstream cause
  when one is open, else **covariate drift** (the estimate assumes the score still means what it
  meant in training, so it cannot see concept drift) -> ``fix_data``;
- thresholds, decision rates, calibration and capacity -> **decision policy** -> ``fix_system``;
- fallbacks and latency -> **serving health** -> ``fix_system``;
- label delay and corrections -> **label quality** -> ``fix_data``.

Outcome findings (:mod:`detector.core.outcomes.monitor`) add ``inputs_stable`` (no input alert fired
while the cohort matured), ``label_rate_stable`` and ``label_delay_shift`` to the context. While
inputs are not stable, performance, calibration, label and concept drift are credited to the
upstream cause (pipeline skew, covariate drift, or serving health for a score shift); a base-rate
move during a label-delay shift is label quality; concept drift is only concept drift while the
inputs are stable.

``context`` carries what else is breaching in the same model and window, so e.g. a score shift
with drifting inputs is covariate drift, while a score shift with stable inputs points at the
model artefact or an unmonitored input (pipeline skew).

>>> from detector.core.decisions.select import Finding
>>> f = Finding("unit_shift", "amount", 0, "scale_ratio", 100.0, 4.0, "critical", 0.0, {}, "", 1.0)
>>> triage(f, {})
('pipeline_skew', 'fix_data')
"""

from __future__ import annotations

from typing import Any

from detector.core.decisions.kinds import ACTIONS, CAUSES, KINDS, OUTCOME_KINDS, PIPELINE_KINDS

__all__ = ["triage", "CAUSES", "ACTIONS"]

# each kind's default cause and action, and which kinds are pipeline faults: detector.core.decisions.kinds
_PIPELINE = PIPELINE_KINDS


def triage(finding: Any, context: dict[str, Any]) -> tuple[str, str]:
    kind = finding.kind
    kinds: set[str] = set(context.get("kinds", ()))
    if kind == "feature_drift":
        if finding.statistic == "time_shift_hours":
            return "pipeline_skew", "fix_data"  # a shifted clock is plumbing, not the world moving
        return "covariate_drift", "fix_data"
    if kind == "score_drift":
        if kinds & _PIPELINE:
            return "pipeline_skew", "fix_data"
        if "feature_drift" in kinds:
            return "covariate_drift", "fix_data"
        # inputs are stable but scores moved: the served model (artefact, version, serving path)
        # is not the one that was validated — a release/serving problem, not the world changing
        return "serving_health", "fix_system"
    if kind == "decision_rate" and finding.statistic != "threshold":
        # the share acted on moved; if scores or inputs moved too, the policy only passed on their cause
        # (a score shift with stable inputs is the served model's, as for score_drift itself)
        return _upstream(kinds) or ("decision_policy", "fix_system")
    if kind == "multivariate_drift":
        # the features that no longer move together: broken plumbing when one of them is also
        # broken on its own (a parity mismatch, a schema fault), else the world moved
        named = {x.get("feature") for x in (getattr(finding, "evidence", None) or {}).get("features", [])}
        if named & set(context.get("pipeline_features", ())):
            return "pipeline_skew", "fix_data"
        return "covariate_drift", "fix_data"
    if kind == "score_drift" and finding.statistic == "value_share":
        return "serving_health", "fix_system"  # one constant score: a fallback/default path
    if kind in _OUTCOME and context.get("inputs_stable") is False:
        up = _upstream(kinds)
        if up is not None and (kind != "label_drift" or not context.get("label_delay_shift")):
            return up  # outcomes moved because what the model was fed (or scored) moved
    if kind == "calibration" and context.get("inputs_stable") and context.get("label_rate_stable"):
        return "concept_drift", "fix_model"
    if kind == "performance" and finding.statistic.startswith("estimated_"):
        # estimated from the scores with the training calibration, so by construction not a change of the
        # score-outcome relationship: the scores moved to where the model is less sure or less right
        return _upstream(kinds) or ("covariate_drift", "fix_data")
    if kind == "performance":
        up = _upstream(kinds)
        if up is not None:
            return up
        if "label_drift" in kinds:
            return "label_drift", "fix_model"
        return "concept_drift", "fix_model"
    if kind == "label_drift" and context.get("label_delay_shift"):
        return "label_quality", "fix_data"  # incomplete labels, not a different world
    k = KINDS.get(kind)
    return (k.cause, k.action) if k is not None else ("pipeline_skew", "fix_data")


_OUTCOME = OUTCOME_KINDS - {"label_delay"}  # outcome moves that an upstream change can explain


def _upstream(kinds: set[str]) -> tuple[str, str] | None:
    """The upstream cause among the input alerts open in the same model, if any."""
    if kinds & _PIPELINE:
        return "pipeline_skew", "fix_data"
    if "feature_drift" in kinds:
        return "covariate_drift", "fix_data"
    if "score_drift" in kinds:
        return "serving_health", "fix_system"  # inputs fine, scores moved: the served model/artefact
    return None
