"""The skewwatch configuration file (YAML), validated with pydantic at the edge.

Unknown keys are rejected with the field path and the closest valid name, and every value can be
overridden from the environment: ``SKEWWATCH_DETECTOR__WINDOW=5m`` sets ``detector.window``
(``__`` separates nesting levels). Errors raise :class:`ConfigError` whose message names the
field and the fix; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detector.core.reference import Reference, ReferenceError
from detector.core.settings import DetectorSettings, Duration

__all__ = ["Config", "ConfigError", "ModelConfig", "load_config", "load_references"]

ENV_PREFIX = "SKEWWATCH_"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    reference: str = Field(description="path of the reference profile built by `skewwatch baseline`")
    cost_fp: float | None = Field(None, ge=0, description="cost of a false positive (for expected cost)")
    cost_fn: float | None = Field(None, ge=0, description="cost of a false negative")
    review_capacity: int | None = Field(None, ge=0, description="actions the team can handle per window")


class Security(_Strict):
    protocol: str = Field("PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$")
    sasl_mechanism: str | None = Field(None, pattern="^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)$")
    sasl_username: str | None = None
    sasl_password: str | None = Field(None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


class Topics(_Strict):
    predictions: str = "predictions"
    labels: str = "labels"
    features: str = "features"
    alerts: str = "skewwatch-alerts"
    dlq: str = "skewwatch-dlq"
    counterexamples: str = "skewwatch-counterexamples"
    partitions: int = Field(4, ge=1)


class Kafka(_Strict):
    brokers: list[str] = Field(default_factory=lambda: ["localhost:9092"])
    group_id: str = "skewwatch"
    security: Security = Field(default_factory=Security)
    topics: Topics = Field(default_factory=Topics)
    max_message_bytes: int = Field(1_000_000, ge=1024)


class Web(_Strict):
    host: str = "0.0.0.0"
    port: int = Field(9108, ge=0, le=65535)


class Labels(_Strict):
    ttl: Duration = Field(7 * 86400.0, gt=0, description="how long a prediction waits for its label")
    max_pending: int = Field(1_000_000, ge=1000, description="predictions waiting for labels (~200 bytes each)")
    early_label_hold: Duration = Field(3600.0, ge=0, description="how long a label may wait for its prediction")


class Config(_Strict):
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    default_reference: str | None = None
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    labels: Labels = Field(default_factory=Labels)
    kafka: Kafka = Field(default_factory=Kafka)
    web: Web = Field(default_factory=Web)
    checkpoint_interval: Duration = Field(30.0, gt=0)
    shutdown_grace: Duration = Field(20.0, gt=0)
    log_format: str = Field("text", pattern="^(text|json)$")


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in environ.items():
        if not k.startswith(ENV_PREFIX) or k.startswith(ENV_PREFIX + "TEST_"):
            continue
        path = k[len(ENV_PREFIX) :].lower().split("__")
        cur = out
        for p in path[:-1]:
            cur = cur.setdefault(p, {})
        val: Any = v
        if v.startswith("[") or v.startswith("{"):
            val = yaml.safe_load(v)
        cur[path[-1]] = val
    return out


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _explain(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
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


def load_config(path: str | Path | None, environ: dict[str, str] | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read YAML (or nothing), apply ``SKEWWATCH_*`` env overrides, validate."""
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
    data = _deep_merge(data, _env_overrides(dict(os.environ if environ is None else environ)))
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from exc


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
