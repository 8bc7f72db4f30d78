"""``skewwatch bench`` parts beyond the core loop: ``skewwatch replay`` end to end over a 2-week
log, the memory of the state, and whylogs on the same rows for scale.

The replay log is the benchmark's event shape spread over ``days`` of event time (1 h windows:
336 of them for two weeks), with a label for every prediction (delays of minutes to days, so
labels interleave with later predictions) and an offline feature event for a tenth of them,
gzip'd JSONL as a user would have it. The replay runs in a fresh process; while
:class:`~detector.replay.Replay` runs there, a sampler thread records the resident memory
against the number of windows closed, so growth with the number of windows (a leak, or state
that is not bounded) shows as a slope. State that legitimately fills up first - the label store
up to its TTL (7 days), the bounded caches of reference mixes - makes the first half rise.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

__all__ = ["write_log", "bench_replay", "state_bytes", "rss_bytes", "bench_whylogs"]


def rss_bytes() -> int:
    """Current resident set size of this process (not the peak)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:  # not Linux: the peak is the best we have
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_log(d: Path, n: int, days: float, seed: int = 5) -> dict[str, Any]:
    """Predictions, labels and offline features for ``days`` of event time, gzip'd JSONL."""
    from detector.bench.workload import make_events

    start = 1795615200.0
    rate = n / (days * 86400.0)
    preds = make_events(n, seed=seed, start=start, rate_per_s=rate)
    rng = np.random.default_rng(seed)
    ts = start + np.arange(n) / rate
    delay = np.exp(rng.uniform(np.log(60.0), np.log(3 * 86400.0), n))  # 1 min .. 3 days
    y = (rng.random(n) < 0.1).astype(int)
    order = np.argsort(ts + delay, kind="stable")
    ids = [f"{seed:x}-{i:010d}" for i in range(n)]
    sizes = {}
    with gzip.open(d / "predictions.jsonl.gz", "wb", compresslevel=1) as f:
        f.write(b"\n".join(preds) + b"\n")
    with gzip.open(d / "labels.jsonl.gz", "wb", compresslevel=1) as f:
        f.write(b"\n".join(orjson.dumps({"prediction_id": ids[i], "ts": float(ts[i] + delay[i]), "label": int(y[i])})
                           for i in order.tolist()) + b"\n")
    offline = np.flatnonzero(rng.random(n) < 0.1)
    with gzip.open(d / "features.jsonl.gz", "wb", compresslevel=1) as f:
        f.write(b"\n".join(orjson.dumps({"prediction_id": ids[i], "ts": float(ts[i] + 30.0), "source": "offline",
                                         "features": orjson.loads(preds[i])["features"]}) for i in offline.tolist()) + b"\n")
    for name in ("predictions", "labels", "features"):
        sizes[name] = (d / f"{name}.jsonl.gz").stat().st_size
    return {"predictions": n, "labels": n, "features": int(offline.size), "days": days, "gzip_bytes": sizes}


def bench_replay(ref: Any, n: int, days: float, window: str = "1h") -> dict[str, Any]:
    """``skewwatch replay`` (the same object the CLI drives) over a generated log; events/s and RSS.

    The log is written here; the replay runs in a fresh child process, so its resident memory is
    the replay's own and not the benchmark's pre-generated events.
    """
    import multiprocessing

    with tempfile.TemporaryDirectory(prefix="skewwatch-bench-") as tmp:
        d = Path(tmp)
        log = write_log(d, n, days)
        ref.save(d / "ref.json")
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            out = pool.apply(_replay_child, (str(d), window))
    events = log["predictions"] + log["labels"] + log["features"]
    return {"log": log, "window": window, "seconds": out.pop("seconds"),
            "events_per_s": round(events / out["seconds_raw"]), **{k: v for k, v in out.items() if k != "seconds_raw"}}


def _replay_child(d: str, window: str) -> dict[str, Any]:
    from detector.config import Config
    from detector.replay import Replay, build_engine

    rss_imports = rss_bytes()
    p = Path(d)
    cfg = Config.model_validate({"detector": {"window": window}})
    eng = build_engine(cfg, str(p / "ref.json"), None)
    rp = Replay(eng, None, None)
    samples: list[tuple[int, int, int]] = []  # (windows closed, rss, Python objects' allocated blocks)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            samples.append((eng.counters.windows_closed, rss_bytes(), sys.getallocatedblocks()))

    th = threading.Thread(target=sample, daemon=True)
    rss0 = rss_bytes()
    th.start()
    t0 = time.perf_counter()
    try:
        rp.run(str(p / "predictions.jsonl.gz"), str(p / "labels.jsonl.gz"), str(p / "features.jsonl.gz"))
    finally:
        stop.set()
        th.join()
    dt = time.perf_counter() - t0
    c = eng.counters
    return {"seconds": round(dt, 2), "seconds_raw": dt, "windows_closed": c.windows_closed,
            "accepted": {"predictions": c.predictions, "labels": c.labels, "feature_events": c.feature_events},
            "invalid": sum(c.invalid.values()),
            "rss": {"after_imports_mb": round(rss_imports / (1 << 20), 1), **_rss_profile(samples, rss0, c.windows_closed)}}


