"""Baselines that never starve: an open incident freezes only its own series.

A fault that is there from the first hour (a unit change the team has not fixed) keeps its own
feature's history as it was, but the other features, the score and the policy / serving rates
go on learning: a threshold change days later still fires in its first window.
"""

from __future__ import annotations

import numpy as np

from detector.core.engine import Engine
from detector.core.inputs.window import RATE
from detector.core.settings import DetectorSettings
from tests.core.test_engine import run, stream, training

REF = training(8000)


def test_an_incident_from_day_one_does_not_starve_the_policy_and_other_baselines():
    def fault(h, e):
        e["features"]["amount"] = round(e["features"]["amount"] * 100, 2)  # cents from the start, never fixed
        if h >= 60:
            e["threshold"] = 0.3  # a deliberate policy change on day three

    eng = Engine(DetectorSettings(), default_reference=REF)
    alerts = [a for a in run(eng, stream(66, mutate=fault)) if a["state"] == "firing"]
    unit = [a for a in alerts if a["kind"] == "unit_shift"]
    assert unit and unit[0]["feature"] == "amount"
    thr = [a for a in alerts if a["kind"] == "decision_rate" and a["statistic"] == "threshold"]
    assert thr, [a["kind"] for a in alerts]
    assert thr[0]["window"]["start"].startswith("2026-11-27T12:00")  # hour 60: the first window
    sb = eng.models["fraud"].seasonal
    lay = eng.models["fraud"].layout
    j = lay.numeric.index("amount")
    amount_cols = sb.blocks[j]
    # the unit change never became "normal" for amount; n_tx and the rates did learn
    assert sb.num[:, 0, amount_cols].sum() == 0
    assert sb.num[:, 0, sb.blocks[lay.numeric.index("n_tx")]].sum() > 0
    assert sb.rates[:, 0, RATE["decided"]].sum() > 0 and np.all(sb.days > 1.5)
