"""The regression and multiclass models of ``skewwatch demo``, next to the fraud model.

:func:`demo_task_scenarios` gives the ``eta`` (regression) and ``intent`` (multiclass) models of
the demo, each with one injected fault placed on the fraud demo's clock (same start, same local
time zone); :func:`demo_events` merges their events with the fraud scenario's into one stream in
event-time order, ready to be produced to the three topics. Label events of the task models name
their model: one sidecar watches three models whose labels share a topic, and a class name can
only be decoded by the model it belongs to.

>>> [(s.model, s.faults[0].kind) for s in demo_task_scenarios(hours=86)]
[('eta', 'concept_change'), ('intent', 'concept_change')]
>>> gt = demo_ground_truth(hours=86)
>>> [(g["model"], g["kind"], g["cause"]) for g in gt]
[('eta', 'concept_drift', 'concept_drift'), ('intent', 'concept_drift', 'concept_drift')]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from detector.sim.tasks.world import TaskFault, TaskScenario, simulate_task
from detector.sim.world import DEFAULT_START

__all__ = ["DEMO_TASK_FAULTS", "demo_task_scenarios", "demo_ground_truth", "demo_events"]

# (model, fault, onset h, end h, params): after the fraud demo's 36 clean hours, so each model's
# production baseline and label maturity exist; long enough for labels (median delay 2 h) to show it.
DEMO_TASK_FAULTS: tuple[tuple[str, str, float, float, dict[str, Any]], ...] = (
    ("eta", "concept_change", 44.0, 56.0, {}),
    ("intent", "concept_change", 58.0, 70.0, {}),
)


def demo_task_scenarios(rate_per_hour: float = 500.0, hours: float = 86.0, seed: int = 0,
                        start: datetime = DEFAULT_START, tz_offset_hours: int = -5) -> list[TaskScenario]:
    """The demo's task models with their faults (faults that would start after ``hours`` are left out)."""
    out = []
    for model, kind, onset, end, params in DEMO_TASK_FAULTS:
        faults = (TaskFault(kind, onset, min(end, hours), params),) if onset < hours else ()
        out.append(TaskScenario("demo", model, hours=hours, rate_per_hour=rate_per_hour, faults=faults, seed=seed,
                                start=start, tz_offset_hours=tz_offset_hours, label_names_model=True))
    return out


def demo_ground_truth(**kw: Any) -> list[dict[str, Any]]:
    """The task models' injected faults, each with its model (ground truth as :meth:`TaskScenario.ground_truth`)."""
    return [{**g, "model": sc.model} for sc in demo_task_scenarios(**kw) for g in sc.ground_truth()]


def demo_events(fraud: Iterable[tuple[float, str, dict[str, Any]]], scenarios: list[TaskScenario]
                ) -> Iterator[tuple[float, str, dict[str, Any]]]:
    """The fraud stream and the task models' streams merged in event-time order (stable: ties keep stream order)."""
    streams: list[Iterable[tuple[float, str, dict[str, Any]]]] = [fraud, *(simulate_task(sc) for sc in scenarios)]
    return heapq.merge(*streams, key=lambda e: e[0])
