"""``skewwatch bench``: a reproducible benchmark of the core, JSON out.

Synthetic prediction events of the benchmark shape (20 numeric + 5 categorical features, slice
dimensions region/channel/tier with ~5 values each, score/decision/threshold/latency/fallback)
are generated once with a fixed seed, encoded with orjson, then pushed through
``Engine.ingest_predictions`` (JSON decode -> columns -> window counts) in batches, closing a
window every ``--window`` of event time. Generation is not timed. Each run uses a fresh engine;
the figure reported is the median of ``--runs`` runs, with every run listed. Interleaved with
the runs, bare ``orjson.loads`` of the same events gives the parse floor (``ratio_to_orjson_loads``,
and the ratio within each run), and whylogs profiling a ready DataFrame of the same rows gives a
reference point when it is installed (also once per run); then a per-stage breakdown, the bytes of state per feature x slice row, ``skewwatch
replay`` end to end over a 2-week gzip'd log (predictions, labels, offline features) with its
resident memory against the number of windows closed (see :mod:`detector.shells.benchreplay`),
and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from typing import Any

import numpy as np
import orjson

from detector.core.engine import Engine, gc_paused
from detector.core.profile import build_reference
from detector.core.settings import DetectorSettings
from detector.shells.benchreplay import bench_replay, bench_whylogs, state_bytes

__all__ = ["add_arguments", "run", "make_events", "bench_core", "parse_floor"]

REGIONS = ["eu", "us", "apac", "latam", "mea"]
CHANNELS = ["web", "ios", "android", "pos", "api"]
TIERS = ["free", "basic", "gold", "platinum", "enterprise"]
CATS = [["DE", "FR", "US", "GB", "ES", "IT", "NL", "PL"], ["ios", "android", "web", "pos"],
        ["grocery", "travel", "electronics", "fashion", "gaming", "fuel"], ["EUR", "USD", "GBP", "PLN"],
        ["visa", "mastercard", "amex"]]


def _columns(n: int, rng: np.random.Generator) -> dict[str, Any]:
    cols: dict[str, Any] = {}
    for i in range(20):
        if i % 4 == 0:
            cols[f"num_{i:02d}"] = rng.lognormal(3.0, 1.0, n).round(2)
        elif i % 4 == 1:
            cols[f"num_{i:02d}"] = rng.poisson(2.0, n).astype(np.float64)
        elif i % 4 == 2:
            cols[f"num_{i:02d}"] = rng.random(n).round(4)
        else:
            cols[f"num_{i:02d}"] = rng.normal(0.0, 1.0, n).round(3)
    for j, vals in enumerate(CATS):
        cols[f"cat_{j}"] = np.array(vals, dtype=object)[rng.integers(0, len(vals), n)]
    cols["region"] = np.array(REGIONS, dtype=object)[rng.integers(0, 5, n)]
    cols["channel"] = np.array(CHANNELS, dtype=object)[rng.integers(0, 5, n)]
    cols["tier"] = np.array(TIERS, dtype=object)[rng.integers(0, 5, n)]
    cols["score"] = rng.beta(1.0, 12.0, n).round(4)
    return cols


def make_events(n: int, seed: int = 7, start: float = 1795615200.0, rate_per_s: float = 50.0) -> list[bytes]:
    """``n`` encoded prediction events, ``rate_per_s`` per second of event time."""
    rng = np.random.default_rng(seed)
    c = _columns(n, rng)
    ts = start + np.arange(n) / rate_per_s
    names_num = [f"num_{i:02d}" for i in range(20)]
    names_cat = [f"cat_{j}" for j in range(5)]
    num = np.stack([c[k] for k in names_num], axis=1).tolist()
    cat = np.stack([c[k] for k in names_cat], axis=1).tolist()
    out = []
    dumps = orjson.dumps
    for i in range(n):
        f = dict(zip(names_num, num[i], strict=True))
        f.update(zip(names_cat, cat[i], strict=True))
        s = float(c["score"][i])
        out.append(dumps({
            "prediction_id": f"{seed:x}-{i:010d}", "model": "bench", "model_version": "2026-11-01", "ts": float(ts[i]),
            "features": f, "score": s, "decision": "review" if s >= 0.5 else "approve", "threshold": 0.5,
            "slices": {"region": c["region"][i], "channel": c["channel"][i], "tier": c["tier"][i]},
            "latency_ms": 12.5, "fallback": False,
        }))
    return out


def reference(seed: int = 11, n: int = 100_000) -> Any:
    c = _columns(n, np.random.default_rng(seed))
    return build_reference(c, score_column="score", slice_columns=["region", "channel", "tier"], model="bench")


def bench_core(events: list[bytes], ref: Any, batch: int, window: str) -> dict[str, float]:
    eng = Engine(DetectorSettings(window=window), default_reference=ref)
    gc.collect()
    t0 = time.perf_counter()
    alerts = 0
    for i in range(0, len(events), batch):
        eng.ingest_predictions(events[i : i + batch])
        alerts += len(eng.advance())
    alerts += len(eng.flush())
    dt = time.perf_counter() - t0
    return {"seconds": dt, "events_per_s": len(events) / dt, "windows": eng.counters.windows_closed, "alerts": alerts}


def parse_floor(events: list[bytes], batch: int) -> float:
    """Events/s of bare ``orjson.loads`` over the same events and batches (the parse floor)."""
    gc.collect()
    with gc_paused():
        t = time.perf_counter()
        for i in range(0, len(events), batch):
            list(map(orjson.loads, events[i : i + batch]))
        return len(events) / (time.perf_counter() - t)


def stages(events: list[bytes], ref: Any, batch: int) -> tuple[dict[str, float], Engine]:
    """Microseconds per event in each stage of the usual path (Arrow's reader, then the fold), on
    one pass, with bare ``orjson.loads`` of the same batches for scale, and the typed (msgspec)
    path - what the columnar reader leaves - timed on the same batches for comparison."""
    eng = Engine(DetectorSettings(), default_reference=ref)
    eng.ingest_predictions(events[:batch])  # creates the model state and its decoders
    ms = next(iter(eng.models.values()))
    td, ad = eng._typed, ms.arrow  # noqa: SLF001 - the benchmark times the engine's own stages
    st = eng.settings
    t = dict.fromkeys(("orjson_loads", "columnar_decode", "typed_decode", "typed_columns", "fold"), 0.0)
    columnar = 0
    with gc_paused():  # as Engine.ingest_predictions does
        for i in range(0, len(events), batch):
            raws = events[i : i + batch]
            t0 = time.perf_counter()
            list(map(orjson.loads, raws))
            t1 = time.perf_counter()
            b, _rest = ad.decode(raws, st.min_epoch, st.max_id_bytes, st.max_value_bytes)
            t2 = time.perf_counter()
            typed, _rest = td.decode(raws, st.min_epoch, st.max_id_bytes, st.max_value_bytes)
            t3 = time.perf_counter()
            ms.decoder.decode_typed("bench", typed, td, ms.layout.dims)
            t4 = time.perf_counter()
            if b is not None:
                eng.ingest_batch(b)
                columnar += b.n
            t5 = time.perf_counter()
            t["orjson_loads"] += t1 - t0
            t["columnar_decode"] += t2 - t1
            t["typed_decode"] += t3 - t2
            t["typed_columns"] += t4 - t3
            t["fold"] += t5 - t4
    t0 = time.perf_counter()
    eng.flush()
    t["close"] = time.perf_counter() - t0
    n = len(events)
    out = {f"{k}_us": 1e6 * v / n for k, v in t.items()}
    out["columnar_share"] = columnar / n
    return out, eng


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
        from detector.shells import kafkabench

        return kafkabench.run(args)
    if args.events < 1000 or args.runs < 1:
        print("skewwatch bench: error: --events must be >= 1000 and --runs >= 1", file=sys.stderr)
        return 2
    ref = reference()
    events = make_events(args.events)
    if not args.quiet:
        print(f"generated {len(events):,} events ({sum(map(len, events)) / len(events):.0f} bytes each); "
              f"running {args.runs} runs...", file=sys.stderr)
    runs, floor, wl_runs = [], [], []
    for _ in range(args.runs):  # interleaved, so all see the same machine load
        floor.append(parse_floor(events, args.batch))
        runs.append(bench_core(events, ref, args.batch, args.window))
        if not args.no_whylogs:
            wl_runs.append(bench_whylogs(min(len(events), 50_000), 1))
    eps = [r["events_per_s"] for r in runs]
    med, floor_med = statistics.median(eps), statistics.median(floor)
    per_run = [e / f for e, f in zip(eps, floor, strict=True)]
    if args.no_whylogs:
        wl: dict[str, Any] = {"available": False, "why": "--no-whylogs"}
    elif not wl_runs[0].get("available"):
        wl = wl_runs[0]
    else:
        rates = [w["rows_per_s_median"] for w in wl_runs]
        wl = {**{k: v for k, v in wl_runs[0].items() if not k.startswith("rows_per_s")},
              "rows_per_s_runs": rates, "rows_per_s_median": round(statistics.median(rates))}
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
        "whylogs": wl,
        "ratio_to_whylogs": round(med / wl["rows_per_s_median"], 2) if wl.get("available") else None,
        "ratio_to_whylogs_runs": [round(e / w, 2) for e, w in zip(eps, wl["rows_per_s_runs"], strict=True)]
        if wl.get("available") else None,
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
