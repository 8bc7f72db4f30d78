"""A detector engine fed with simulated faulty traffic, built once per test process.

The ``unit_change`` scenario (amount served in cents from hour 40) stops at hour 51, so the
critical ``unit_shift`` incident is firing and one window is still open; labels and offline
features go through the real outcome monitor, and a few broken and late messages exercise the
pipeline counters.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from detector.config import Config, ModelConfig
from detector.core.engine import Engine
from detector.core.outcomes import attach_outcomes
from detector.core.profile import build_reference
from detector.core.settings import DetectorSettings
from detector.sim import get_scenario, simulate, training_columns, training_rows

HOURS = 51.0
RATE = 250.0
SLICES = ("region", "channel", "tier")


def reference() -> Any:
    rows = training_rows(12_000, seed=3)
    cols: dict[str, np.ndarray] = {}
    for c in training_columns():
        vals = [r.get(c) for r in rows]
        if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in vals):
            cols[c] = np.array([np.nan if v is None else float(v) for v in vals])
        else:
            cols[c] = np.array([None if v is None else str(v) for v in vals], dtype=object)
    return build_reference(cols, label_column="label", score_column="score", slice_columns=SLICES,
                           time_column="ts", model="fraud")


@lru_cache(maxsize=1)
def faulty_engine() -> Engine:
    eng = Engine(DetectorSettings(), default_reference=reference())
    costs = ModelConfig(reference="unused.json", cost_fp=1.0, cost_fn=20.0, review_capacity=60)
    attach_outcomes(eng, Config(models={"fraud": costs}))
    sc = get_scenario("unit_change", rate_per_hour=RATE, hours=HOURS)
    buf: dict[str, list[bytes]] = {"predictions": [], "labels": [], "features": []}
    ingest = {"predictions": eng.ingest_predictions, "labels": eng.ingest_labels, "features": eng.ingest_features}
    first: dict[str, Any] | None = None
    for _ts, topic, ev in simulate(sc):
        if first is None and topic == "predictions":
            first = ev
        buf[topic].append(orjson.dumps(ev))
        if len(buf["predictions"]) >= 2000:
            for t, msgs in buf.items():
                if msgs:
                    ingest[t](msgs)
                    msgs.clear()
            eng.advance()
    for t, msgs in buf.items():
        if msgs:
            ingest[t](msgs)
    eng.advance()
    late = dict(first or {}, prediction_id="late-1")  # for a window closed long ago
    eng.ingest_predictions([b"not json", b"{}", orjson.dumps(late)])
    return eng
