"""Numbers in the training file, strings on the wire: reconciled, not paged as a schema change."""

from __future__ import annotations

import numpy as np
import orjson

from detector.core.engine import Engine
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings
from detector.core.state.codec import decode, encode
from detector.core.state.partials import Partial
from tests.core.test_engine import T0, run

VERSIONS = [7.1, 7.2, 3.9, 3.1]  # 3.1 is "3.10" in the producer's spelling
WIRE = {7.1: "7.1", 7.2: "7.2", 3.9: "3.9", 3.1: "3.10"}


def reference(n=8000, seed=0):
    rng = np.random.default_rng(seed)
    return build_reference({"version": rng.choice(VERSIONS, n), "items": rng.poisson(2, n).astype(float),
                            "amount": rng.lognormal(3, 1, n).round(2),
                            "region": np.array(rng.choice(["eu", "us"], n), dtype=object)}, slice_columns=["region"])


def events(hours, seed=1, mutate=None, per_hour=300):
    rng = np.random.default_rng(seed)
    out = []
    for h in range(hours):
        for i in range(per_hour):
            v = float(rng.choice(VERSIONS))
            e = {"prediction_id": f"{h}-{i}", "model": "m", "ts": T0 + h * 3600 + i * 3600 / per_hour,
                 "features": {"version": WIRE[v], "items": int(rng.poisson(2)), "amount": float(rng.lognormal(3, 1))},
                 "slices": {"region": str(rng.choice(["eu", "us"]))}}
            if mutate:
                mutate(h, e)
            out.append(orjson.dumps(e))
    return out


def test_codes_served_as_strings_are_compared_as_categories_from_the_first_hour():
    ref = reference()
    assert set(ref.codes) == {"version", "items"}
    eng = Engine(DetectorSettings(), default_reference=ref)

    def new_version(h, e):
        if h >= 30 and e["features"]["version"] == "7.2":
            e["features"]["version"] = "8.0"  # a release the training data never saw

    alerts = [a for a in run(eng, events(40, mutate=new_version)) if a["state"] == "firing"]
    assert eng.models["m"].codes == {"version": {"3.1": "3.10", "3.9": "3.9", "7.1": "7.1", "7.2": "7.2"}}
    assert [a["kind"] for a in alerts] == ["unseen_categories"]  # no schema page, no drift on "3.10"
    a = alerts[0]
    assert a["feature"] == "version" and a["window"]["start"].startswith("2026-11-26T06")
    assert a["evidence"]["reconciled"].startswith("numeric in the training data, served as strings")
    assert "8.0" in a["summary"]


def test_a_feature_that_changes_from_numbers_to_strings_is_still_a_schema_change():
    eng = Engine(DetectorSettings(), default_reference=reference())

    def as_numbers(h, e):
        e["features"]["version"] = float(e["features"]["version"])
        if h >= 20:
            e["features"]["items"] = str(e["features"]["items"])  # the producer's encoding changed

    alerts = [a for a in run(eng, events(24, mutate=as_numbers)) if a["state"] == "firing"]
    assert eng.models["m"].codes == {}
    assert [(a["kind"], a["feature"]) for a in alerts] == [("schema", "items")]


def test_the_decision_travels_with_window_partials():
    ref = reference()
    worker = Engine(DetectorSettings(), default_reference=ref)
    worker.ingest_predictions(events(3))
    parts = worker.advance_partials(T0 + 3 * 3600)
    agg = Engine(DetectorSettings(), default_reference=ref)
    for p in parts:
        agg.ingest_partial(Partial.from_state(decode(encode(p.to_state()))), "w1")
    assert agg.models["m"].codes == worker.models["m"].codes and "version" in agg.models["m"].layout.categorical
