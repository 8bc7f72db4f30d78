"""A label that names no model is decoded before its prediction is known; when the sidecar watches models
of several tasks it is kept as a plain number. Joined to a binary model's prediction, a 1.9 (or an ETA of
12 minutes) used to be folded as 1.9 positives for one labelled prediction: cohort rows with more positives
than labels, and ``proportion_test`` raising ``x must lie in [0, n]`` at cohort evaluation (a label of 12
crashed the fold, and its whole batch was dead-lettered as an internal error). The join now rejects it."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from detector.core.engine import Engine
from detector.core.outcomes.cohort import C
from detector.core.outcomes.monitor import attach_outcomes
from detector.core.reference.profile import Reference
from detector.core.settings import DetectorSettings
from tests.core.test_engine import stream, training
from tests.scenarios.test_tasks_engine import reference_file

HOURS = 60


@pytest.fixture(scope="module")
def refs():
    return {"fraud": training(), "eta": Reference.load(reference_file("eta"))}


def labelled_run(refs, bad_values):
    """Fraud predictions, every one labelled 1 an hour later without naming the model; every 25th label is
    a value of ``bad_values`` instead (in turn)."""
    eng = Engine(DetectorSettings(), references=refs)
    attach_outcomes(eng)
    msgs = stream(HOURS, per_hour=200)
    labels, bad = [], 0
    for i, m in enumerate(msgs):
        e = orjson.loads(m)
        y = 1
        if i % 25 == 0:
            y, bad = bad_values[bad % len(bad_values)], bad + 1
        labels.append((e["ts"] + 3600, orjson.dumps({"prediction_id": e["prediction_id"], "ts": e["ts"] + 3600, "label": y})))
    errors = []
    for i in range(0, len(msgs), 400):
        errors += eng.ingest_predictions(msgs[i : i + 400])
        hi = orjson.loads(msgs[min(i + 399, len(msgs) - 1)])["ts"]
        errors += eng.ingest_labels([v for t, v in labels if t <= hi])
        labels = [(t, v) for t, v in labels if t > hi]
        eng.advance()
    errors += eng.ingest_labels([v for _, v in labels])
    eng.flush()
    return eng, errors, bad


@pytest.mark.parametrize("bad_values", [[1.9], [12.0, -1.0, 0.5]], ids=["just-above-1", "eta-minutes"])
def test_a_label_another_task_would_take_is_rejected_at_the_join(refs, bad_values):
    eng, errors, bad = labelled_run(refs, bad_values)
    assert errors == []  # decoded fine (a number is a regression label); nothing lost with it
    mon = eng.outcomes
    assert mon.join.counters["rejected"] == bad > 50
    assert mon.join.counters["matched"] == eng.counters.labels - bad
    m = mon.models["fraud"]
    assert len(m.done) >= 10, "cohorts were evaluated"
    for c in [*m.done.values(), *m.open.values()]:
        lab, pos, pred = c.cnt[:, C["lab"]], c.cnt[:, C["pos"]], c.cnt[:, C["pred"]]
        assert np.all((pos >= 0) & (pos <= lab) & (lab <= pred)), (c.start, lab[:4], pos[:4], pred[:4])
        assert np.all(pos == np.round(pos)), "positives are whole labels"
    assert eng.counters.check_errors == {}, "no check raised (x must lie in [0, n])"
    assert eng.outcomes.stats("fraud")["labels"]["rejected"] == bad


def test_the_task_of_the_prediction_decides(refs):
    eng = Engine(DetectorSettings(), references=refs)
    mon = attach_outcomes(eng)
    eng.ingest_predictions(stream(1, per_hour=60))
    fits = mon._label_fits  # noqa: SLF001 - the join's predicate itself
    fraud = mon.models["fraud"].idx
    y = np.array([0.0, 1.0, 1.9, -1.0, 12.0, np.nan, np.inf])
    assert fits(np.full(y.size, fraud), y).tolist() == [True, True, False, False, False, False, False]
    assert not fits(np.array([99]), np.array([1.0])).any()  # no such model
