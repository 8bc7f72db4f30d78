"""The first page of an incident already names its cause (issue 9, item 4).

Seen on a card-payment world at 150 predictions/h: the first window after a unit change (amount in
cents) held 38 minutes of bad traffic. Amount's distribution moved (a generic drift: it waits a window
so the unit check can name it), and the decision rate of one channel jumped - a critical finding that
fired at once and, with only "feature_drift" pending, was triaged covariate drift. The next window named
the unit change. A consequence (the share acted on, performance estimated from the scores) now waits with
the input that moved it.
"""

from __future__ import annotations

from detector.core.decisions.alerts import AlertManager, is_consequence
from detector.core.decisions.select import Finding
from detector.core.decisions.triage import triage
from detector.core.settings import DetectorSettings

H = 3600.0


def finding(kind: str, feature: str | None, statistic: str, severity: str = "critical", pvalue: float | None = 1e-9) -> Finding:
    return Finding(kind, feature, 0, statistic, 1.0, 0.1, severity, pvalue, {}, "", 1.0)


def window(k: int) -> dict:
    return {"_start": k * H, "_end": (k + 1) * H, "start": str(k), "end": str(k + 1), "count": 100}


def close(mgr: AlertManager, k: int, findings: list[Finding]):
    kinds = {f.kind for f in findings} | mgr.firing_kinds("m")
    out = mgr.update("m", window(k), [(f, {}) for f in findings], {""}, {"kinds": kinds})
    return [(a.kind, a.cause) for a in out if a.state == "firing"]


def test_a_decision_rate_jump_waits_for_the_input_that_moved_it_and_then_names_its_cause():
    mgr = AlertManager(DetectorSettings())
    rate = finding("decision_rate", None, "decision_rate_delta")
    drift = finding("feature_drift", "amount", "psi_vs_seasonal")
    assert close(mgr, 0, [rate, drift]) == []  # amount started moving this window, its cause is not named yet
    fired = close(mgr, 1, [finding("unit_shift", "amount", "scale_ratio", pvalue=0.0), rate])
    assert fired[0] == ("unit_shift", "pipeline_skew")
    assert ("decision_rate", "pipeline_skew") in fired


def test_a_decision_rate_jump_alone_still_pages_in_its_first_window():
    mgr = AlertManager(DetectorSettings())
    assert close(mgr, 0, [finding("decision_rate", None, "decision_rate_delta")]) == [("decision_rate", "decision_policy")]


def test_an_input_drift_already_breaching_does_not_hold_a_new_consequence():
    mgr = AlertManager(DetectorSettings())
    drift = finding("feature_drift", "amount", "psi", severity="warning")
    close(mgr, 0, [drift])
    fired = close(mgr, 1, [drift, finding("decision_rate", None, "decision_rate_delta")])
    assert ("decision_rate", "covariate_drift") in fired and ("feature_drift", "covariate_drift") in fired


def test_a_changed_threshold_is_a_fact_of_the_policy_not_a_consequence():
    assert not is_consequence("decision_rate", "threshold")
    assert is_consequence("performance", "estimated_accuracy_drop") and not is_consequence("performance", "auc_drop")
    mgr = AlertManager(DetectorSettings())
    fired = close(mgr, 0, [finding("decision_rate", None, "threshold", pvalue=None),
                           finding("feature_drift", "amount", "psi_vs_seasonal")])
    assert fired == [("decision_rate", "decision_policy")]


def test_a_decision_rate_move_with_only_the_score_shifted_takes_the_score_shifts_cause():
    f = finding("decision_rate", None, "decision_rate_delta")
    assert triage(f, {"kinds": {"score_drift"}}) == ("serving_health", "fix_system")
    assert triage(f, {"kinds": {"score_drift", "feature_drift"}}) == ("covariate_drift", "fix_data")
    assert triage(f, {"kinds": {"unit_shift", "score_drift"}}) == ("pipeline_skew", "fix_data")
    assert triage(f, {"kinds": set()}) == ("decision_policy", "fix_system")
