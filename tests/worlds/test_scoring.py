"""The harness's scoring rules and summary parsing (so a verdict of the evaluation can be trusted)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.worlds.evaluate import parse_replay_summary, summarise
from tests.worlds.scoring import score

T0 = datetime(2025, 3, 1, tzinfo=UTC).timestamp()
H = 3600.0


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def alert(kind: str, end_h: float, cause: str = "pipeline_skew", feature: str | None = None,
          sl: dict[str, str] | None = None, state: str = "firing", evidence: dict | None = None) -> dict:
    end = T0 + end_h * H
    return {"state": state, "kind": kind, "feature": feature, "slice": sl or {}, "cause": cause, "ts": _iso(end),
            "window": {"start": _iso(end - H), "end": _iso(end), "count": 100}, "evidence": evidence or {}}


def meta(kinds=("unit_shift",), causes=("pipeline_skew",), feature="amount", slices=None, related=(),
         onset_h=10.5, deadline_h=24.0) -> dict:
    return {"onset": T0 + onset_h * H, "deadline_h": deadline_h, "days": 14.0, "start": T0,
            "expect": {"kinds": list(kinds), "causes": list(causes), "feature": feature, "slices": slices,
                       "related": list(related)}}


def test_caught_with_delay_from_the_onset_to_the_window_end() -> None:
    r = score(meta(), [alert("unit_shift", 12.0, feature="amount")])
    assert r["caught"] and r["delay_h"] == 1.5 and r["first_cause_ok"] and r["first_kind_ok"]
    assert r["false_alarms"] == 0


def test_a_window_that_ends_at_the_onset_is_before_it() -> None:
    r = score(meta(onset_h=12.0), [alert("unit_shift", 12.0, feature="amount")])
    assert not r["caught"] and r["false_before_onset"] == 1


def test_after_the_deadline_is_late_not_caught() -> None:
    r = score(meta(deadline_h=24.0), [alert("unit_shift", 40.0, feature="amount")])
    assert not r["caught"] and r["detected_late"] and r["delay_h"] == 29.5


def test_wrong_feature_or_slice_does_not_count() -> None:
    assert not score(meta(), [alert("unit_shift", 12.0, feature="items")])["caught"]
    m = meta(kinds=("latency",), causes=("serving_health",), feature=None, slices=[{"channel": "app"}])
    r = score(m, [alert("latency", 12.0, cause="serving_health")])
    assert not r["caught"] and r["false_alarms"] == 0  # imprecise (global), not a false alarm
    assert score(m, [alert("latency", 12.0, cause="serving_health", sl={"channel": "app"})])["caught"]


def test_first_alert_with_the_wrong_cause_and_unrelated_alerts_are_counted() -> None:
    alerts = [alert("feature_drift", 11.0, cause="covariate_drift", feature="amount"),  # related, wrong cause
              alert("unit_shift", 12.0, feature="amount"),
              alert("missing_values", 13.0, feature="device_trust"),  # unrelated: false alarm
              alert("default_value_spike", 5.0, feature="local_hour"),  # before the onset
              alert("unit_shift", 30.0, feature="amount", state="resolved")]
    r = score(meta(), alerts)
    assert r["caught"] and not r["first_cause_ok"] and not r["first_kind_ok"]
    assert (r["false_before_onset"], r["false_after_onset"], r["false_alarms"]) == (1, 1, 2)


def test_listed_consequences_are_not_false_alarms() -> None:
    r = score(meta(related=("score_drift",)), [alert("unit_shift", 12.0, feature="amount"),
                                               alert("score_drift", 12.0)])
    assert r["false_alarms"] == 0


def test_outcome_alerts_are_visible_no_earlier_than_the_stream_that_carried_them() -> None:
    m = meta(kinds=("concept_drift",), causes=("concept_drift",), feature=None, deadline_h=120.0)
    # a cohort ending 2 h after the onset, emitted after an input alert whose window ended 150 h later
    alerts = [alert("latency", 152.0, cause="serving_health", state="resolved"),
              alert("concept_drift", 12.5, cause="concept_drift")]
    r = score(m, alerts)
    assert r["delay_h"] == 141.5 and not r["caught"] and r["detected_late"]
    # the label age in the evidence also bounds it
    r = score(m, [alert("concept_drift", 12.5, cause="concept_drift", evidence={"current": {"label_age_s": 50 * H}})])
    assert r["delay_h"] == 52.0 and r["caught"]


def test_clean_runs_count_every_firing_alert_per_14_days() -> None:
    m = {"onset": None, "days": 7.0}
    r = score(m, [alert("feature_drift", 3.0, cause="covariate_drift"), alert("feature_drift", 9.0, state="resolved")])
    assert r["clean"] and r["false_alarms"] == 1 and r["per_14d"] == 2.0


def test_replay_summary_parsing() -> None:
    text = ("replayed 100,761 prediction lines in 12.2s (8,291/s); 23,003 predictions, 80,537 labels, 30,457 feature events\n"
            "invalid events: 77,758 (future_timestamp: 77758, not_json: 2); late events: 12; windows closed: 74\n")
    s = parse_replay_summary(text)
    assert s == {"lines": 100761, "predictions": 23003, "labels": 80537, "feature_events": 30457, "invalid": 77758,
                 "late": 12, "invalid_reasons": {"future_timestamp": 77758, "not_json": 2}}
    assert parse_replay_summary("invalid events: 0; late events: 0; windows closed: 3")["invalid_reasons"] == {}


def test_summary_verdict() -> None:
    base = {"world": "A", "seed": 1, "rate": 300.0, "days": 14.0, "rejected_share": 0.0, "late_share": 0.0}
    clean = {**base, "scenario": "c", "fault": None, "false_alarms": 0, "per_14d": 0.0, "false_alarm_list": []}
    hit = {**base, "scenario": "f", "fault": "unit_shift", "deadline_class": "pipeline", "deadline_h": 24.0, "caught": True,
           "delay_h": 2.0, "first_cause_ok": True, "first_kind_ok": True, "false_alarms": 0, "first": "x", "alert": "x"}
    assert summarise([clean, hit])["targets"]["met"] is True
    assert summarise([{**clean, "false_alarms": 1}, hit])["targets"]["met"] is False
    assert summarise([clean, {**hit, "first_cause_ok": False}])["targets"]["met"] is False
    assert summarise([clean, hit, {"scenario": "e", "world": "A", "fault": None, "error": "boom"}])["targets"]["met"] is False


@pytest.mark.parametrize("share", [0.0, 0.01])
def test_any_rejected_line_fails_the_targets(share: float) -> None:
    clean = {"scenario": "c", "world": "A", "seed": 1, "rate": 300.0, "days": 14.0, "fault": None, "false_alarms": 0,
             "per_14d": 0.0, "false_alarm_list": [], "rejected_share": share, "late_share": 0.0}
    assert summarise([clean])["targets"]["met"] is (share == 0.0)


def test_the_full_matrix_covers_every_fault_with_two_seeds_and_two_rates() -> None:
    from tests.worlds.evaluate import plan
    from tests.worlds.faults import faults_of
    from tests.worlds.generator import WORLDS

    rates = {w: list(WORLDS[w].rates) for w in WORLDS}
    scenarios = plan(["A", "B"], [1, 2], rates, None, fast=False)
    for w in ("A", "B"):
        names = {s.fault for s in scenarios if s.world == w}
        assert names == {None, *(f.name for f in faults_of(w))}
        for name in names:
            runs = {(s.seed, s.rate) for s in scenarios if s.world == w and s.fault == name}
            assert len(runs) == 4
    assert plan(["A"], [1], {"A": [300.0]}, ["clean", "unit_shift"], fast=False) == [
        type(scenarios[0])("A", 1, 300.0, None), type(scenarios[0])("A", 1, 300.0, "unit_shift")]


def test_unknown_world_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.worlds.evaluate import main

    with pytest.raises(SystemExit) as exc:
        main(["--worlds", "C"])
    assert exc.value.code == 2 and "unknown world 'C'" in capsys.readouterr().err
