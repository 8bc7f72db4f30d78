"""Byte budgets: what a producer sends cannot make the sidecar hold more memory than configured.

Memory is measured with ``tracemalloc`` (what stays allocated after the batches, inputs freed),
not taken from our own estimates.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings

T = 1795615200.0
MB = 1 << 20


@pytest.fixture(scope="module")
def ref():
    rng = np.random.default_rng(3)
    n = 2000
    return build_reference({"amount": rng.lognormal(3, 1, n).round(2),
                            "country": np.array(rng.choice(["DE", "FR"], n), dtype=object),
                            "score": rng.random(n).round(3), "label": (rng.random(n) < 0.2).astype(float)},
                           score_column="score", label_column="label")


def engine(ref, **kw):
    eng = Engine(DetectorSettings(**kw), default_reference=ref)
    attach_outcomes(eng)
    return eng


def retained(feed, batches) -> int:
    """Bytes still allocated after feeding ``batches`` (each built lazily, then freed)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for make in batches:
            feed(make())
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_long_ids_are_rejected_by_default(ref):
    eng = engine(ref)
    long_id = "x" * 100_000
    errors = eng.ingest_labels([orjson.dumps({"prediction_id": f"{i}{long_id}", "ts": T, "label": 1}) for i in range(20)])
    assert {e.reason for e in errors} == {"oversized_field"} and len(errors) == 20
    assert "max_id_bytes=256" in errors[0].detail
    assert len(eng.outcomes.join.early) == 0


def test_early_labels_are_bounded_in_bytes(ref):
    """2,000 early labels with 60 KB ids (allowed by a raised id limit) once held 120 MB."""
    budget = 2 * MB
    eng = engine(ref, max_id_bytes=65536, max_early_label_bytes=budget)
    pad = "i" * 60_000

    def batch(k):
        return lambda: [orjson.dumps({"prediction_id": f"{k}-{i}-{pad}", "ts": T, "label": 1}) for i in range(50)]

    grown = retained(eng.ingest_labels, [batch(k) for k in range(40)])
    join = eng.outcomes.join
    assert join.early_bytes <= budget and len(join.early) >= 20
    assert join.counters["orphans"] == 2000 - len(join.early)  # the oldest left, counted
    assert grown < budget + MB, f"{grown / MB:.1f} MB retained for a {budget / MB:.0f} MB budget"
    assert eng.outcomes.stats("m")["labels"]["early_held_bytes"] == join.early_bytes


def test_held_offline_events_and_served_rows_are_bounded_in_bytes(ref):
    budget = 4 * MB
    eng = engine(ref, max_id_bytes=65536, max_parity_bytes=budget)
    wide = {f"extra_{j:04d}": "v" * 100 for j in range(1500)}  # ~170 KB of features each

    def offline(k):
        return lambda: [orjson.dumps({"prediction_id": f"o{k}-{i}", "ts": T, "features": wide}) for i in range(10)]

    grown = retained(eng.ingest_features, [offline(k) for k in range(20)])  # 200 events, ~34 MB of JSON
    par = eng.outcomes.parity
    assert 0 < par.held_bytes <= budget // 4 and par.counters["unjoined"] > 100
    assert grown < budget // 4 + MB, f"{grown / MB:.1f} MB retained for {budget / 4 / MB:.0f} MB"
    pad = "p" * 30_000
    eng.ingest_predictions([orjson.dumps({"prediction_id": "warm", "model": "m", "ts": T, "score": 0.5,
                                          "features": {"amount": 1.0, "country": "DE"}})])  # one-time state of the model

    def preds(k):
        return lambda: [orjson.dumps({"prediction_id": f"{k}-{i}-{pad}", "model": "m", "ts": T + k, "score": 0.5,
                                      "features": {"amount": 1.0, "country": "DE"}}) for i in range(100)]

    grown = retained(eng.ingest_predictions, [preds(k) for k in range(30)])  # 3,000 rows, ~90 MB of ids
    served = par.served["m"]
    assert served.nbytes <= budget * 3 // 4 and 0 < served.size < 300
    st = par.stats("m")
    assert st["retained_bytes"] == served.nbytes and st["held_bytes"] == par.held_bytes
    # the label store keeps every id too (it is bounded by count, labels.max_pending): not part of this budget
    assert grown - 3000 * (30_000 + 49) < budget * 3 // 4 + 2 * MB, f"{grown / MB:.1f} MB"
