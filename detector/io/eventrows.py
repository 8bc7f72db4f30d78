"""Rows of a table (a DataFrame, CSV, Parquet) -> skewwatch events, and event files read in chunks.

The wire contract is JSON objects; people also keep predictions in flat tables. A row becomes an
event by these rules, the same for ``skewwatch replay`` on CSV/Parquet and for
:class:`detector.api.Monitor` on a DataFrame:

* the contract's top-level fields (``prediction_id``, ``model``, ``ts``, ``score``, ``decision``,
  ``latency_ms`` ... for predictions; ``label``, ``revision`` for labels; ``source`` for offline
  features) stay top-level;
* a ``features`` / ``slices`` column holding objects (JSON, Parquet structs, Python dicts) is
  taken as it is; ``features.amount`` / ``slices.region`` columns are nested by their prefix;
* a column named like one of the reference's slice dimensions (``slice_names``) is a slice;
* every other column is a feature (of predictions and offline feature events; ignored on labels).

Missing values (NaN, None, NaT, empty CSV cells and the tokens ``NA``/``null``/...) are left out
(a missing feature). CSV files go through :mod:`detector.io.csvread` (its csv-module
reader, which knows each record's physical line for dead-letter messages); a row with too few or
too many fields is padded or cut to the header's width. Timestamps (``datetime``, pandas ``Timestamp``) become RFC 3339 text, naive
ones read as UTC. CSV cells are typed one by one, independently of their neighbours: a number
unless it keeps a leading zero (``"01234"``) or is not one.

>>> [sorted(e.items()) for e in to_events([{"prediction_id": "a", "score": 0.5, "amount": 12.0,
...      "region": "eu", "slices.channel": "web", "country": float("nan")}], slice_names=["region"])]
[[('features', {'amount': 12.0}), ('prediction_id', 'a'), ('score', 0.5), ('slices', {'region': 'eu', 'channel': 'web'})]]
"""

from __future__ import annotations

import datetime as dt
import gzip
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import orjson

from detector.core.reference.build import MISSING_TOKENS
from detector.io.csvread import CsvFile

__all__ = ["EventFile", "Kind", "FORMATS", "to_events", "event_format"]

Kind = Literal["predictions", "labels", "features"]
FORMATS = ("jsonl", "csv", "tsv", "parquet")
_TOP = {
    "predictions": {"prediction_id", "model", "model_version", "ts", "score", "prediction", "predicted_class", "scores",
                    "decision", "threshold", "latency_ms", "fallback", "override", "baseline_decision"},
    "labels": {"prediction_id", "model", "ts", "label", "revision"},
    "features": {"prediction_id", "model", "ts", "source"},
}


def _plain(v: Any) -> Any:
    """A JSON-ready value, or ``None`` for a missing one."""
    if v is None or isinstance(v, str | bool | int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dt.datetime):
        if v != v:  # pandas NaT
            return None
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.UTC)
        return v.isoformat().replace("+00:00", "Z")
    if isinstance(v, dt.date):
        return v.isoformat()
    item = getattr(v, "item", None)  # numpy scalars
    if callable(item) and not isinstance(v, Mapping | list | tuple):
        try:
            return _plain(item())
        except (ValueError, TypeError):
            pass
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if getattr(v, "tolist", None) is not None:  # numpy arrays inside a cell
        return _plain(v.tolist())
    s = str(v)
    return None if s in ("NaT", "nan", "<NA>") else s


