"""A check that raises in the real worker (``skewwatch run`` on the embedded broker): windows keep closing,
the other checks' alerts reach the alert topic, the error is counted on /metrics and logged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.stream.sidecar_proc import metric
from tests.stream.test_worker import (  # noqa: F401 - reference_path and workers are fixtures
    ONSET,
    RATE,
    WorkerProc,
    free_port,
    http_get,
    read_alerts,
    reference_path,
    run,
    topic_names,
    unique,
    wait_until,
    workers,
    write_config,
)

pytestmark = pytest.mark.kafka

#: loaded by the worker's interpreter at startup (``sitecustomize``): the categorical checks raise, as a
#: bug in one check would, in every window
BROKEN_CHECK = '''
import detector.core.checks.window as _w

def _broken(*args, **kwargs):
    raise ValueError("x must lie in [0, n] (a deliberately broken check)")

_w.categorical_checks = _broken
'''


def test_a_raising_check_costs_its_own_results_only(kafka_bootstrap: str, reference_path: Path,  # noqa: F811
                                                     tmp_path: Path, workers: Callable[..., WorkerProc],  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from detector.cli.simulate import produce_scenario

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BROKEN_CHECK)
    monkeypatch.setenv("PYTHONPATH", str(hook))  # the worker's PYTHONPATH is the repository, then this
    topics, group, port = topic_names("guard"), unique("guard"), free_port()
    cfg = write_config(tmp_path / "cfg.yaml", kafka_bootstrap, reference_path, group, topics, port, log_format="json")
    w = workers(cfg, "guard-1", port)
    sent = run(produce_scenario(kafka_bootstrap, "unit_change", rate_per_hour=RATE, speedup=40_000.0, hours=44.0,
                                topics={k: topics[k] for k in ("predictions", "labels", "features")}), timeout=90)
    print(f"\nproduced {sent} messages; worker ready {w.wait_ready():.1f}s after launch")

    def unit_alert() -> dict[str, Any] | None:
        return next((a for a in read_alerts(kafka_bootstrap, topics["alerts"])
                     if a["kind"] == "unit_shift" and a["state"] == "firing"), None)

    # the numeric checks' alert fires in the window it fires in without the broken check
    alert = wait_until("a firing unit_shift alert despite the broken check", unit_alert, timeout=120, interval=1.0,
                       on_timeout=w.log_tail)
    assert alert["feature"] == "amount" and alert["window"]["start"] == ONSET

    def scraped() -> str:
        code, body = http_get(f"{w.url}/metrics")
        assert code == 200
        return body.decode()

    text = scraped()
    closed = metric(text, "skewwatch_windows_closed_total")
    errors = metric(text, "skewwatch_check_errors_total", 'check="categorical"')
    assert closed is not None and closed >= 40, closed  # every window of the scenario up to the fault closed
    assert errors is not None and errors >= closed, (errors, closed)  # once per window and categorical feature
    assert metric(text, "skewwatch_check_errors_total", 'check="numeric"') == 0.0
    assert metric(text, "skewwatch_check_errors_total", 'check="window_close"') == 0.0
    # the worker's JSON log names the check, the model, the window and the exception
    logged = []
    for line in w.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"check"' in line:
            rec = json.loads(line)
            if rec.get("logger") == "skewwatch.checks" and rec.get("level") == "error":
                logged.append(rec)
    assert logged, w.log_tail()
    rec = logged[0]
    assert rec["check"] == "categorical" and rec["model"] == "fraud" and rec["error_type"] == "ValueError"
    assert "x must lie in [0, n]" in rec["error"] and rec["window_start"] < rec["window_end"]
    assert "tick failed" not in w.log_path.read_text(errors="replace")  # nothing escaped to the worker's timer
