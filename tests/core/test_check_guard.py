"""A check that raises at window close costs its own results for that window only: the window closes,
the other checks' alerts fire, the error is counted and logged, and the stream goes on."""

from __future__ import annotations

import logging

import pytest

from detector.core.checks import window as window_checks
from detector.core.engine import Engine
from detector.core.settings import DetectorSettings
from detector.core.state.codec import decode, encode
from tests.core.test_engine import run, stream, training


@pytest.fixture(scope="module")
def ref():
    return training()


def cents(h, e):
    if 40 <= h < 50:
        e["features"]["amount"] = round(e["features"]["amount"] * 100, 2)


def _boom(*args, **kwargs):
    raise ValueError("x must lie in [0, n]")


def test_a_raising_check_is_skipped_counted_and_logged_and_the_others_still_fire(ref, monkeypatch, caplog):
    clean = Engine(DetectorSettings(), default_reference=ref)
    expected = run(clean, stream(60, mutate=cents))
    assert [(a["kind"], a["feature"]) for a in expected if a["state"] == "firing"] == [("unit_shift", "amount")]

    monkeypatch.setattr(window_checks, "categorical_checks", _boom)
    eng = Engine(DetectorSettings(), default_reference=ref)
    with caplog.at_level(logging.DEBUG, logger="skewwatch.checks"):
        alerts = run(eng, stream(60, mutate=cents))
    # the numeric checks' alert fires and resolves as without the failing check, in the same windows
    assert [(a["state"], a["kind"], a["feature"], a["window"]["start"]) for a in alerts] == \
        [(a["state"], a["kind"], a["feature"], a["window"]["start"]) for a in expected]
    # every window closed; the categorical family failed once per window and per categorical feature
    assert eng.counters.windows_closed == clean.counters.windows_closed == 60
    assert eng.counters.check_errors == {"categorical": 60 * len(eng.models["fraud"].layout.categorical)}
    assert clean.counters.check_errors == {}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == eng.counters.check_errors["categorical"]
    r = errors[0]
    assert (r.check, r.model, r.error_type, r.error) == ("categorical", "fraud", "ValueError", "x must lie in [0, n]")
    assert r.window_start == "2026-11-25T00:00:00.000Z" and r.window_end == "2026-11-25T01:00:00.000Z"
    assert "categorical" in r.getMessage() and "ValueError" in r.getMessage()
    # the traceback goes to debug, once per error
    tracebacks = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(tracebacks) == len(errors) and tracebacks[0].exc_info[0] is ValueError
    # the status page shows it next to the windows closed; a clean engine's does not
    from detector.web.status import render_status

    assert "check errors" in render_status(eng, []) and "<code>categorical</code>" in render_status(eng, [])
    assert "<code>categorical</code>" not in render_status(clean, [])


def test_the_error_count_survives_a_snapshot(ref, monkeypatch):
    monkeypatch.setattr(window_checks, "rate_checks", _boom)
    eng = Engine(DetectorSettings(), default_reference=ref)
    run(eng, stream(3))
    assert eng.counters.check_errors == {"rates": 3}
    other = Engine(DetectorSettings(), default_reference=ref)
    other.restore(encode(decode(eng.snapshot())))
    assert other.counters.check_errors == {"rates": 3}


def test_an_evaluation_that_raises_outside_the_checks_still_closes_the_window(ref, monkeypatch):
    """The last line: whatever raises in a window's evaluation, that window is given up on (counted as
    ``window_close``) and the next windows are evaluated as usual."""
    import detector.core.engine as engine_mod

    real = engine_mod.close_window
    calls = []

    def flaky(ms, w, *args):
        calls.append(w.start)
        if len(calls) == 2:
            raise RuntimeError("selection broke")
        return real(ms, w, *args)

    monkeypatch.setattr(engine_mod, "close_window", flaky)
    eng = Engine(DetectorSettings(), default_reference=ref)
    alerts = run(eng, stream(60, mutate=cents))
    assert eng.counters.check_errors == {"window_close": 1}
    assert len(calls) == 60 and len(set(calls)) == 60  # no window was retried, none was skipped
    assert [(a["state"], a["kind"], a["feature"]) for a in alerts] == [("firing", "unit_shift", "amount"),
                                                                       ("resolved", "unit_shift", "amount")]


@pytest.mark.parametrize("broken", ["add_variants", "collapse"])
def test_a_broken_mix_correction_leaves_a_clean_view_behind(ref, monkeypatch, broken):
    """The slice-mix correction adds pseudo-rows to the window's view and folds them back: when either
    step raises, the window is evaluated on a fresh view without them (never on a half-built one)."""
    import detector.core.evaluate as evaluate

    real = getattr(evaluate, broken)

    def half_then_raise(*args):
        real(*args)  # the rows are added (or folded) before the error: the view is left inconsistent
        raise RuntimeError("mix correction broke")

    monkeypatch.setattr(evaluate, broken, half_then_raise)
    eng = Engine(DetectorSettings(), default_reference=ref)
    alerts = run(eng, stream(60, mutate=cents))
    assert [(a["state"], a["kind"], a["feature"]) for a in alerts] == [("firing", "unit_shift", "amount"),
                                                                       ("resolved", "unit_shift", "amount")]
    assert set(eng.counters.check_errors) == {"remix"} and eng.counters.check_errors["remix"] >= 1
