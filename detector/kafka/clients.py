"""Kafka client settings: one builder for every Kafka client skewwatch creates.

The Faust consumer and producer, the admin client that checks and creates topics, the checkpoint
and alert readers, ``simulate``, ``demo`` and ``bench --kafka`` all take their connection and
security settings from :func:`client_settings` (or :func:`plaintext` for the embedded broker), so
a secured cluster works for all of them or fails the same way for all of them.

Security (``kafka.security`` in the config):

* ``protocol``: ``PLAINTEXT``, ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
* TLS: the brokers' certificates are always verified, against ``ssl_cafile`` or the system trust
  store; ``ssl_check_hostname`` (default true) also checks that the certificate names the host
  dialled. A client certificate (``ssl_certfile``, ``ssl_keyfile``, ``ssl_key_password*``) is
  presented for mutual TLS. TLS 1.2 is the minimum.
* SASL: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512`` with ``sasl_username`` and a password
  given inline, from a file (``sasl_password_file``) or from an environment variable
  (``sasl_password_env``).

Secrets are read here, when the clients are built, and are never logged: ``repr`` and
:meth:`ClientSettings.describe` show only what is safe. Every problem with a file or a secret is
a :class:`~detector.config.ConfigError` naming the setting and the fix.
"""

from __future__ import annotations

import contextvars
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.config import ConfigError, Kafka, Security

__all__ = ["ClientSettings", "client_settings", "plaintext", "build_ssl_context", "refuse_auto_create"]

log = logging.getLogger("skewwatch.kafka")


