"""``skewwatch run`` as a real subprocess, for tests that check what an orchestrator would see.

Only the process' exit code, its log and its HTTP endpoints are used; nothing is imported from
the running worker. Every process is stopped (SIGTERM, then SIGKILL to its group) at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


def http(url: str, method: str = "GET", timeout: float = 3.0) -> tuple[int, bytes, str]:
    """``(status, body, content type)``; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - localhost only
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def metric(text: str, name: str, labels: str = "") -> float | None:
    """The value of one sample of a Prometheus text exposition (None when absent)."""
    want = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == want:
            return float(value)
    return None


def wait_until(what: str, cond: Callable[[], T], timeout: float, on_timeout: Callable[[], str] = lambda: "",
               interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last!r})\n{on_timeout()}")
        time.sleep(interval)


class SidecarProc:
    """``python -m detector run --config CFG [args]`` with its output in ``log_path``."""

    def __init__(self, config: Path, port: int, log_path: Path, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.config, self.port, self.log_path, self.args = config, port, log_path, args
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SidecarProc:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKEWWATCH_") or k == "SKEWWATCH_TANSU_BIN"}
        env.update({"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PYTHONUNBUFFERED": "1",
                    **self.env})
        self.proc = subprocess.Popen([sys.executable, "-m", "detector", "run", "--config", str(self.config), *self.args],
                                     cwd=self.log_path.parent, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 40) -> str:
        return f"--- log {self.log_path} ---\n" + "\n".join(self.log().splitlines()[-n:])

    def get(self, path: str, method: str = "GET") -> tuple[int, bytes, str]:
        return http(self.url + path, method)

    def json(self, path: str) -> dict[str, Any]:
        code, body, _ = self.get(path)
        return {"_status": code, **json.loads(body)}

    def metrics(self) -> str:
        code, body, _ = self.get("/metrics")
        if code != 200:
            raise ValueError(f"/metrics answered {code}")
        return body.decode()

    def wait_http(self, timeout: float = 60.0) -> None:
        def up() -> bool:
            if not self.alive:
                pytest.fail(f"skewwatch run exited with {self.proc.returncode if self.proc else None}\n{self.tail()}")
            return self.get("/healthz")[0] == 200

        wait_until("/healthz to answer", up, timeout, self.tail)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def sidecars(tmp_path: Path):
    """Factory ``spawn(config, port, *args, env=None)``; all are stopped at teardown."""
    started: list[SidecarProc] = []

    def spawn(config: Path, port: int, *args: str, env: dict[str, str] | None = None) -> SidecarProc:
        p = SidecarProc(config, port, tmp_path / f"sidecar-{len(started)}.log", args, env)
        started.append(p)
        return p.start()

    yield spawn
    for p in started:
        p.stop()
