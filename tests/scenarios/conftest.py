"""Shared fixtures for the detection scenarios: one reference of the simulated model's training data."""

from __future__ import annotations

import orjson
import pytest

from detector.core.engine import Engine
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.sim import get_scenario, simulate, training_table

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
    buf = {"predictions": [], "labels": [], "features": []}
    alerts = []

    def flush():
        if buf["predictions"]:
            eng.ingest_predictions(buf["predictions"])
        if buf["labels"]:
            eng.ingest_labels(buf["labels"])
        if buf["features"]:
            eng.ingest_features(buf["features"])
        for k in buf:
            buf[k] = []
        alerts.extend(eng.advance())

    n = 0
    for _ts, topic, ev in simulate(sc, topics=topics):
        buf[topic].append(orjson.dumps(ev))
        n += 1
        if n % 2000 == 0:
            flush()
    flush()
    alerts.extend(eng.flush())
    return sc, eng, [a.to_dict() for a in alerts]
