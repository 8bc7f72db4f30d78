"""Replay: drive the core over logged traffic, offline, in event-time order (``skewwatch replay``,
``skewwatch report`` and the replay benchmark run it).

Prediction lines are read in chunks and handed to the same :class:`~detector.core.engine.Engine`
the sidecar uses; label and offline-feature lines are interleaved by their timestamps (each
file is read lazily, so weeks of traffic stream through in bounded memory). Bad lines never
stop the replay: they are counted by reason, the first few are reported with their line
numbers, and all of them can be written to a dead-letter file (``--dlq-out``).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO, Any

import orjson

from detector.config import Config, load_references
from detector.core.engine import Engine
from detector.core.inputs.events import EventError
from detector.core.inputs.timeparse import parse_timestamps
from detector.core.outcomes.counterexamples import library_of
from detector.core.reference.profile import Reference, ReferenceError
from detector.io.eventrows import EventFile, Kind
from detector.progress import progress_bar

__all__ = ["Replay", "UsageError", "build_engine", "open_lines"]

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
        if features and eng.outcomes is not None:
            eng.outcomes.parity.enabled = True  # an offline feed is coming: retain served features from the start
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
    from detector.core.outcomes.monitor import attach_outcomes

    attach_outcomes(eng, cfg)
    from detector.core.checks.adoption import attach_adoption

    attach_adoption(eng, cfg)
    return eng
