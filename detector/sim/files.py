"""Simulated traffic and training data as files and wire messages.

* :func:`write_jsonl` — ``predictions.jsonl[.gz]``, ``labels.jsonl``, ``features.jsonl`` (one
  contract event per line, event-time order) plus ``scenario.json`` and ``ground_truth.json``.
  Byte-identical for the same scenario and seed (gzip is written with ``mtime=0``).
* :func:`training_rows` / :func:`write_training` — flat training rows (``ts``, features, slice
  columns, ``label``, ``score``) spread over several weeks of the same world *before* the serving
  start, so the reference mixes in the daily and weekly seasonality as real training data does.
  Rows carry the offline pipeline's values and the final (corrected) labels.
* :func:`batch_bytes` — orjson-encoded messages (single events or JSON-array batch envelopes)
  for benchmarks.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from detector.core.engine import gc_paused
from detector.sim.features import CHANNELS, REGIONS, TIERS
from detector.sim.generate import DOMAIN_TRAIN, generate_chunk, specs
from detector.sim.scenario import Scenario
from detector.sim.scenarios import get_scenario
from detector.sim.stream import TOPICS, cat_list, dict_maker, num_list, simulate, ts_values
from detector.sim.world import DEFAULT_START, World, intensity, rng_for, to_epoch_ms

__all__ = ["write_jsonl", "training_rows", "iter_training_rows", "write_training", "batch_bytes", "training_columns"]

_FLUSH = 20_000


def _open_write(path: Path, stack: ExitStack) -> IO[bytes]:
    raw = stack.enter_context(open(path, "wb"))
    if path.suffix == ".gz":
        return stack.enter_context(gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6))
    return raw


def write_jsonl(scenario: Scenario | str, out_dir: str | Path, seed: int | None = None, *,
                gzip_predictions: bool = False, ts_format: str | None = None) -> dict[str, Any]:
    """Write the scenario's three topics as JSONL files; returns ``{"paths": …, "counts": …}``."""
    sc = get_scenario(scenario) if isinstance(scenario, str) else scenario
    seed = sc.seed if seed is None else seed
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {t: out / f"{t}.jsonl" for t in TOPICS}
    if gzip_predictions:
        paths["predictions"] = out / "predictions.jsonl.gz"
    counts = dict.fromkeys(TOPICS, 0)
    dumps = orjson.dumps
    with ExitStack() as stack:
        files = {t: _open_write(p, stack) for t, p in paths.items()}
        bufs: dict[str, list[bytes]] = {t: [] for t in TOPICS}
        for _, topic, ev in simulate(sc, seed, ts_format=ts_format):
            buf = bufs[topic]
            buf.append(dumps(ev))
            if len(buf) >= _FLUSH:
                files[topic].write(b"\n".join(buf) + b"\n")
                counts[topic] += len(buf)
                buf.clear()
        for t, buf in bufs.items():
            if buf:
                files[t].write(b"\n".join(buf) + b"\n")
                counts[t] += len(buf)
    meta = sc.with_(seed=seed).to_dict()
    (out / "scenario.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    (out / "ground_truth.json").write_bytes(orjson.dumps(meta["ground_truth"], option=orjson.OPT_INDENT_2))
    return {"paths": {t: str(p) for t, p in paths.items()}, "counts": counts}


# --------------------------------------------------------------------------- training data


def training_columns(world: World | None = None) -> list[str]:
    """Column order of training rows."""
    nspecs, cspecs = specs(world or World())
    return ["ts", *(s.name for s in nspecs), *(s.name for s in cspecs), "region", "channel", "tier", "label", "score"]


def _training_times(rng: np.random.Generator, world: World, n: int, t0_ms: int, t1_ms: int) -> np.ndarray:
    """Exactly ``n`` sorted times on [t0, t1) following the seasonal traffic intensity."""
    bin_ms = 300_000
    starts = np.arange(t0_ms, t1_ms, bin_ms, dtype=np.int64)
    p = intensity((starts + bin_ms / 2) / 1000.0, world.tz_offset_hours)
    b = rng.choice(len(starts), size=n, p=p / p.sum())
    t = starts[b] + np.floor(rng.random(n) * bin_ms).astype(np.int64)
    return np.sort(np.minimum(t, t1_ms - 1))


def iter_training_rows(n: int, seed: int = 0, *, world: World | None = None, weeks: float = 4.0,
                       end: datetime | None = None, ts_format: str = "rfc3339") -> Iterator[list[dict[str, Any]]]:
    """Training rows in blocks of at most 50,000 (see :func:`training_rows`)."""
    world = world or World()
    end_ms = to_epoch_ms(end or DEFAULT_START)
    start_ms = end_ms - int(weeks * 7 * 86_400_000)
    sc = Scenario("training", world=world, start=(end or DEFAULT_START) - timedelta(weeks=weeks), hours=weeks * 168)
    t_all = _training_times(rng_for(seed, DOMAIN_TRAIN, 1 << 20, 0), world, int(n), start_ms, end_ms)
    nspecs, cspecs = specs(world)
    make = dict_maker(tuple(training_columns(world)))
    reg, chan, tier = (np.array(v, dtype=object) for v in (REGIONS, CHANNELS, TIERS))
    for idx, a in enumerate(range(0, len(t_all), 50_000)):
        t_ms = t_all[a:a + 50_000]
        ch = generate_chunk(sc, seed, idx, 0, 0, domain=DOMAIN_TRAIN, t_ms=t_ms)
        cols = [ts_values(t_ms, ts_format)]
        cols += [num_list(ch.world_num[s.name], s.decimals) for s in nspecs]
        cols += [cat_list(ch.world_cat[s.name], list(s.vocab)) for s in cspecs]
        cols += [reg[ch.ctx.region].tolist(), chan[ch.ctx.channel].tolist(), tier[ch.ctx.tier].tolist(),
                 ch.y.tolist(), ch.model_score.tolist()]
        with gc_paused():
            rows = list(map(make, *cols))
        yield rows


def training_rows(n: int, seed: int = 0, *, world: World | None = None, weeks: float = 4.0,
                  end: datetime | None = None, ts_format: str = "rfc3339") -> list[dict[str, Any]]:
    """``n`` flat training rows over ``weeks`` weeks ending at ``end`` (default: the serving start).

    >>> rows = training_rows(3, seed=1)
    >>> len(rows), list(rows[0])[:3], list(rows[0])[-5:]
    (3, ['ts', 'amount', 'n_tx_24h'], ['region', 'channel', 'tier', 'label', 'score'])
    """
    out: list[dict[str, Any]] = []
    for block in iter_training_rows(n, seed, world=world, weeks=weeks, end=end, ts_format=ts_format):
        out.extend(block)
    return out


def write_training(path: str | Path, n: int, seed: int = 0, *, world: World | None = None, weeks: float = 4.0,
                   end: datetime | None = None) -> Path:
    """Write training rows as CSV (``.csv[.gz]``, empty cell = missing) or JSONL (``.jsonl[.gz]``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if not name.endswith((".csv", ".jsonl")):
        raise ValueError(f"write_training: {path} must end with .csv, .jsonl, .csv.gz or .jsonl.gz")
    columns = training_columns(world)
    with ExitStack() as stack:
        f = _open_write(path, stack)
        if name.endswith(".csv"):
            text = stack.enter_context(io.TextIOWrapper(f, encoding="utf-8", newline=""))
            w = csv.writer(text, lineterminator="\n")
            w.writerow(columns)
            for block in iter_training_rows(n, seed, world=world, weeks=weeks, end=end):
                w.writerows(r.values() for r in block)
            text.flush()
        else:
            for block in iter_training_rows(n, seed, world=world, weeks=weeks, end=end):
                f.write(b"\n".join(map(orjson.dumps, block)) + b"\n")
    return path


# --------------------------------------------------------------------------- benchmark messages


def batch_bytes(scenario: Scenario | str = "stable", seed: int | None = None, *, n_events: int | None = None,
                batch_size: int = 1000, topic: str = "predictions", keyed: bool = False,
                rate_per_hour: float | None = None) -> list[Any]:
    """orjson-encoded messages of one topic, as a producer would send them.

    ``batch_size`` <= 1: one JSON object per message; otherwise a JSON array (batch envelope) of up
    to ``batch_size`` events. ``keyed=True`` returns ``(key, value)`` pairs with the (first)
    ``prediction_id`` as key. ``n_events`` caps the number of events (the scenario is cut there).

    >>> msgs = batch_bytes(get_scenario("stable", rate_per_hour=200, hours=2), n_events=10, batch_size=4)
    >>> len(msgs), len(orjson.loads(msgs[0]))
    (3, 4)
    """
    sc = get_scenario(scenario, rate_per_hour=rate_per_hour) if isinstance(scenario, str) else scenario
    size = max(1, batch_size)
    dumps = orjson.dumps
    out: list[Any] = []
    batch: list[dict[str, Any]] = []
    left = math.inf if n_events is None else n_events

    def flush() -> None:
        if size == 1:
            values = list(map(dumps, batch))
            out.extend(zip([e["prediction_id"].encode() for e in batch], values, strict=True) if keyed else values)
        else:
            v = dumps(batch)
            out.append((batch[0]["prediction_id"].encode(), v) if keyed else v)
        batch.clear()

    for _, _, ev in simulate(sc, seed, topics=(topic,)):
        if left <= 0:
            break
        batch.append(ev)
        left -= 1
        if len(batch) >= size:
            flush()
    if batch:
        flush()
    return out


def training_table(n: int, seed: int = 0, *, world: World | None = None, weeks: float = 4.0) -> dict[str, np.ndarray]:
    """Training rows as typed columns, ready for :func:`detector.core.reference.build.build_reference`:
    float64 (NaN = missing) for numeric columns, object arrays of str/None for the rest.

    >>> cols = training_table(200, seed=1)
    >>> cols["amount"].dtype.kind, cols["country"].dtype.kind, len(cols["ts"])
    ('f', 'O', 200)
    """
    rows = training_rows(n, seed, world=world, weeks=weeks)
    cols: dict[str, np.ndarray] = {}
    for c in training_columns(world):
        vals = [r.get(c) for r in rows]
        if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in vals):
            cols[c] = np.array([np.nan if v is None else float(v) for v in vals])
        else:
            cols[c] = np.array([None if v is None else str(v) for v in vals], dtype=object)
    return cols
