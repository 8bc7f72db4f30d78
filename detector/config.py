"""The skewwatch configuration file (YAML), validated with pydantic at the edge.

Unknown keys are rejected with the field path and the closest valid name, and every setting can be
overridden from the environment: ``SKEWWATCH_DETECTOR__WINDOW=5m`` sets ``detector.window``
(``__`` separates nesting levels). Only variables that name a setting are read: anything else
with the prefix (Kubernetes service links such as ``SKEWWATCH_PORT=tcp://…`` and
``SKEWWATCH_SERVICE_HOST`` for a Service named ``skewwatch``, a typo) is ignored with one warning
that names them, and the prefix's own non-setting variables (``SKEWWATCH_TANSU_BIN``,
``SKEWWATCH_TEST_*``) are ignored silently. Errors raise :class:`ConfigError` whose message names
the field (or the environment variable) and the fix; the CLI turns it into exit code 2.

Secrets (SASL password, TLS key password) are ``SecretStr``: never in ``repr``, logs or
``check-config`` output. Give them inline, from a file (``…_file``, e.g. a mounted Kubernetes
Secret) or from a named environment variable (``…_env``); they are read when the Kafka clients
are built (:mod:`detector.kafka.clients`).
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, PrivateAttr, SecretStr, ValidationError, model_validator

from detector.core.reference.profile import Reference, ReferenceError
from detector.core.settings import DetectorSettings, Duration, Strict

__all__ = ["Config", "ConfigError", "ModelConfig", "load_config", "load_references"]

ENV_PREFIX = "SKEWWATCH_"
#: Variables with our prefix that are not settings (read elsewhere, or by the tests): never warned about.
ENV_NOT_SETTINGS = ("SKEWWATCH_TANSU_BIN",)
ENV_NOT_SETTINGS_PREFIXES = ("SKEWWATCH_TEST_",)

log = logging.getLogger("skewwatch.config")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field and the fix."""


class ModelConfig(Strict):
    reference: str = Field(description="path of the reference profile built by `skewwatch baseline`")
    cost_fp: float | None = Field(None, ge=0, description="cost of a false positive (for expected cost)")
    cost_fn: float | None = Field(None, ge=0, description="cost of a false negative")
    review_capacity: int | None = Field(None, ge=0, description="actions the team can handle per window")


class Security(Strict):
    """How every Kafka client of the process authenticates (see :mod:`detector.kafka.clients`)."""

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(None, description="inline; prefer sasl_password_file or _env")
    sasl_password_file: str | None = Field(None, description="file holding the password (e.g. a mounted Secret)")
    sasl_password_env: str | None = Field(None, description="name of an environment variable holding the password")
    ssl_cafile: str | None = Field(None, description="CA bundle (PEM) that signed the brokers' certificates; "
                                                     "default: the system trust store")
    ssl_certfile: str | None = Field(None, description="client certificate (PEM) for mutual TLS")
    ssl_keyfile: str | None = Field(None, description="client private key (PEM), if not in ssl_certfile")
    ssl_key_password: SecretStr | None = None
    ssl_key_password_file: str | None = None
    ssl_key_password_env: str | None = None
    ssl_check_hostname: bool = Field(True, description="verify that the broker certificate names the host dialled")

    @model_validator(mode="after")
    def _consistent(self) -> Security:
        sasl = self.protocol.startswith("SASL_")
        tls = self.protocol.endswith("SSL")
        sasl_set = [k for k in ("sasl_mechanism", "sasl_username", "sasl_password", "sasl_password_file",
                                "sasl_password_env") if getattr(self, k) is not None]
        if not sasl and sasl_set:
            raise ValueError(f"{', '.join(sasl_set)} set but protocol is {self.protocol}: use protocol SASL_SSL "
                             "(or SASL_PLAINTEXT), or remove the sasl_* settings")
        if sasl:
            missing = [k for k in ("sasl_mechanism", "sasl_username") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"protocol {self.protocol} needs {' and '.join(missing)}")
        _one_source(self, "sasl_password", required=sasl)
        ssl_set = [k for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password",
                               "ssl_key_password_file", "ssl_key_password_env") if getattr(self, k) is not None]
        if not tls and (ssl_set or not self.ssl_check_hostname):
            raise ValueError(f"{', '.join(ssl_set) or 'ssl_check_hostname'} set but protocol is {self.protocol}: "
                             "use protocol SSL or SASL_SSL, or remove the ssl_* settings")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate it belongs to)")
        if _one_source(self, "ssl_key_password", required=False) and self.ssl_certfile is None:
            raise ValueError("ssl_key_password* needs ssl_certfile (and ssl_keyfile if the key is separate)")
        return self


