"""The benchmark workload: synthetic prediction events of the benchmark shape, its reference, and
the timed passes over the core (whole loop, bare parse floor, per stage).

20 numeric + 5 categorical features, slice dimensions region/channel/tier with ~5 values each,
score/decision/threshold/latency/fallback; a fixed seed, so every run and every machine times the
same events. Used by ``skewwatch bench`` (:mod:`detector.cli.bench`), the replay benchmark
(:mod:`detector.bench.replay`) and the Kafka benchmark (:mod:`detector.bench.kafka`).
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np
import orjson

from detector.core.engine import Engine, gc_paused
from detector.core.reference.build import build_reference
from detector.core.settings import DetectorSettings

__all__ = ["make_events", "columns", "reference", "bench_core", "parse_floor", "stages"]

REGIONS = ["eu", "us", "apac", "latam", "mea"]
CHANNELS = ["web", "ios", "android", "pos", "api"]
TIERS = ["free", "basic", "gold", "platinum", "enterprise"]
CATS = [["DE", "FR", "US", "GB", "ES", "IT", "NL", "PL"], ["ios", "android", "web", "pos"],
        ["grocery", "travel", "electronics", "fashion", "gaming", "fuel"], ["EUR", "USD", "GBP", "PLN"],
        ["visa", "mastercard", "amex"]]


def columns(n: int, rng: np.random.Generator) -> dict[str, Any]:
    """``n`` rows of the benchmark's features, slices and score, as columns."""
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
    c = columns(n, rng)
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
        out.append(bytes(memoryview(dumps({
            "prediction_id": f"{seed:x}-{i:010d}", "model": "bench", "model_version": "2026-11-01", "ts": float(ts[i]),
            "features": f, "score": s, "decision": "review" if s >= 0.5 else "approve", "threshold": 0.5,
            "slices": {"region": c["region"][i], "channel": c["channel"][i], "tier": c["tier"][i]},
            "latency_ms": 12.5, "fallback": False,
        }))))  # a copy of its exact size, as a message from Kafka is: orjson's own bytes keep ~8 KiB of memory each
    return out


def reference(seed: int = 11, n: int = 100_000) -> Any:
    """The training reference of the benchmark model (another seed than the events)."""
    c = columns(n, np.random.default_rng(seed))
    return build_reference(c, score_column="score", slice_columns=["region", "channel", "tier"], model="bench")


def bench_core(events: list[bytes], ref: Any, batch: int, window: str) -> dict[str, float]:
    """One timed pass of ``events`` through a fresh engine: ingest in batches, close windows as event time moves."""
    eng = Engine(DetectorSettings(window=window), default_reference=ref)
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    alerts = 0
    for i in range(0, len(events), batch):
        eng.ingest_predictions(events[i : i + batch])
        alerts += len(eng.advance())
    alerts += len(eng.flush())
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": dt, "events_per_s": len(events) / dt, "cpu_seconds": cpu, "events_per_cpu_s": len(events) / cpu,
            "windows": eng.counters.windows_closed, "alerts": alerts}


def parse_floor(events: list[bytes], batch: int) -> tuple[float, float]:
    """Events per second and per CPU second of bare ``orjson.loads`` over the same events and
    batches (the parse floor). CPU time leaves out what a shared machine's other processes take
    (on one core, ``taskset``, the two agree when nothing else runs)."""
    gc.collect()
    with gc_paused():
        t, c = time.perf_counter(), time.process_time()
        for i in range(0, len(events), batch):
            list(map(orjson.loads, events[i : i + batch]))
        return len(events) / (time.perf_counter() - t), len(events) / (time.process_time() - c)


def stages(events: list[bytes], ref: Any, batch: int) -> tuple[dict[str, float], Engine]:
    """Microseconds per event in each stage of the usual path (Arrow's reader, then the fold), on
    one pass, with bare ``orjson.loads`` of the same batches for scale, and the typed (msgspec)
    path - what the columnar reader leaves - timed on the same batches for comparison. Without
    pyarrow (the ``fast`` extra) the typed path is the usual one: its batches are folded, and the
    columnar stage reads 0 with a share of 0."""
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
            b = None if ad is None else ad.decode(raws, st.min_epoch, st.max_id_bytes, st.max_value_bytes)[0]
            t2 = time.perf_counter()
            typed, _rest = td.decode(raws, st.min_epoch, st.max_id_bytes, st.max_value_bytes)
            t3 = time.perf_counter()
            tb = ms.decoder.decode_typed("bench", typed, td, ms.layout.dims)
            t4 = time.perf_counter()
            eng.ingest_batch(tb if b is None else b)
            columnar += 0 if b is None else b.n
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
