"""``skewwatch bench``: a reproducible benchmark of the core, JSON out.

Synthetic prediction events of the benchmark shape (20 numeric + 5 categorical features, slice
dimensions region/channel/tier with ~5 values each, score/decision/threshold/latency/fallback)
are generated once with a fixed seed, encoded with orjson, then (after one untimed pass over two
batches: the process's one-time imports) pushed through
``Engine.ingest_predictions`` (JSON decode -> columns -> window counts) in batches, closing a
window every ``--window`` of event time. Generation is not timed. Each run uses a fresh engine;
the figure reported is the median of ``--runs`` runs, with every run listed. Interleaved with
the runs, bare ``orjson.loads`` of the same events gives the parse floor (``ratio_to_orjson_loads``,
and the ratio within each run; the same per CPU second of the process, which a shared machine's other
processes do not move), and whylogs profiling a ready DataFrame of the same rows gives a
reference point when it is installed (also once per run); then a per-stage breakdown, the bytes of state per feature x slice row, ``skewwatch
replay`` end to end over a 2-week gzip'd log (predictions, labels, offline features) with its
resident memory against the number of windows closed (see :mod:`detector.bench.replay`),
and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
from typing import Any

import numpy as np
import orjson

from detector.bench.replay import bench_replay, bench_whylogs, state_bytes
from detector.bench.workload import bench_core, make_events, parse_floor, reference, stages

__all__ = ["add_arguments", "run"]

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", type=int, default=200_000, help="events per run")
    p.add_argument("--runs", type=int, default=5, help="runs; the median is reported")
    p.add_argument("--batch", type=int, default=5000, help="messages per ingest call")
    p.add_argument("--window", default="1h", help="window length (event time; events are 50/s, so 1 h = 180,000 events)")
    p.add_argument("--kafka", action="store_true", help="benchmark through the embedded Kafka broker")
    p.add_argument("--replay-events", type=int, default=300_000,
                   help="predictions in the 2-week replay log (plus a label each and 10%% offline features); 0 = skip")
    p.add_argument("--replay-days", type=float, default=14.0, help="event-time span of the replay log")
    p.add_argument("--no-whylogs", action="store_true", help="do not measure whylogs even if it is installed")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.kafka:
        from detector.bench import kafka as kafkabench

        return kafkabench.run(args)
    if args.events < 1000 or args.runs < 1:
        print("skewwatch bench: error: --events must be >= 1000 and --runs >= 1", file=sys.stderr)
        return 2
    ref = reference()
    events = make_events(args.events)
    if not args.quiet:
        print(f"generated {len(events):,} events ({sum(map(len, events)) / len(events):.0f} bytes each); "
              f"running {args.runs} runs...", file=sys.stderr)
    # one untimed pass first, as whylogs gets one: the first model state imports its detectors'
    # libraries (~1.7 s of river and scikit-learn imports, once per process), which the first run
    # would otherwise count as ingest time
    bench_core(events[: 2 * args.batch], ref, args.batch, args.window)
    runs, floor, floor_cpu, wl_runs = [], [], [], []
    for _ in range(args.runs):  # interleaved, so all see the same machine load
        f, fc = parse_floor(events, args.batch)
        floor.append(f)
        floor_cpu.append(fc)
        runs.append(bench_core(events, ref, args.batch, args.window))
        if not args.no_whylogs:
            wl_runs.append(bench_whylogs(min(len(events), 50_000), 1))
    eps = [r["events_per_s"] for r in runs]
    eps_cpu = [r["events_per_cpu_s"] for r in runs]
    med, floor_med = statistics.median(eps), statistics.median(floor)
    per_run = [e / f for e, f in zip(eps, floor, strict=True)]
    per_run_cpu = [e / f for e, f in zip(eps_cpu, floor_cpu, strict=True)]
    if args.no_whylogs:
        wl: dict[str, Any] = {"available": False, "why": "--no-whylogs"}
    elif not wl_runs[0].get("available"):
        wl = wl_runs[0]
    else:
        rates = [w["rows_per_s_median"] for w in wl_runs]
        cpu_rates = [w["rows_per_cpu_s_median"] for w in wl_runs]
        wl = {**{k: v for k, v in wl_runs[0].items() if not k.startswith(("rows_per_s", "rows_per_cpu_s"))},
              "rows_per_s_runs": rates, "rows_per_s_median": round(statistics.median(rates)),
              "rows_per_cpu_s_runs": cpu_rates, "rows_per_cpu_s_median": round(statistics.median(cpu_rates))}
    stage, eng = stages(events, ref, args.batch)
    rp = None
    if args.replay_events > 0:
        if not args.quiet:
            print(f"replaying a {args.replay_days:g}-day log of {args.replay_events:,} predictions...", file=sys.stderr)
        rp = bench_replay(ref, args.replay_events, args.replay_days)
    result = {
        "benchmark": "core decode+ingest+window close",
        "shape": {"numeric_features": 20, "categorical_features": 5, "slice_dims": {"region": 5, "channel": 5, "tier": 5},
                  "bytes_per_event": round(sum(map(len, events)) / len(events), 1)},
        "events": len(events), "batch": args.batch, "window": args.window, "runs": args.runs,
        "events_per_s_median": round(med),
        "events_per_s_runs": [round(x) for x in eps],
        "orjson_loads_events_per_s_median": round(floor_med),
        "orjson_loads_events_per_s_runs": [round(x) for x in floor],
        "ratio_to_orjson_loads": round(med / floor_med, 3),
        "ratio_to_orjson_loads_runs": [round(x, 3) for x in per_run],
        "ratio_to_orjson_loads_median_of_runs": round(statistics.median(per_run), 3),
        # the same per CPU second of this process: on a shared machine, what other processes take
        # (the time this one waits for the core) moves the wall-clock ratios from run to run
        "events_per_cpu_s_median": round(statistics.median(eps_cpu)),
        "orjson_loads_events_per_cpu_s_median": round(statistics.median(floor_cpu)),
        "ratio_to_orjson_loads_cpu_runs": [round(x, 3) for x in per_run_cpu],
        "ratio_to_orjson_loads_cpu_median_of_runs": round(statistics.median(per_run_cpu), 3),
        "whylogs": wl,
        "ratio_to_whylogs": round(med / wl["rows_per_s_median"], 2) if wl.get("available") else None,
        "ratio_to_whylogs_runs": [round(e / w, 2) for e, w in zip(eps, wl["rows_per_s_runs"], strict=True)]
        if wl.get("available") else None,
        "ratio_to_whylogs_cpu_runs": [round(e / w, 2) for e, w in zip(eps_cpu, wl["rows_per_cpu_s_runs"], strict=True)]
        if wl.get("available") else None,
        "ratio_to_whylogs_cpu_median_of_runs": round(statistics.median(
            e / w for e, w in zip(eps_cpu, wl["rows_per_cpu_s_runs"], strict=True)), 2) if wl.get("available") else None,
        "windows_closed": runs[0]["windows"], "alerts": runs[0]["alerts"],
        "stages_us_per_event": {k: round(v, 3) for k, v in stage.items() if k.endswith("_us")},
        "columnar_share": round(stage["columnar_share"], 4),
        "state": state_bytes(eng),
        "replay": rp,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": sys.version.split()[0], "numpy": np.__version__,
    }
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0
