"""``skewwatch replay``: the same core over logged traffic, offline (:mod:`detector.replay` does the work).

Bad lines never stop the replay: they are counted by reason, the first few are reported with their
line numbers, and all of them can be written to a dead-letter file (``--dlq-out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from detector.cli.inputs import add_traffic_arguments
from detector.config import ConfigError, load_config
from detector.core.settings import parse_duration
from detector.io.eventrows import EventFile
from detector.replay import Replay, UsageError, build_engine, open_lines

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_traffic_arguments(p)
    p.add_argument("--alerts-out", help="write the alert stream here (JSONL); default: stdout summary only")
    p.add_argument("--dlq-out", help="write rejected events with reasons here (JSONL)")
    p.add_argument("--counterexamples-out",
                   help="write the worst false positives / negatives of every matured cohort here (JSONL; needs --labels)")
    p.add_argument("--metrics-out", help="write the final Prometheus text exposition here")
    p.add_argument("--snapshot-out", help="write the engine state here (for `skewwatch report`)")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")


def run(args: argparse.Namespace) -> int:
    try:
        overrides: dict[str, Any] = {}
        if args.window:
            overrides = {"detector": {"window": parse_duration(args.window)}}
        cfg = load_config(args.config, overrides=overrides)
        eng = build_engine(cfg, args.reference, Path(args.config).parent if args.config else None)
        for p in (args.predictions, args.labels, args.features):
            if p:
                open_lines(p).close()
                if p.lower().removesuffix(".gz").endswith(".parquet"):
                    EventFile(p)  # pyarrow present and the file readable
    except (ConfigError, UsageError, ValueError) as exc:
        print(f"skewwatch replay: error: {exc}", file=sys.stderr)
        return 2
    out = open(args.alerts_out, "wb") if args.alerts_out else None
    dlq = open(args.dlq_out, "wb") if args.dlq_out else None
    cx = open(args.counterexamples_out, "wb") if getattr(args, "counterexamples_out", None) else None
    t0 = time.perf_counter()
    rp = Replay(eng, out, dlq, progress=not args.quiet, counterexamples_out=cx)
    try:
        rp.run(args.predictions, args.labels, args.features)
    finally:
        for f in (out, dlq, cx):
            if f is not None:
                f.close()
    dt = time.perf_counter() - t0
    if rp.lines == 0:
        print(f"skewwatch replay: error: {args.predictions} holds no events (empty file?)", file=sys.stderr)
        return 2
    if args.metrics_out:
        from detector.exporters.prometheus import exposition

        Path(args.metrics_out).write_bytes(exposition(eng))
    if args.snapshot_out:
        Path(args.snapshot_out).write_bytes(eng.snapshot())
    if not args.quiet:
        c = eng.counters
        invalid = sum(c.invalid.values())
        print(f"replayed {rp.lines:,} prediction lines in {dt:.1f}s ({rp.lines / max(dt, 1e-9):,.0f}/s); "
              f"{c.predictions:,} predictions, {c.labels:,} labels, {c.feature_events:,} feature events")
        print(f"invalid events: {invalid:,}" + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(c.invalid.items()))})" if invalid else "")
              + f"; late events: {c.late:,}; windows closed: {c.windows_closed:,}")
        for line in rp.first_errors:
            print(f"  {line}")
        if rp.alert_count:
            print("alerts: " + ", ".join(f"{k}: {v}" for k, v in sorted(rp.alert_count.items())))
        else:
            print("alerts: none")
        if args.alerts_out:
            print(f"alert stream written to {args.alerts_out}")
        if cx is not None:
            print(f"{rp.counterexamples:,} counterexamples written to {args.counterexamples_out}")
    return 0