def _one_source(sec: Security, name: str, *, required: bool) -> bool:
    """At most one of ``name``, ``name_file``, ``name_env`` (exactly one when ``required``)."""
    given = [k for k in (name, f"{name}_file", f"{name}_env") if getattr(sec, k) is not None]
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)} are both set: give the secret one way only")
    if required and not given:
        raise ValueError(f"protocol {sec.protocol} needs a password: set {name}_file (a mounted secret), "
                         f"{name}_env (an environment variable's name) or {name}")
    return bool(given)


class Topics(Strict):
    predictions: str = "predictions"
    labels: str = "labels"
    features: str = "features"
    alerts: str = "skewwatch-alerts"
    dlq: str = "skewwatch-dlq"
    counterexamples: str = "skewwatch-counterexamples"
    partitions: int = Field(4, ge=1)


class Kafka(Strict):
    brokers: list[str] = Field(default_factory=lambda: ["localhost:9092"], min_length=1)
    group_id: str = "skewwatch"
    client_id: str = Field("skewwatch", description="client.id sent to the brokers (quotas, broker logs)")
    security: Security = Field(default_factory=Security)
    topics: Topics = Field(default_factory=Topics)
    max_message_bytes: int = Field(1_000_000, ge=1024)
    create_topics: bool = Field(True, description="create missing topics at start; false: only check that "
                                                  "they exist (for principals without CREATE rights)")
    replication_factor: int | None = Field(None, ge=1, description="replication factor of the topics created; "
                                                                   "default: min(3, brokers in the cluster)")


class Web(Strict):
    """The HTTP endpoints (/healthz, /readyz, /metrics, /status): read-only, no payloads, no secrets.

    ``host`` is the address the server binds. The default, all IPv4 interfaces, is what Kubernetes
    needs: the kubelet's probes and Prometheus reach a pod on its pod IP, so a loopback-only
    default would fail the liveness probe. Outside a container network set ``127.0.0.1`` (or the
    one interface Prometheus uses); ``"::"`` binds IPv6 as well.
    """

    host: str = Field("0.0.0.0", min_length=1)
    port: int = Field(9108, ge=0, le=65535)


class Labels(Strict):
    ttl: Duration = Field(7 * 86400.0, gt=0, description="how long a prediction waits for its label")
    max_pending: int = Field(1_000_000, ge=1000, description="predictions waiting for labels (~200 bytes each)")
    early_label_hold: Duration = Field(3600.0, ge=0, description="how long a label may wait for its prediction")


class Config(Strict):
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    default_reference: str | None = None
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    labels: Labels = Field(default_factory=Labels)
    kafka: Kafka = Field(default_factory=Kafka)
    web: Web = Field(default_factory=Web)
    checkpoint_interval: Duration = Field(30.0, gt=0)
    shutdown_grace: Duration = Field(20.0, gt=0)
    log_format: Literal["text", "json"] = "text"
    _ignored_env: tuple[str, ...] = PrivateAttr(default=())

    @property
    def ignored_env(self) -> tuple[str, ...]:
        """``SKEWWATCH_*`` variables of the environment it was loaded with that name no setting."""
        return self._ignored_env


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str], list[str]]:
    """``(overrides, {path: variable}, ignored variables)`` from the ``SKEWWATCH_*`` variables.

    A variable is read only when its path names a setting (or a section, given as a JSON/YAML
    mapping); ``models__NAME__…`` may name any model.
    """
    out: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    ignored: list[str] = []
    for k, v in sorted(environ.items()):
        if not k.startswith(ENV_PREFIX) or k in ENV_NOT_SETTINGS or k.startswith(ENV_NOT_SETTINGS_PREFIXES):
            continue
        path = tuple(k[len(ENV_PREFIX) :].lower().split("__"))
        if not _is_setting(Config, path):
            ignored.append(k)
            continue
        cur = out
        for p in path[:-1]:
            nxt = cur.setdefault(p, {})
            if not isinstance(nxt, dict):  # a section given whole and one of its keys: the key wins
                nxt = cur[p] = {}
            cur = nxt
        val: Any = v
        if v.startswith(("[", "{")):
            try:
                val = yaml.safe_load(v)
            except yaml.YAMLError as exc:
                raise ConfigError(f"environment variable {k}: not valid JSON/YAML: {exc}") from exc
        cur[path[-1]] = val
        origin[path] = k
    return out, origin, ignored


