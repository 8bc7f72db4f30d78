"""``skewwatch demo`` as users run it: the embedded broker, the Faust worker and its HTTP server, with the
fraud model and the regression (``eta``) and multiclass (``intent``) models sharing the topics.

While it runs, the worker's own server shows all three models: the status page has a section per model
and the metrics carry each task model's estimates (in the target's units for ``eta``, as shares for
``intent``). At the end the demo prints its scorecard. What is caught when is tested on the same traffic
through the worker protocol in ``tests/scenarios/test_demo_models.py`` (a busy machine slows the worker,
and the demo then holds its simulator back, so how far a bounded run gets depends on the machine).

The run is bounded at 90 s: the worker serves the three models' estimates and sections within seconds of
joining its group, and everything asserted here is there long before; a longer run only plays more of the
fault timeline, whose detection ``test_demo_models.py`` checks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from detector.kafka.broker import free_port


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


@pytest.mark.timeout(900)
def test_the_demo_serves_three_models_of_three_tasks_and_ends_with_a_scorecard(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKEWWATCH_")}
    proc = subprocess.Popen([sys.executable, "-m", "detector", "demo", "--duration", "90", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
    seen: dict[str, bool] = {}
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline and not all(seen.get(k) for k in ("eta", "intent", "status")):
            time.sleep(1)
            metrics = _get(f"http://127.0.0.1:{port}/metrics")
            seen["eta"] = seen.get("eta") or bool(re.search(r'skewwatch_estimated_error\{metric="mae",model="eta",slice="all"\} \d', metrics))
            seen["intent"] = seen.get("intent") or bool(re.search(
                r'skewwatch_estimated_performance_ratio\{metric="accuracy",model="intent",slice="all"\} 0\.\d', metrics))
            status = _get(f"http://127.0.0.1:{port}/status")
            seen["status"] = seen.get("status") or all(f'id="model-{m}"' in status for m in ("fraud", "eta", "intent"))
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out[-3000:]
    assert seen == {"eta": True, "intent": True, "status": True}, (seen, out[-3000:])
    assert "models      fraud (binary), eta (regression), intent (multiclass)" in out
    assert re.search(r"eta\s+concept_change\s+expect concept_drift", out) and re.search(r"intent\s+concept_change", out)
    done = re.search(r"done: ([0-9,]+) messages simulated", out)
    assert done and int(done.group(1).replace(",", "")) > 1000, out[-3000:]
    assert "scorecard" in out, out[-3000:]
