"""The ``skewwatch`` command line: one console script, one subcommand per job.

Exit codes: 0 success, 2 usage or configuration error (the message names the field and the
fix), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from detector import __version__

# subcommand -> (module, help); each module has add_arguments(parser) and run(args) -> int. Every module
# is part of the package: a missing one is a packaging bug and must fail loudly, not hide a command.
COMMANDS = {
    "demo": ("detector.cli.demo", "the main job: simulated model + injected faults + detector, live view"),
    "baseline": ("detector.cli.baseline", "build a reference profile (and audits) from training data"),
    "replay": ("detector.cli.replay", "run the detector over logged traffic, offline"),
    "run": ("detector.cli.run", "the sidecar worker against a Kafka cluster"),
    "simulate": ("detector.cli.simulate", "produce the demo's simulated traffic into any broker"),
    "bench": ("detector.cli.bench", "reproducible throughput / memory benchmark (JSON)"),
    "check-config": ("detector.cli.checkconfig", "validate a config and print the effective settings"),
    "report": ("detector.cli.report", "self-contained HTML diagnosis: gates, verdict, drifted features, reliability"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skewwatch", description="Is the production gap data, model or system?")
    p.add_argument("--version", action="version", version=f"skewwatch {__version__}")
    p.add_argument("--log-format", choices=["text", "json"], default=None,
                   help="log line format (default: the config's log_format for `run`, else text)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        importlib.import_module(mod).add_arguments(sp)
        # also accepted after the command (`skewwatch run --log-format json`); SUPPRESS keeps the global one
        sp.add_argument("--log-format", choices=["text", "json"], default=argparse.SUPPRESS, help="log line format")
        sp.set_defaults(_module=mod)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    from detector.cli.logs import setup_logging

    setup_logging(args.log_format or "text", quiet=getattr(args, "quiet", False))
    try:
        return int(importlib.import_module(args._module).run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
