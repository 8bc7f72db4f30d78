"""A TLS- and SASL-terminating front for the embedded broker, for tests of secured clients.

The embedded broker (Tansu) speaks neither TLS nor SASL: its ``--cert``/``--key`` options do not
make the listener speak TLS, and its SCRAM users are not kept in memory storage. This front
stands where a secured Kafka listener would:

* **TLS** (optional): a real handshake with a server certificate from :mod:`tests.stream.pki`,
  and, with ``client_ca``, mutual TLS (a client without a certificate signed by that CA is
  refused); the subject of every client certificate seen is recorded.
* **SASL** (optional): the broker side of ``SaslHandshake`` (v0/v1) and ``SaslAuthenticate`` (v0/v1)
  for ``PLAIN`` and ``SCRAM-SHA-256/512`` (RFC 5802 / 7677: salted password, proofs checked,
  server signature sent), answering a wrong password with error 58 (SASL_AUTHENTICATION_FAILED)
  as Kafka does. Any other request before authentication closes the connection, except
  ``ApiVersions``, which Kafka also answers first.

After that every byte is piped to the broker and back. The broker must advertise the front's
address (``EmbeddedBroker(advertised=...)``) so clients come back through it after bootstrapping.
It runs on its own event loop in a thread, so tests and worker subprocesses can both use it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import ssl
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS = 17, 36, 18
SASL_AUTHENTICATION_FAILED = 58
UNSUPPORTED_SASL_MECHANISM = 33
_HASH = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


@dataclass
class Seen:
    """What the front observed, for assertions."""

    tls_clients: list[str | None] = field(default_factory=list)  # client cert CN per TLS connection (None: none)
    tls_failures: list[str] = field(default_factory=list)
    handshakes: list[str] = field(default_factory=list)  # SASL mechanisms requested
    logins: list[tuple[str, str, bool]] = field(default_factory=list)  # (mechanism, user, accepted)
    refused_before_auth: list[int] = field(default_factory=list)  # api keys sent before authenticating


class KafkaFront:
    """``KafkaFront(upstream_port, ...).start()``; ``.port``; ``.stop()``."""

    def __init__(self, upstream: tuple[str, int], *, port: int, host: str = "127.0.0.1",
                 server_cert: Path | None = None, server_key: Path | None = None, client_ca: Path | None = None,
                 users: dict[str, str] | None = None, mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
                 ) -> None:
        self.upstream, self.host, self.port = upstream, host, port
        self.users = users
        self.mechanisms = mechanisms
        self.seen = Seen()
        self._ssl: ssl.SSLContext | None = None
        if server_cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(server_cert, server_key)
            if client_ca is not None:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(client_ca)
            self._ssl = ctx
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kafka-front", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> KafkaFront:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, self.host, self.port, ssl=self._ssl, reuse_address=True), self._loop)
        self._server = fut.result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for t in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                t.cancel()

        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> KafkaFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ one client connection
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._ssl is not None:
            peer = writer.get_extra_info("peercert")
            cn = None
            if peer:
                cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), None)
            self.seen.tls_clients.append(cn)
        up_reader = up_writer = None
        pipes: list[asyncio.Task[None]] = []
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            pipes.append(asyncio.ensure_future(_pipe(up_reader, writer)))
            authed = self.users is None
            scram: _Scram | None = None
            mechanism = None
            while not authed:
                frame = await _read_frame(reader)
                api_key, version, corr = struct.unpack(">hhi", frame[:8])
                body = _skip_client_id(frame)
                if api_key == API_VERSIONS:
                    up_writer.write(struct.pack(">i", len(frame)) + frame)
                    await up_writer.drain()
                elif api_key == SASL_HANDSHAKE and version <= 1:
                    (n,) = struct.unpack(">h", body[:2])
                    mechanism = body[2 : 2 + n].decode()
                    self.seen.handshakes.append(mechanism)
                    ok = mechanism in self.mechanisms
                    mechs = b"".join(struct.pack(">h", len(m)) + m.encode() for m in self.mechanisms)
                    resp = struct.pack(">ih", corr, 0 if ok else UNSUPPORTED_SASL_MECHANISM)
                    _send(writer, resp + struct.pack(">i", len(self.mechanisms)) + mechs)
                    if not ok:
                        return
                elif api_key == SASL_AUTHENTICATE and version <= 1 and mechanism is not None:
                    (n,) = struct.unpack(">i", body[:4])
                    token = body[4 : 4 + n]
                    if mechanism == "PLAIN":
                        _, user, password = token.decode().split("\0")
                        ok = self.users.get(user) == password
                        self.seen.logins.append((mechanism, user, ok))
                        reply, authed = b"", ok
                    else:
                        if scram is None:
                            scram = _Scram(mechanism, self.users)
                            reply, ok = scram.first(token), True
                        else:
                            reply, ok = scram.final(token)
                            self.seen.logins.append((mechanism, scram.user or "", ok))
                            authed = ok
                    _send(writer, _auth_response(corr, version, reply, ok, mechanism))
                    if not ok:
                        return
                else:  # Kafka closes a connection that skips authentication
                    self.seen.refused_before_auth.append(api_key)
                    return
                await writer.drain()
            await _pipe(reader, up_writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError) as exc:
            self.seen.tls_failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            for t in pipes:
                t.cancel()
            for w in (writer, up_writer):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


def _skip_client_id(frame: bytes) -> bytes:
    (n,) = struct.unpack(">h", frame[8:10])
    return frame[10 + max(n, 0) :]


def _send(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(struct.pack(">i", len(payload)) + payload)


def _auth_response(corr: int, version: int, reply: bytes, ok: bool, mechanism: str) -> bytes:
    msg = b"" if ok else f"Authentication failed: invalid credentials with SASL mechanism {mechanism}".encode()
    out = struct.pack(">ih", corr, 0 if ok else SASL_AUTHENTICATION_FAILED)
    out += struct.pack(">h", len(msg)) + msg if msg else struct.pack(">h", -1)
    out += struct.pack(">i", len(reply)) + reply
    if version >= 1:
        out += struct.pack(">q", 0)  # session_lifetime_ms
    return out


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    with contextlib.suppress(Exception):
        dst.close()


class _Scram:
    """The server side of one SCRAM exchange (RFC 5802), with a fresh salt per exchange."""

    def __init__(self, mechanism: str, users: dict[str, str]) -> None:
        self.hash = _HASH[mechanism]
        self.users = users
        self.user: str | None = None
        self.iterations = 4096

    def first(self, token: bytes) -> bytes:
        msg = token.decode()
        assert msg.startswith("n,"), msg  # no channel binding
        self.client_first_bare = msg.split(",", 2)[2]
        attrs = dict(kv.split("=", 1) for kv in self.client_first_bare.split(","))
        self.user = attrs["n"].replace("=2C", ",").replace("=3D", "=")
        self.nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
        self.salt = os.urandom(16)
        self.server_first = f"r={self.nonce},s={base64.b64encode(self.salt).decode()},i={self.iterations}"
        return self.server_first.encode()

    def final(self, token: bytes) -> tuple[bytes, bool]:
        msg = token.decode()
        without_proof, _, proof_b64 = msg.rpartition(",p=")
        attrs = dict(kv.split("=", 1) for kv in without_proof.split(","))
        password = self.users.get(self.user or "")
        if password is None or attrs.get("r") != self.nonce:
            return b"", False
        salted = hashlib.pbkdf2_hmac(self.hash, password.encode(), self.salt, self.iterations)
        client_key = hmac.new(salted, b"Client Key", self.hash).digest()
        stored_key = hashlib.new(self.hash, client_key).digest()
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, self.hash).digest()
        proof = base64.b64decode(proof_b64)
        recovered = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self.hash, recovered).digest(), stored_key):
            return b"", False
        server_key = hmac.new(salted, b"Server Key", self.hash).digest()
        verifier = base64.b64encode(hmac.new(server_key, auth_message, self.hash).digest()).decode()
        return f"v={verifier}".encode(), True