def _is_setting(model: Any, path: tuple[str, ...]) -> bool:
    """Does ``path`` name a field (leaf or section) of ``model``? Dict-valued fields take any key."""
    if not path or not all(path):
        return False
    f = model.model_fields.get(path[0])
    if f is None:
        return False
    rest = path[1:]
    if not rest:
        return True
    if getattr(f.annotation, "__origin__", None) is dict:  # models: {name: ModelConfig}
        value_model = _sub_model(f.annotation.__args__[1])
        return len(rest) == 1 or (value_model is not None and _is_setting(value_model, rest[1:]))
    sub = _sub_model(f.annotation)
    return sub is not None and _is_setting(sub, rest)


def _sub_model(ann: Any) -> type[BaseModel] | None:
    for a in (ann, *getattr(ann, "__args__", ())):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _explain(exc: ValidationError, source: str, env_origin: dict[tuple[str, ...], str] | None = None) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        var = _env_source(err["loc"], env_origin or {})
        if var is not None:
            lines.append(f"environment variable {var} (sets {loc}): {msg}")
            continue
        below = sorted(v for k, v in (env_origin or {}).items() if k[: len(err["loc"])] == tuple(map(str, err["loc"])))
        if below and err["type"] != "extra_forbidden":
            msg += f" (set from the environment: {', '.join(below)})"
        if err["type"] == "extra_forbidden":
            parent = _model_at(Config, err["loc"][:-1])
            hint = ""
            if parent is not None:
                close = difflib.get_close_matches(str(err["loc"][-1]), list(parent.model_fields), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(parent.model_fields)}"
            lines.append(f"{source}: unknown key {loc!r}{hint}")
        else:
            lines.append(f"{source}: {loc}: {msg}")
    return "\n".join(lines)


def _env_source(loc: tuple[Any, ...], origin: dict[tuple[str, ...], str]) -> str | None:
    path = tuple(str(p) for p in loc if not isinstance(p, int))
    for i in range(len(path), 0, -1):
        if path[:i] in origin:
            return origin[path[:i]]
    return None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    cur: Any = model
    for p in loc:
        if isinstance(p, int):
            continue
        f = getattr(cur, "model_fields", {}).get(p)
        if f is None:
            return cur if cur is ModelConfig else None
        ann = f.annotation
        args = getattr(ann, "__args__", ())
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            cur = ann
        elif args and isinstance(args[-1], type) and issubclass(args[-1], BaseModel):
            cur = args[-1]
        else:
            return None
    return cur if isinstance(cur, type) else None


def load_config(path: str | Path | None, environ: dict[str, str] | None = None, overrides: dict[str, Any] | None = None,
                *, warn_ignored: bool = True) -> Config:
    """Read YAML (or nothing), apply ``SKEWWATCH_*`` env overrides, validate.

    ``SKEWWATCH_*`` variables that name no setting are ignored and, with ``warn_ignored``, named in
    one warning (also in :attr:`Config.ignored_env`).
    """
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of settings, not {type(loaded).__name__}")
        data = loaded
    env, origin, ignored = _env_overrides(dict(os.environ if environ is None else environ))
    if ignored and warn_ignored:
        log.warning("ignoring %d environment variable(s) with the %s prefix that name no setting: %s "
                    "(Kubernetes service links of a Service named skewwatch look like this; "
                    "`enableServiceLinks: false` in the pod spec drops them)", len(ignored), ENV_PREFIX,
                    ", ".join(ignored), extra={"variables": ignored})
    data = _deep_merge(data, env)
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source, origin)) from exc
    cfg._ignored_env = tuple(ignored)
    return cfg


def load_references(cfg: Config, base: Path | None = None) -> tuple[dict[str, Reference], Reference | None]:
    """Load every model's reference (paths relative to the config file's folder)."""
    def _load(p: str) -> Reference:
        q = Path(p)
        if base is not None and not q.is_absolute():
            q = base / q
        try:
            return Reference.load(q)
        except ReferenceError as exc:
            raise ConfigError(str(exc)) from exc

    refs = {name: _load(m.reference) for name, m in cfg.models.items()}
    default = _load(cfg.default_reference) if cfg.default_reference else None
    return refs, default
