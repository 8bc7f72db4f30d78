"""A clock shift of a non-clock feature needs a clock feature of the same rows to say the same, every time.

Seen on a credit world with a weekly cycle: on a Sunday morning the branches stay closed, so the branch
code of each hour looks like the weekday hour before opening - "2 h earlier" at 07:00, "3 h" at 08:00 -
and one window in which the local-hour feature of all traffic happened to look an hour off paired the
two into a page. A producer's wrong clock moves the clock features of its rows by the same hours in every
window; these tests pin the rule on the persistence step itself.
"""

from __future__ import annotations

from types import SimpleNamespace

from detector.core.decisions.select import Finding
from detector.core.evaluate import _persistent_shifts
from detector.core.settings import DetectorSettings

H = 3600.0


def shift(feature: str, hours: float, row: int = 0) -> Finding:
    return Finding("feature_drift", feature, row, "time_shift_hours", hours, 0.0, "critical", 1e-9, {}, "", abs(hours))


def state(clock: list[str]):
    ms = SimpleNamespace(clock_shifts={}, settings=DetectorSettings())
    lay = SimpleNamespace(ref=SimpleNamespace(hourly={"clock": clock}), row_label=lambda r: {} if r == 0 else {"region": "east"})
    return ms, lay


def run(ms, lay, windows: list[list[Finding]]) -> list[list[tuple[str, float]]]:
    fired = []
    for k, findings in enumerate(windows):
        out = _persistent_shifts(ms, lay, list(findings), [], 1_000_000.0 + k * H)
        fired.append([(f.feature, f.value) for f in out])
    return fired


def test_a_growing_shift_witnessed_once_does_not_page():
    ms, lay = state(["application_hour", "weekday"])
    fired = run(ms, lay, [[shift("branch_code", 1)],
                          [shift("branch_code", 2), shift("application_hour", 1)],
                          [shift("branch_code", 3)],
                          [shift("branch_code", 4)]])
    assert fired[1] == [("application_hour", 1)] or fired[1] == []  # a clock feature's first sighting waits
    assert all(("branch_code", v) not in w for w in fired for v in (1, 2, 3, 4)), fired


def test_a_witnessed_shift_seen_twice_pages_and_a_clock_feature_needs_no_witness():
    ms, lay = state(["application_hour", "weekday"])
    fired = run(ms, lay, [[shift("branch_code", 1, row=1), shift("application_hour", 1, row=1)],
                          [shift("branch_code", 1, row=1), shift("application_hour", 1, row=1)]])
    assert fired[0] == []  # one window is not yet a lasting fact
    assert sorted(fired[1]) == [("application_hour", 1), ("branch_code", 1)]


def test_a_witness_in_another_row_does_not_count():
    ms, lay = state(["application_hour"])
    fired = run(ms, lay, [[shift("branch_code", 1, row=0), shift("application_hour", 1, row=1)],
                          [shift("branch_code", 1, row=0), shift("application_hour", 1, row=1)]])
    assert ("branch_code", 1) not in fired[1]


def test_without_clock_features_two_sightings_are_enough():
    ms, lay = state([])  # a training table without timestamps names no clock features
    fired = run(ms, lay, [[shift("local_hour", 8)], [shift("local_hour", 7)]])
    assert fired == [[], [("local_hour", 7)]]
