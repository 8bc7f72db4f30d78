"""Deterministic traffic simulator of a binary-classification model ("fraud") with fault injection.

Used by the demo, the benchmark and the detection tests. The pieces, in generation order:

* :mod:`~detector.sim.world` — :class:`World` parameters, the seasonal clock;
* :mod:`~detector.sim.features` — slices, latent traits, 20 numeric + 5 categorical features;
* :mod:`~detector.sim.outcome` — the true label model and the served model imitating it;
* :mod:`~detector.sim.faults` / :mod:`~detector.sim.inject` — :class:`Fault` kinds and injection;
* :mod:`~detector.sim.generate` — one vectorised chunk of traffic;
* :mod:`~detector.sim.stream` — :func:`simulate`: contract events in event-time order;
* :mod:`~detector.sim.scenario` / :mod:`~detector.sim.scenarios` — :class:`Scenario`, ground
  truth, the named registry;
* :mod:`~detector.sim.files` — JSONL/CSV writers, training rows, benchmark messages;
* :mod:`~detector.sim.cli` — ``python -m detector.sim``;
* :mod:`~detector.sim.tasks` — two more models on the same clock: ``eta`` (regression) and
  ``intent`` (multiclass), with concept change, class prior drift and joint-structure faults.

>>> sc = get_scenario("unit_change", rate_per_hour=50)
>>> sc.ground_truth()[0]["kind"], sc.ground_truth()[0]["feature"]
('unit_shift', 'amount')
"""

from detector.sim.cli import main
from detector.sim.faults import KINDS, Fault
from detector.sim.files import (
    batch_bytes,
    training_columns,
    training_rows,
    training_table,
    write_jsonl,
    write_training,
)
from detector.sim.scenario import Scenario
from detector.sim.scenarios import SCENARIOS, get_scenario, list_scenarios
from detector.sim.stream import TOPICS, Event, simulate
from detector.sim.world import DEFAULT_START, World

__all__ = [
    "World",
    "Fault",
    "KINDS",
    "Scenario",
    "SCENARIOS",
    "get_scenario",
    "list_scenarios",
    "simulate",
    "Event",
    "TOPICS",
    "write_jsonl",
    "write_training",
    "training_rows",
    "training_columns",
    "training_table",
    "batch_bytes",
    "main",
    "DEFAULT_START",
]
