"""The right cause on the first page: an incident is paged under its most specific kind.

A fault that starts mid-window makes a mixed first hour (some values before, some after): a unit
change then has no clean scale ratio yet and a default value is not yet a large share, while the
distribution already moved. Generic drift waits a window, and is held while a specific check on
the same feature breaches, so the first page names the cause instead of "covariate drift".
"""

from __future__ import annotations

import pytest

from detector.core.engine import Engine
from detector.core.settings import DetectorSettings
from tests.core.test_engine import T0, run, stream, training

REF = training(8000)
ONSET = T0 + 44 * 3600 + 40 * 60  # 40 minutes into hour 44


def _first(mutate):
    alerts = [a for a in run(Engine(DetectorSettings(), default_reference=REF), stream(52, mutate=mutate))
              if a["state"] == "firing"]
    assert alerts, "nothing fired"
    return alerts


@pytest.mark.parametrize("fault, kind", [
    ("unit", "unit_shift"), ("default", "default_value_spike"), ("missing", "missing_values"),
])
def test_a_fault_starting_mid_window_is_first_paged_with_its_specific_kind(fault, kind):
    def mutate(h, e):
        if e["ts"] < ONSET:
            return
        if fault == "unit":
            e["features"]["amount"] = round(e["features"]["amount"] * 100, 2)
        elif fault == "default" and int(e["prediction_id"].rsplit("-", 1)[1]) % 2:
            e["features"]["amount"] = 0.0
        elif fault == "missing" and int(e["prediction_id"].rsplit("-", 1)[1]) % 2:
            e["features"]["amount"] = None

    alerts = _first(mutate)
    first = alerts[0]
    assert (first["kind"], first["feature"], first["cause"]) == (kind, "amount", "pipeline_skew"), alerts[:3]
    assert not [a for a in alerts if a["feature"] == "amount" and a["kind"] == "feature_drift"]
    assert first["window"]["start"] <= "2026-11-26T22:00"  # within two windows of the onset