def _slope(samples: list[tuple[int, int, int]], lo: float, col: int, scale: float) -> float | None:
    """Least-squares slope of column ``col`` per 100 windows over the samples from ``lo`` windows on."""
    part = [(s[0], s[col]) for s in samples if s[0] >= lo]
    if len(part) <= 2 or part[-1][0] <= part[0][0]:
        return None
    k = np.array([p[0] for p in part], dtype=float)
    v = np.array([p[1] for p in part], dtype=float)
    return round(float(np.polyfit(k, v, 1)[0]) * 100 / scale, 2)


def _rss_profile(samples: list[tuple[int, int, int]], rss0: int, windows: int) -> dict[str, Any]:
    """RSS at the quarters of the run and its slope over the second half and the last quarter (MB
    per 100 windows); the same for the Python heap (allocated blocks, in thousands), which the
    allocator's reuse of freed pages does not blur."""
    mb = 1 << 20
    if not samples:
        return {"start_mb": round(rss0 / mb, 1)}
    at: dict[str, Any] = {}
    for q in (0.25, 0.5, 0.75, 1.0):
        w = q * windows
        hit = [s for s in samples if s[0] >= w] or [samples[-1]]
        at[f"at_{int(q * 100)}pct_windows_mb"] = round(hit[0][1] / mb, 1)
        at[f"python_blocks_k_at_{int(q * 100)}pct"] = round(hit[0][2] / 1000)
    return {"start_mb": round(rss0 / mb, 1), **at, "max_mb": round(max(s[1] for s in samples) / mb, 1),
            "second_half_slope_mb_per_100_windows": _slope(samples, windows / 2, 1, mb),
            "last_quarter_slope_mb_per_100_windows": _slope(samples, 0.75 * windows, 1, mb),
            "last_quarter_slope_python_blocks_k_per_100_windows": _slope(samples, 0.75 * windows, 2, 1000),
            "note": "the first days fill what is bounded by time, not by windows (the label store up to its TTL, "
                    "7 days; the caches of reference mixes up to their bounds): flat means a last-quarter slope near 0"}


def state_bytes(eng: Any) -> dict[str, Any]:
    """Bytes of model state: one window's counters, the seasonal baseline, per feature x slice row."""
    out: dict[str, Any] = {}
    for name, ms in eng.models.items():
        lay = ms.layout
        from detector.core.inputs.window import WindowCounts

        w = WindowCounts.empty(lay, 0.0, 1.0)
        win = sum(v.nbytes for v in vars(w).values() if isinstance(v, np.ndarray))
        seas = _array_bytes(ms.seasonal)
        feats = len(lay.numeric) + len(lay.categorical) + 1  # + the score
        rows = lay.n_rows
        out[name] = {"features_incl_score": feats, "slice_rows": rows, "window_bytes": win, "seasonal_bytes": seas,
                     "window_bytes_per_feature_row": round(win / (feats * rows), 1),
                     "seasonal_bytes_per_feature_row": round(seas / (feats * rows), 1),
                     "open_windows": len(ms.windows)}
    return out


def _array_bytes(obj: Any, depth: int = 0) -> int:
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if depth > 3:
        return 0
    if isinstance(obj, dict):
        return sum(_array_bytes(v, depth + 1) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_array_bytes(v, depth + 1) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(_array_bytes(v, depth + 1) for v in vars(obj).values())
    return 0


def bench_whylogs(n: int, runs: int) -> dict[str, Any]:
    """whylogs profiling a ready pandas DataFrame of the same columns (no JSON parsing at all)."""
    import os

    os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "1")  # whylogs phones home otherwise; a benchmark must not
    try:
        import numpy

        if not hasattr(numpy, "unicode_"):  # whylogs 1.x still names the NumPy 1 alias
            numpy.unicode_ = numpy.str_  # type: ignore[attr-defined]
        import pandas as pd
        import whylogs as why
    except Exception as exc:  # noqa: BLE001 - optional: report why it is missing
        return {"available": False, "why": f"{type(exc).__name__}: {exc}"[:200]}
    from detector.bench.workload import columns as _columns

    df = pd.DataFrame(_columns(n, np.random.default_rng(7)))
    why.log(pandas=df.head(1000))  # warm-up (lazy imports)
    rates, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        why.log(pandas=df)
        rates.append(n / (time.perf_counter() - t))
        cpu.append(n / (time.process_time() - c))
    return {"available": True, "version": getattr(why, "__version__", "?"), "rows": n,
            "rows_per_s_runs": [round(r) for r in rates], "rows_per_s_median": round(float(np.median(rates))),
            "rows_per_cpu_s_runs": [round(r) for r in cpu], "rows_per_cpu_s_median": round(float(np.median(cpu)))}
