"""One golden scenario per fault class of the domain brief, plus seasonal stable traffic.

Each faulty scenario runs 40 h of clean, seasonal traffic (so the time-of-day baseline exists),
then injects its fault. The test asserts that the right kind is flagged on the right feature and
slice, with the right cause, within a few windows of the fault reaching full effect — and that
stable traffic raises nothing at all.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.scenarios.conftest import run_scenario

INPUT_FAULTS = [
    "unit_change", "missing_jump", "default_spike", "new_category", "renamed_category", "join_failure",
    "covariate_drift", "slice_drift", "timezone_shift", "score_drift", "threshold_change", "fallback_surge",
    "latency_spike", "feature_absent", "unexpected_feature",
]
MAX_WINDOWS_LATE = 3  # 1 h windows


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_stable_seasonal_traffic_raises_nothing(sim_reference):
    _, eng, alerts = run_scenario(sim_reference, "stable", rate=600)
    assert eng.counters.windows_closed >= 70
    assert [a for a in alerts if a["state"] == "firing"] == []


@pytest.mark.parametrize("name", INPUT_FAULTS)
def test_fault_is_flagged_with_kind_feature_slice_and_cause(sim_reference, name):
    sc, _, alerts = run_scenario(sim_reference, name, rate=600, topics=("predictions",))
    (gt,) = sc.ground_truth()
    features = {gt["feature"]} if gt.get("feature") else set(gt.get("features") or [None])
    if gt["kind"] == "score_drift":
        features |= {"score"}
    deadline = _t(gt.get("full_effect") or gt["onset"]) + MAX_WINDOWS_LATE * 3600 + 3600
    hits = [a for a in alerts if a["state"] == "firing" and a["kind"] == gt["kind"] and a["feature"] in features
            and a["slice"] == gt["slice"]]
    assert hits, f"{name}: no {gt['kind']} on {features} {gt['slice']}; got " + "; ".join(
        f"{a['kind']}/{a['feature']}/{a['slice']}" for a in alerts if a["state"] == "firing")
    first = min(_t(a["window"]["end"]) for a in hits)
    assert _t(gt["onset"]) < first <= deadline, f"{name}: flagged at {first}, onset {gt['onset']}"
    assert hits[0]["cause"] == gt["cause"], f"{name}: cause {hits[0]['cause']} != {gt['cause']}"
    # nothing fires before the fault starts
    early = [a for a in alerts if a["state"] == "firing" and _t(a["window"]["end"]) <= _t(gt["onset"])]
    assert early == []
