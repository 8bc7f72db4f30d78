"""Shared fixtures for the detection scenarios: one reference of the simulated model's training data."""

from __future__ import annotations

import orjson
import pytest

from detector.core.engine import Engine
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.sim import get_scenario, simulate, training_table
from tests.engine_replay import replay_log

SLICES = ["region", "channel", "tier"]


@pytest.fixture(scope="session")
def sim_reference():
    cols = training_table(40_000, seed=1)
    return build_reference(cols, label_column="label", score_column="score", slice_columns=SLICES,
                           time_column="ts", model="fraud")


def run_scenario(ref, name, *, rate=600.0, seed=0, topics=("predictions", "labels", "features"), settings=None,
                 outcomes=True, **kw):
    """Drive an Engine (the same core as replay and the sidecar) over a simulated scenario."""
    sc = get_scenario(name, seed=seed, rate_per_hour=rate, **kw)
    eng = Engine(settings or DetectorSettings(), default_reference=ref)
    if outcomes and "labels" in topics:
        from detector.core.outcomes.monitor import attach_outcomes

        attach_outcomes(eng, None)
    r = replay_log(eng, ((topic, orjson.dumps(ev)) for _ts, topic, ev in simulate(sc, topics=topics)), 2000)
    return sc, eng, r.dicts()
