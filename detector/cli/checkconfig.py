"""``skewwatch check-config C.yaml``: validate a config and print the effective settings.

Environment overrides (``SKEWWATCH_…``) are applied first, so what is printed is what ``run``
would use; variables with the prefix that name no setting are listed as ignored. The Kafka
security settings are checked as ``run`` builds them (secret files and variables present, CA and
client certificate loadable), without connecting. Secrets are never printed. Exit 0 when valid,
2 with the field and the fix when not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from detector.config import ConfigError, load_config, load_references

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")
    p.add_argument("--no-references", action="store_true", help="do not load the reference files it names")
    p.add_argument("--quiet", action="store_true", help="validate only, print nothing on success")


def run(args: argparse.Namespace) -> int:
    from detector.kafka.clients import client_settings

    try:
        cfg = load_config(args.config)
        client = client_settings(cfg.kafka).describe()
        if not args.no_references:
            refs, default = load_references(cfg, Path(args.config).parent)
        else:
            refs, default = {}, None
    except ConfigError as exc:
        print(f"skewwatch check-config: error: {exc}", file=sys.stderr)
        return 2
    if args.quiet:
        return 0
    data = cfg.model_dump(mode="json")  # SecretStr fields come out as "**********"
    print(f"# {args.config}: valid; effective settings (environment overrides applied)")
    if cfg.ignored_env:
        print(f"# ignored environment variables (they name no setting): {', '.join(cfg.ignored_env)}")
    print(f"# Kafka clients: {', '.join(f'{k}={v}' for k, v in client.items())}")
    for name, ref in refs.items():
        print(f"# model {name}: reference with {len(ref.features)} features, {ref.n_rows:,} training rows")
    if default is not None:
        print(f"# default reference: {len(default.features)} features, {default.n_rows:,} training rows")
    print(yaml.safe_dump(data, sort_keys=False).rstrip())
    return 0
