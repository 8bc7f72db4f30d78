"""``skewwatch replay``: drive the core over logged traffic, offline, in event-time order.

Prediction lines are read in chunks and handed to the same :class:`~detector.core.engine.Engine`
the sidecar uses; label and offline-feature lines are interleaved by their timestamps (each
file is read lazily, so weeks of traffic stream through in bounded memory). Bad lines never
stop the replay: they are counted by reason, the first few are reported with their line
numbers, and all of them can be written to a dead-letter file (``--dlq-out``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import time
from pathlib import Path
from typing import IO, Any

import orjson

from detector.progress import progress_bar
from detector.config import Config, ConfigError, load_config, load_references
from detector.core.counterexamples import library_of
from detector.core.engine import Engine
from detector.core.events import EventError
from detector.core.reference import Reference, ReferenceError
from detector.core.settings import parse_duration
from detector.core.timeparse import parse_timestamps
from detector.io.eventrows import EventFile, Kind

__all__ = ["add_arguments", "run", "Replay", "open_lines"]

CHUNK = 20_000


class UsageError(ValueError):
    pass


def open_lines(path: str | Path) -> IO[bytes]:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such file")
    if p.is_dir():
        raise UsageError(f"{p} is a directory; pass a JSONL file")
    try:
        f = p.open("rb")
        head = f.read(2)
        f.seek(0)
    except OSError as exc:
        raise UsageError(f"cannot read {p}: {exc.strerror or exc}") from exc
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f)  # type: ignore[return-value]
    return io.BufferedReader(f) if not isinstance(f, io.BufferedReader) else f


Chunk = tuple[list[int], list[bytes]]  # (line or row number of each record, the raw records)


def _event_ts(lines: list[bytes]) -> list[float]:
    """Event time of each record (-inf when it has none: such lines go through at once and the
    engine reports them)."""
    ts: list[Any] = []
    for ln in lines:
        try:
            v = orjson.loads(ln)
            ts.append(v.get("ts") if type(v) is dict else None)
        except orjson.JSONDecodeError:
            ts.append(None)
    arr = parse_timestamps(ts)
    return [float("-inf") if x != x else x for x in arr.tolist()]


class _Side:
    """A lazily read, timestamp-ordered side stream (labels or offline features)."""

    def __init__(self, path: str | None, kind: Kind = "labels") -> None:
        self.it = EventFile(path, kind).chunks(5000) if path else None
        self.pending: list[bytes] = []
        self.nums: list[int] = []
        self.ts: list[float] = []
        self.pos = 0
        self.done = path is None

    def take_until(self, t: float) -> Chunk:
        nums: list[int] = []
        out: list[bytes] = []
        while True:
            while self.pos < len(self.pending):
                if self.ts[self.pos] > t:
                    return nums, out
                out.append(self.pending[self.pos])
                nums.append(self.nums[self.pos])
                self.pos += 1
            if self.done or self.it is None:
                return nums, out
            try:
                self.nums, self.pending = next(self.it)
            except StopIteration:
                self.done = True
                return nums, out
            self.pos = 0
            self.ts = _event_ts(self.pending)


class Replay:
    """Run a replay; results land in ``alerts`` and ``errors``."""

    def __init__(self, engine: Engine, alerts_out: IO[bytes] | None, dlq_out: IO[bytes] | None = None,
                 progress: bool = False, counterexamples_out: IO[bytes] | None = None) -> None:
        self.engine = engine
        self.alerts_out = alerts_out
        self.counterexamples_out = counterexamples_out
        self.counterexamples = 0
        self.dlq_out = dlq_out
        self.progress = progress
        self.alert_count: dict[str, int] = {}
        self.first_errors: list[str] = []
        self.lines = 0

    def _emit(self, alerts: list[Any]) -> None:
        for a in alerts:
            d = a.to_dict()
            key = f"{d['kind']} ({d['state']})"
            self.alert_count[key] = self.alert_count.get(key, 0) + 1
            if self.alerts_out is not None:
                self.alerts_out.write(orjson.dumps(d) + b"\n")
        lib = library_of(self.engine)
        for rec in lib.drain() if lib is not None else []:
            self.counterexamples += 1
            if self.counterexamples_out is not None:
                self.counterexamples_out.write(orjson.dumps(rec) + b"\n")

    def _errors(self, source: str, nums: list[int], errors: list[EventError]) -> None:
        for e in errors:
            where = f"{source}:{nums[e.index]}" if 0 <= e.index < len(nums) else source
            if e.item >= 0:
                where += f" item {e.item}"
            if len(self.first_errors) < 5:
                self.first_errors.append(f"{where}: {e.reason}: {e.detail}")
            if self.dlq_out is not None:
                self.dlq_out.write(orjson.dumps({"source": where, **e.to_dict(), "payload": e.raw.decode("utf-8", "replace")[:2000]}) + b"\n")

    def run(self, predictions: str, labels: str | None = None, features: str | None = None) -> None:
        eng = self.engine
        lab, fea = _Side(labels, "labels"), _Side(features, "features")
        src = EventFile(predictions, "predictions", _slice_names(eng))
        bar = progress_bar(src.size, src.unit, "replay", quiet=not self.progress)
        for nums, lines in src.chunks(CHUNK):
            bar.update_to(src.position())
            self.lines += len(lines)
            self._errors(predictions, nums, eng.ingest_predictions(lines))
            hw = eng.high_water
            for side, path, ingest in ((lab, labels, eng.ingest_labels), (fea, features, eng.ingest_features)):
                snums, batch = side.take_until(hw)
                if batch:
                    self._errors(str(path), snums, ingest(batch))
            self._emit(eng.advance())
            bar.set_postfix_str(f"{self.lines:,} predictions, {sum(self.alert_count.values())} alerts", refresh=False)
        for side, path, ingest in ((lab, labels, eng.ingest_labels), (fea, features, eng.ingest_features)):
            snums, rest = side.take_until(float("inf"))
            if rest:
                self._errors(str(path), snums, ingest(rest))
        self._emit(eng.flush())
        bar.update_to(src.size)
        bar.close()


def _slice_names(eng: Engine) -> list[str]:
    """Slice dimensions of the references: such columns of a flat table are slices, not features."""
    refs = [*eng.references.values(), eng.default_reference]
    return sorted({d for r in refs if r is not None for d in (r.slices or {})})


# --------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", help="reference profile (skewwatch baseline --out); applies to every model")
    p.add_argument("--predictions", required=True,
                   help="prediction events: JSONL, or a flat CSV/TSV/Parquet table (one column per feature); may be .gz")
    p.add_argument("--labels", help="label events: JSONL, CSV/TSV or Parquet (prediction_id, ts, label)")
    p.add_argument("--features", help="offline feature events: JSONL, CSV/TSV or Parquet")
    p.add_argument("--config", help="skewwatch YAML config (models, detector settings)")
    p.add_argument("--window", help="window length, e.g. 5m or 1h (overrides the config)")
    p.add_argument("--alerts-out", help="write the alert stream here (JSONL); default: stdout summary only")
    p.add_argument("--dlq-out", help="write rejected events with reasons here (JSONL)")
    p.add_argument("--counterexamples-out",
                   help="write the worst false positives / negatives of every matured cohort here (JSONL; needs --labels)")
    p.add_argument("--metrics-out", help="write the final Prometheus text exposition here")
    p.add_argument("--snapshot-out", help="write the engine state here (for `skewwatch report`)")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")


def build_engine(cfg: Config, reference: str | None, base: Path | None) -> Engine:
    refs, default = load_references(cfg, base)
    if reference:
        try:
            default = Reference.load(reference)
        except ReferenceError as exc:
            raise UsageError(str(exc)) from exc
    if not refs and default is None:
        raise UsageError("no reference: pass --reference REF.json (from `skewwatch baseline`) or list models in --config")
    eng = Engine(cfg.detector, refs, default)
    from detector.core.outcomes import attach_outcomes

    attach_outcomes(eng, cfg)
    from detector.core.adoption import attach_adoption

    attach_adoption(eng, cfg)
    return eng


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