def to_events(rows: Iterable[Mapping[str, Any]], kind: Kind = "predictions",
              slice_names: Iterable[str] = (), defaults: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Events from row mappings (column -> value); ``defaults`` fill absent top-level fields."""
    top = _TOP[kind]
    dims = frozenset(slice_names)
    for row in rows:
        ev: dict[str, Any] = {}
        feats: dict[str, Any] = {}
        slices: dict[str, Any] = {}
        for k, raw in row.items():
            k = str(k)
            v = _plain(raw)
            if k in ("features", "slices") and isinstance(v, Mapping):
                (feats if k == "features" else slices).update(v)
            elif k.startswith("features."):
                feats[k[9:]] = v
            elif k.startswith("slices."):
                slices[k[7:]] = v
            elif k in top:
                if k == "prediction_id" and isinstance(v, int | float) and not isinstance(v, bool):
                    v = str(int(v)) if float(v).is_integer() else str(v)  # ids read back as numbers by a reader
                if v is not None:
                    ev[k] = v
            elif k in dims:
                slices[k] = v
            elif kind != "labels":
                feats[k] = v
        for k, v in (defaults or {}).items():
            ev.setdefault(k, v)
        feats = {k: v for k, v in feats.items() if v is not None}
        slices = {k: v for k, v in slices.items() if v is not None}
        if kind != "labels" and (feats or kind == "predictions"):
            ev["features"] = feats
        if slices and kind == "predictions":
            ev["slices"] = slices
        yield ev


def event_format(path: str | Path) -> str:
    """``jsonl``, ``csv``, ``tsv`` or ``parquet`` from the file name (``.gz`` allowed)."""
    p = Path(path)
    sfx = [s.lower() for s in p.suffixes]
    if sfx and sfx[-1] == ".gz":
        sfx = sfx[:-1]
    last = sfx[-1] if sfx else ""
    fmt = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
           ".parquet": "parquet"}.get(last, "jsonl")  # unknown suffix: JSON lines, as before
    return fmt


class EventFile:
    """One input file of events, read in chunks of encoded events with their first line/row number.

    ``size`` and ``position()`` measure progress: bytes of the file as stored (compressed when
    gzipped) or, for Parquet, rows. Memory is one chunk: nothing else of the file is held.
    """

    def __init__(self, path: str | Path, kind: Kind = "predictions", slice_names: Sequence[str] = ()) -> None:
        self.path = Path(path)
        self.kind = kind
        self.slice_names = list(slice_names)
        self.format = event_format(self.path)
        self._raw: IO[bytes] | None = None
        self._csv_file: CsvFile | None = None
        self._csv_done = False
        self._rows_done = 0
        if self.format == "parquet":
            pq = _pyarrow_parquet(self.path)
            self._pf = pq.ParquetFile(self.path)
            self.size, self.unit = int(self._pf.metadata.num_rows), "rows"
        else:
            self.size, self.unit = self.path.stat().st_size, "B"

    def position(self) -> int:
        if self.format == "parquet":
            return self._rows_done
        if self._csv_file is not None:
            return self._csv_file.position() or (self.size if self._csv_done else 0)
        try:
            return self._raw.tell() if self._raw is not None and not self._raw.closed else self.size
        except (OSError, ValueError):
            return 0

    def chunks(self, size: int) -> Iterator[tuple[list[int], list[bytes]]]:
        """``(line or row number of each event, encoded events)`` chunks of at most ``size`` events
        (blank JSONL lines are skipped, so the numbers are not always consecutive)."""
        if self.format == "parquet":
            yield from self._parquet(size)
            return
        if self.format in ("csv", "tsv"):
            yield from self._csv(size)
            return
        raw = self.path.open("rb")
        self._raw = raw
        try:
            head = raw.read(2)
            raw.seek(0)
            f: IO[bytes] = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw  # type: ignore[assignment]
            yield from _json_chunks(f, size)
        finally:
            raw.close()

    def _csv(self, size: int) -> Iterator[tuple[list[int], list[bytes]]]:
        """Records from the shared CSV reader with each record's physical line (so a dead-lettered
        row is named exactly, blank lines and quoted newlines counted); a ragged row is padded or
        cut to the header's width (missing values): a bad line must not stop a replay."""
        src = self._csv_file = CsvFile(self.path, "\t" if self.format == "tsv" else ",")
        names = src.names
        for _start, _line, cols in src.chunks(ragged="pad", lines=True):
            lists = [c.tolist() if isinstance(c, np.ndarray) else c.to_pylist() for c in cols]
            rows = list(zip(*lists, strict=True))
            nums = src.lines
            for i in range(0, len(rows), size):
                buf: list[bytes] = []
                where: list[int] = []
                for row, line in zip(rows[i : i + size], nums[i : i + size], strict=True):
                    typed = {k: _csv_value(v) for k, v in zip(names, row, strict=True)}
                    evs = [orjson.dumps(e) for e in to_events([typed], self.kind, self.slice_names)]
                    buf.extend(evs)
                    where.extend([line] * len(evs))
                yield where, buf
        self._csv_done = True

    def _parquet(self, size: int) -> Iterator[tuple[list[int], list[bytes]]]:
        for batch in self._pf.iter_batches(batch_size=size):
            first = self._rows_done + 1
            rows = batch.to_pylist()
            self._rows_done += len(rows)
            evs = [orjson.dumps(e, default=str) for e in to_events(rows, self.kind, self.slice_names)]
            yield list(range(first, first + len(evs))), evs


def _json_chunks(f: IO[bytes], size: int) -> Iterator[tuple[list[int], list[bytes]]]:
    buf: list[bytes] = []
    nums: list[int] = []
    for lineno, line in enumerate(f, 1):
        line = line.strip()
        if not line:
            continue
        buf.append(line)
        nums.append(lineno)
        if len(buf) >= size:
            yield nums, buf
            buf, nums = [], []
    if buf:
        yield nums, buf


def _csv_value(s: str | None) -> Any:
    """One CSV cell: missing, a number, or text (a leading zero keeps it text: zip codes, ids)."""
    if s is None:
        return None
    t = s.strip()
    if t.lower() in MISSING_TOKENS:
        return None
    if t and (t[0].isdigit() or t[0] in "+-.") and not (len(t) > 1 and t[0] == "0" and t[1].isdigit()):
        try:
            x = float(t)
        except ValueError:
            return s
        return int(x) if x.is_integer() and "." not in t and "e" not in t.lower() and abs(x) < 2**53 else x
    return s


def _pyarrow_parquet(p: Path) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ValueError(f"{p}: reading Parquet needs pyarrow: pip install 'skewwatch[parquet]'") from exc
    return pq
