"""Ready-made scenarios: ``stable``, one per fault kind, and ``demo``.

Every scenario starts on Monday 00:00 local time and runs 72 hours by default. Single-fault
scenarios have ``ONSET_H`` = 40 hours (Tuesday 16:00 local) of clean traffic first, so a monitor
can learn the daily pattern, then the fault until ``END_H`` = 56 (Wednesday 08:00), then 16
recovered hours. ``demo`` chains several faults of a few hours each and ends recovered.

>>> "stable" in SCENARIOS and "demo" in SCENARIOS and "unit_change" in SCENARIOS
True
>>> get_scenario("threshold_change").ground_truth()[0]["kind"]
'decision_rate'
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from detector.sim.faults import KINDS, Fault
from detector.sim.scenario import Scenario
from detector.sim.world import World

__all__ = ["SCENARIOS", "get_scenario", "list_scenarios", "ONSET_H", "END_H", "HOURS"]

ONSET_H = 40.0
END_H = 56.0
HOURS = 72.0

# Non-default settings of the single-fault scenarios (everything else: the kind's defaults).
_SINGLE: dict[str, dict] = {
    "slice_drift": {"slice": {"region": "eu"}},
}


def _single(kind: str) -> Callable[[], Scenario]:
    def build() -> Scenario:
        fault = Fault(kind, ONSET_H, END_H, **_SINGLE.get(kind, {}))
        return Scenario(kind, faults=(fault,), hours=HOURS, description=KINDS[kind].summary)
    return build


def _demo() -> Scenario:
    faults = (
        Fault("unit_change", 36, 40),
        Fault("join_failure", 42, 46),
        Fault("slice_drift", 48, 52, slice={"region": "eu"}, ramp_h=1.0),
        Fault("renamed_category", 54, 58),
        Fault("threshold_change", 60, 64),
        Fault("fallback_surge", 66, 70),
        Fault("concept_drift", 72, 78, ramp_h=1.0),
    )
    return Scenario("demo", faults=faults, hours=86.0,
                    description="1.5 clean days, then seven faults of 4-6 hours one after another; ends recovered")


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "stable": lambda: Scenario("stable", hours=HOURS, description="clean seasonal traffic, no faults"),
    **{kind: _single(kind) for kind in KINDS},
    "demo": _demo,
}


def list_scenarios() -> list[str]:
    return list(SCENARIOS)


def get_scenario(name: str, seed: int = 0, rate_per_hour: float | None = None, start: datetime | None = None,
                 hours: float | None = None, world: World | None = None) -> Scenario:
    """A named scenario, optionally with another seed, traffic rate, start time or length.

    Fault times are relative to the start, so moving the start moves the faults with it.
    """
    try:
        build = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}") from None
    sc = build()
    w = world or sc.world
    if rate_per_hour is not None:
        w = w.with_(rate_per_hour=float(rate_per_hour))
    changes: dict = {"seed": seed, "world": w}
    if start is not None:
        changes["start"] = start
    if hours is not None:
        changes["hours"] = float(hours)
    return sc.with_(**changes)