@dataclass(frozen=True, repr=False)
class ClientSettings:
    """Everything a Kafka client needs to reach the cluster; secrets stay out of ``repr``."""

    bootstrap: tuple[str, ...]
    client_id: str = "skewwatch"
    security_protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    source: dict[str, Any] = field(default_factory=dict, compare=False)  # safe facts for logs

    @property
    def bootstrap_servers(self) -> str:
        """``host:port,host:port`` (no ``kafka://`` scheme)."""
        return ",".join(self.bootstrap)

    def aiokafka(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer``/``AIOKafkaAdminClient``."""
        kw: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers, "client_id": self.client_id,
                              "security_protocol": self.security_protocol}
        if self.ssl_context is not None:
            kw["ssl_context"] = self.ssl_context
        if self.sasl_mechanism is not None:
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self.sasl_password)
        kw.update(extra)
        return kw

    def faust_brokers(self) -> list[str]:
        return [f"kafka://{b}" for b in self.bootstrap]

    def faust_credentials(self) -> Any:
        """``broker_credentials`` for ``faust.App`` (None for PLAINTEXT)."""
        import faust

        if self.sasl_mechanism is not None:
            return faust.SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                                         ssl_context=self.ssl_context, mechanism=self.sasl_mechanism)
        if self.ssl_context is not None:
            return faust.SSLCredentials(self.ssl_context)
        return None

    def describe(self) -> dict[str, Any]:
        """What the clients use, for logs and the status page: never a secret."""
        d: dict[str, Any] = {"bootstrap": list(self.bootstrap), "client_id": self.client_id,
                             "security_protocol": self.security_protocol}
        if self.sasl_mechanism is not None:
            d.update(sasl_mechanism=self.sasl_mechanism, sasl_username=self.sasl_username)
        if self.ssl_context is not None:
            d.update(ssl_check_hostname=self.ssl_context.check_hostname)
        d.update(self.source)
        return d

    def __repr__(self) -> str:
        return f"ClientSettings({', '.join(f'{k}={v!r}' for k, v in self.describe().items())})"


def plaintext(bootstrap: str, client_id: str = "skewwatch") -> ClientSettings:
    """Settings for an unsecured cluster such as the embedded broker (``"host:port[,host:port]"``)."""
    return ClientSettings(_split(bootstrap), client_id=client_id)


def client_settings(kafka: Kafka, environ: dict[str, str] | None = None) -> ClientSettings:
    """Build the settings every client uses from ``kafka`` (the config's ``kafka`` section).

    Reads the secrets (files, environment variables) and loads the CA bundle and client
    certificate now, so that a wrong path or password fails at start with the setting named.
    """
    env = os.environ if environ is None else environ
    sec = kafka.security
    ctx = build_ssl_context(sec, env) if sec.protocol.endswith("SSL") else None
    password = _secret(sec, "sasl_password", env) if sec.sasl_mechanism is not None else None
    source: dict[str, Any] = {}
    if ctx is not None:
        source.update(ssl_cafile=sec.ssl_cafile or "(system trust store)", ssl_client_certificate=sec.ssl_certfile)
    s = ClientSettings(tuple(kafka.brokers), client_id=kafka.client_id, security_protocol=sec.protocol,
                       ssl_context=ctx, sasl_mechanism=sec.sasl_mechanism, sasl_username=sec.sasl_username,
                       sasl_password=password, source=source)
    if sec.protocol == "SASL_PLAINTEXT" and sec.sasl_mechanism == "PLAIN":
        log.warning("SASL PLAIN over SASL_PLAINTEXT sends the password in clear text: use protocol SASL_SSL")
    if ctx is not None and not ctx.check_hostname:
        log.warning("kafka.security.ssl_check_hostname is false: any certificate signed by the CA is accepted "
                    "for any broker; use it only while fixing the brokers' certificate names")
    return s


def build_ssl_context(sec: Security, environ: dict[str, str] | None = None) -> ssl.SSLContext:
    """A client TLS context: verification always on, hostname check as configured, client cert if any."""
    env = os.environ if environ is None else environ
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_readable(sec.ssl_cafile, "ssl_cafile"))
    except ssl.SSLError as exc:
        raise ConfigError(f"kafka.security.ssl_cafile: {sec.ssl_cafile} is not a PEM CA bundle ({exc.reason or exc}); "
                          "point it at the CA certificate(s) that signed the brokers' certificates") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = sec.ssl_check_hostname
    if sec.ssl_certfile is not None:
        certfile = _readable(sec.ssl_certfile, "ssl_certfile")
        keyfile = _readable(sec.ssl_keyfile, "ssl_keyfile")
        key_password = _secret(sec, "ssl_key_password", env)
        try:  # no password set: a callable answering "" (else OpenSSL would prompt on the terminal and hang)
            ctx.load_cert_chain(certfile, keyfile, password=key_password if key_password is not None else _no_password)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"kafka.security.ssl_certfile/ssl_keyfile: cannot load the client certificate and key "
                f"({exc.reason or exc}); check that both are PEM, belong together and, for an encrypted key, "
                "that ssl_key_password is right") from exc
    return ctx


# -------------------------------------------------------------------------------------------- helpers


def _no_password() -> bytes:
    return b""


def _split(bootstrap: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().split("://", 1)[-1] for h in bootstrap.split(",") if h.strip())
    if not hosts:
        raise ConfigError("no Kafka bootstrap servers given: use HOST:PORT[,HOST:PORT]")
    return hosts


def _readable(path: str | None, name: str) -> str | None:
    if path is None:
        return None
    p = Path(path)
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"kafka.security.{name}: cannot read {path} ({exc.strerror or exc}); "
                          "mount the file there or fix the path") from exc
    return str(p)


def _secret(sec: Security, name: str, environ: Any) -> str | None:
    """The secret ``name`` from ``name`` (inline), ``name_file`` or ``name_env``; None when none is set."""
    inline = getattr(sec, name)
    if inline is not None:
        return str(inline.get_secret_value())
    path = getattr(sec, f"{name}_file")
    if path is not None:
        try:
            value = Path(path).read_text().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"kafka.security.{name}_file: cannot read {path} ({getattr(exc, 'strerror', None) or exc}); "
                              "mount the secret there or fix the path") from exc
        if not value:
            raise ConfigError(f"kafka.security.{name}_file: {path} is empty")
        return value
    var = getattr(sec, f"{name}_env")
    if var is not None:
        value = environ.get(var)
        if not value:
            raise ConfigError(f"kafka.security.{name}_env: environment variable {var} is not set or empty; "
                              "set it (e.g. from a Secret with valueFrom.secretKeyRef)")
        return str(value)
    return None


_REFUSING: set[str] = set()  # client ids whose Metadata requests ask for no topic to be created
_REFUSE: contextvars.ContextVar[bool] = contextvars.ContextVar("skewwatch_refuse_auto_create", default=False)


def refuse_auto_create(client_id: str) -> None:
    """Make the aiokafka clients with this ``client.id`` ask the brokers never to create a topic they look up.

    aiokafka sends its Metadata requests with ``allow_auto_topic_creation`` true and has no setting for
    it: a broker with auto-creation on (Kafka's default; the embedded broker always) then creates any
    topic a client merely looks up, with the broker's default partition count and configs. After a broker
    lost its data, the worker's consumer and producer re-created their topics that way within
    milliseconds of its return - input topics with another partition count (no longer co-partitioned), a
    state topic that is not compacted - before anyone could create them properly. skewwatch creates its
    topics itself, with their partitions and configs (:mod:`detector.kafka.topics`). Other clients of
    the process (another ``client.id``) are left as they are. Idempotent.
    """
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol import metadata

    _REFUSING.add(client_id)
    if getattr(AIOKafkaClient._metadata_update, "_skewwatch", False):  # noqa: SLF001
        return
    update, build = AIOKafkaClient._metadata_update, metadata.MetadataRequest.__init__  # noqa: SLF001

    async def _metadata_update(self: Any, cluster_metadata: Any, topics: Any) -> Any:
        token = _REFUSE.set(self._client_id in _REFUSING)  # noqa: SLF001
        try:
            return await update(self, cluster_metadata, topics)
        finally:
            _REFUSE.reset(token)

    def __init__(self: Any, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = None) -> None:
        if allow_auto_topic_creation is None and _REFUSE.get():
            allow_auto_topic_creation = False
        build(self, topics, allow_auto_topic_creation)

    _metadata_update._skewwatch = True  # type: ignore[attr-defined]
    AIOKafkaClient._metadata_update = _metadata_update  # type: ignore[method-assign] # noqa: SLF001
    metadata.MetadataRequest.__init__ = __init__  # type: ignore[method-assign]
