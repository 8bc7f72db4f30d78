"""``python -m detector.sim``: write a scenario's JSONL files and a training CSV.

    python3 -m detector.sim --scenario NAME --out DIR [--seed N] [--hours H] [--rate R]

Exit codes: 0 success, 2 usage error (unknown scenario, bad value), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

import orjson

from detector.sim.files import write_jsonl, write_training
from detector.sim.scenarios import get_scenario, list_scenarios

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m detector.sim",
                                description="Simulate a fraud model's traffic with injected faults.")
    p.add_argument("--scenario", default="stable", help=f"one of: {', '.join(list_scenarios())}")
    p.add_argument("--out", help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hours", type=float, default=None, help="scenario length (default: the scenario's)")
    p.add_argument("--rate", type=float, default=None, help="mean prediction events per hour (default 3600)")
    p.add_argument("--start", default=None, help="start time, ISO 8601 with offset (default 2026-11-02T05:00Z)")
    p.add_argument("--ts-format", choices=("rfc3339", "epoch"), default="rfc3339")
    p.add_argument("--gzip", action="store_true", help="write predictions.jsonl.gz")
    p.add_argument("--training-rows", type=int, default=100_000, help="rows in training.csv (0 = none)")
    p.add_argument("--list", action="store_true", help="print the scenarios and their ground truth as JSON")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.list:
            info = {name: get_scenario(name).ground_truth() for name in list_scenarios()}
            sys.stdout.write(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode() + "\n")
            return 0
        if not args.out:
            print("error: --out DIR is required (where to write the JSONL files)", file=sys.stderr)
            return 2
        if args.rate is not None and not args.rate > 0:
            raise ValueError(f"--rate must be > 0, got {args.rate}")
        if args.training_rows < 0:
            raise ValueError(f"--training-rows must be >= 0, got {args.training_rows}")
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00")) if args.start else None
        sc = get_scenario(args.scenario, seed=args.seed, rate_per_hour=args.rate, start=start, hours=args.hours)
        sc = sc.with_(ts_format=args.ts_format)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        t = time.perf_counter()
        res = write_jsonl(sc, args.out, gzip_predictions=args.gzip)
        if args.training_rows:
            path = write_training(f"{args.out}/training.csv", args.training_rows, seed=args.seed,
                                  world=sc.world, end=sc.start)
            res["paths"]["training"] = str(path)
        res["seconds"] = round(time.perf_counter() - t, 3)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        sys.stdout.write(orjson.dumps({"scenario": sc.name, "seed": args.seed, **res}).decode() + "\n")
    return 0
