"""Read a training table (CSV, JSON lines, JSON array or Parquet; optionally gzipped) in chunks of columns.

This is the I/O shell in front of :mod:`detector.core.reference.build` / :mod:`detector.core.reference.streamed`:

>>> t = read_table("train.csv")                                      # doctest: +SKIP
>>> t.n_rows, sorted(t.columns)                                      # doctest: +SKIP
(1000000, ['amount', 'country', 'y'])
>>> for start, cols, slices in TableReader("huge.csv.gz").chunks():   # doctest: +SKIP
...     profiler.update(start, cols, slices)                         # bounded memory

Column types
    Numeric columns are ``float64`` arrays with NaN for missing values; text columns are
    ``dtype=object`` arrays holding ``str`` or ``None``.

    * CSV/TSV (:mod:`detector.io.csvread`): a column is numeric when every non-missing value
      parses as a float. The missing tokens are the empty string, ``NA``, ``N/A``, ``null``,
      ``None`` and ``NaN`` (any case, surrounding blanks ignored). Names in ``text_columns`` are
      always kept as exact text, and so is a column holding a zero-padded numeral (a zip code
      ``"01234"`` keeps its leading zero). Read by Arrow's
      streaming CSV reader when pyarrow is installed, else by the csv module: same records, same types.
    * JSON (:mod:`detector.io.jsonread`): a column is numeric when every non-null value is a
      JSON number or boolean (``true``/``false`` -> 1/0). As soon as a column holds a string (or a
      nested object/list) it is text; numbers in a text column take their string form (``1234``,
      ``12.5``) and nested values their JSON text. The missing tokens above count as missing in
      strings too.
    * Parquet (:mod:`detector.io.parquetread`): by Arrow type (integers, floats, decimals, booleans ->
      numeric; strings, dictionaries, timestamps/dates (ISO text) and nested types (JSON text) -> text).

    A chunk's column is typed from that chunk; a column that is numeric in early chunks and text
    later (:attr:`TableReader.flipped` tells) is read again as text by :func:`read_table` (the
    numbers' exact spelling, ``"01234"``, is gone from the numeric chunks).

skewwatch prediction events
    A JSON row with a ``features`` object is a skewwatch event: each feature becomes a column,
    each key of its ``slices`` object becomes a column, and every other top-level field
    (``score``, ``label``, ``ts``, ``model`` ...) stays a column of its own.
    :attr:`Table.feature_columns` / :attr:`Table.slice_columns` record which columns came from
    ``features`` / ``slices`` so callers can tell features from event metadata. A line may also
    hold a JSON array of such objects (the batch envelope), and a ``.json`` file may be one JSON
    array (or one object). Parquet ``features``/``slices`` struct columns work the same way.

Memory: :class:`TableReader` holds one chunk (CSV: one Arrow block or :data:`CHUNK_ROWS` rows;
JSON lines and Parquet: :data:`CHUNK_ROWS` rows) -- except a ``.json`` file that is one document,
and a gzipped Parquet file, which is unpacked to a temporary file first. :func:`read_table` holds
the whole table as columns. Every problem raises :class:`TableError` naming the file, the line
where relevant, what is wrong and how to fix it.
"""

from __future__ import annotations

import gc
import gzip
import itertools
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.core.reference.build import MISSING_TOKENS
from detector.io.csvread import CHUNK_ROWS, CsvFile, TableError, csv_values, is_gzip
from detector.io.jsonread import JsonRows, text_array
from detector.io.parquetread import PARQUET_HINT, arrow_to_numpy, parquet_rows, parquet_source

__all__ = [
    "CHUNK_ROWS",
    "MISSING_TOKENS",
    "SUPPORTED_SUFFIXES",
    "Table",
    "TableError",
    "TableReader",
    "read_table",
]

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")


@dataclass
class Table:
    """Columns of a training table: ``float64`` (NaN = missing) or ``object`` (str/None) arrays."""

    columns: dict[str, np.ndarray]
    n_rows: int
    path: Path
    format: str = ""  # "csv", "tsv", "jsonl", "json" or "parquet"
    feature_columns: list[str] | None = None  # columns from events' `features` objects (else None)
    slice_columns: list[str] | None = None  # columns from events' `slices` objects (else None)

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    @property
    def is_events(self) -> bool:
        """True when the rows were skewwatch prediction events (had a ``features`` object)."""
        return self.feature_columns is not None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns


# ----------------------------------------------------------------------------- the chunked reader
class TableReader:
    """A training table as chunks of typed columns: ``for start, columns, slice_columns in reader.chunks()``.

    ``columns`` keeps only those columns (a missing one is an error listing the available ones);
    ``text_columns`` are kept as exact text even when every value looks like a number.
    Progress: :meth:`position` against :attr:`size` (bytes of the file as stored, compressed
    ones for ``.gz``; rows for Parquet, :attr:`unit` says which).
    """

    def __init__(
        self, path: str | Path, columns: Sequence[str] | None = None, *, text_columns: Iterable[str] = (),
        arrow: bool | None = None,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.format = _format_of(self.path)
        _check_readable(self.path)
        self.gz = is_gzip(self.path)
        self.want = list(dict.fromkeys(columns)) if columns is not None else None
        self.force_text = frozenset(text_columns)
        self.arrow = arrow
        self.rows = 0  # rows read so far
        self.feature_columns: list[str] | None = None
        self.slice_columns: list[str] | None = None
        self.reader = ""  # "arrow", "csv", "json" or "parquet" once reading started
        self._source: Any = None
        self._seen_kinds: dict[str, set[str]] = {}
        if self.format == "parquet":
            self.size, self.unit = parquet_rows(self.path, self.gz), "rows"
        else:
            self.size, self.unit = self.path.stat().st_size, "B"

    @property
    def is_events(self) -> bool:
        return self.feature_columns is not None

    @property
    def flipped(self) -> list[str]:
        """Columns that were numeric in some chunk and text in another (read them again as text)."""
        return [n for n, kinds in self._seen_kinds.items() if {"num", "O"} <= kinds]

    def position(self) -> int:
        if self.format == "parquet":
            return self.rows
        return self._source.position() if self._source is not None else 0

    def chunks(self) -> Iterator[tuple[int, dict[str, np.ndarray], list[str]]]:
        """``(first row, {column: values}, slice columns so far)`` chunk by chunk."""
        with _errors(self.path):
            gc_was_enabled = gc.isenabled()
            gc.disable()  # millions of short-lived strings/lists: the cyclic GC would dominate the run time
            try:
                for start, n, cols in self._chunks(self.want, self.force_text):
                    for name, a in cols.items():
                        kinds = self._seen_kinds.setdefault(name, set())
                        if a.dtype.kind == "O":
                            kinds.add("O")
                        elif "num" not in kinds and not np.isnan(a).all():
                            kinds.add("num")
                    self.rows = start + n
                    yield start, cols, list(self.slice_columns or [])
            finally:
                if gc_was_enabled:
                    gc.enable()

    def reread_as_text(self, names: Sequence[str]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Columns ``names`` again, from the first row, as exact text (after a type flip)."""
        with _errors(self.path):
            for start, _n, cols in self._chunks(list(names), frozenset(names), again=True):
                yield start, cols

    # ------------------------------------------------------------------ per format
    def _chunks(
        self, want: list[str] | None, force_text: frozenset[str], again: bool = False
    ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        """``(first row, rows, {column: values})`` chunk by chunk, for every format."""
        if self.format in ("csv", "tsv"):
            yield from self._csv(want, force_text, again)
        elif self.format in ("jsonl", "json"):
            src = JsonRows(self.path, self.gz, self.format)
            if not again:
                self._source, self.reader = src, "json"
            wanted = set(want) if want is not None else None
            for start, n, cols in src.chunks(CHUNK_ROWS, wanted, force_text):
                if src.flatten.events and not again:
                    self.feature_columns = list(src.flatten.features)
                    self.slice_columns = list(src.flatten.slices)
                yield start, n, cols
            if want is not None and not again:
                missing = [c for c in want if c not in self._seen_kinds]
                if missing:
                    raise TableError(_missing_columns_message(self.path, missing, list(self._seen_kinds)))
        else:
            yield from self._parquet(want)

    def _csv(
        self, want: list[str] | None, force_text: frozenset[str], again: bool
    ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        src = CsvFile(self.path, "\t" if self.format == "tsv" else ",", arrow=self.arrow)
        if not again:
            self._source = src
        names = src.names
        if want is not None:
            missing = [c for c in want if c not in names]
            if missing:
                raise TableError(_missing_columns_message(self.path, missing, names))
        selected = [i for i, n in enumerate(names) if want is None or n in set(want)]
        text = set(force_text)
        for start, _line, cols in src.chunks(selected):
            if not again:
                self.reader = src.reader_used
            out = {}
            for i, col in zip(selected, cols, strict=True):
                values = csv_values(col, names[i] in text)
                if values.dtype.kind == "O":
                    text.add(names[i])  # once text, always text: skip the float attempts from now on
                out[names[i]] = values
            yield start, len(cols[0]), out

    def _parquet(self, want: list[str] | None) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise TableError(f"{self.path}: {PARQUET_HINT}") from exc
        self.reader = "parquet"
        with parquet_source(self.path, self.gz) as source:
            try:
                pf = pq.ParquetFile(source)
            except (pa.ArrowException, OSError) as exc:
                raise TableError(f"{self.path}: not a readable Parquet file ({exc}); check the file or its suffix") from exc
            top = pf.schema_arrow.names
            nested = {n for n in ("features", "slices") if n in top and pa.types.is_struct(pf.schema_arrow.field(n).type)}
            read_cols = None
            if want is not None and not nested:
                missing = [c for c in want if c not in top]
                if missing:
                    raise TableError(_missing_columns_message(self.path, missing, list(top)))
                read_cols = want
            feature_cols: dict[str, None] = {}
            slice_cols: dict[str, None] = {}
            start = 0
            try:
                for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=read_cols):
                    out: dict[str, np.ndarray] = {}
                    for name, arr in zip(batch.schema.names, batch.columns, strict=True):
                        if name in nested:
                            target = feature_cols if name == "features" else slice_cols
                            for child_field, child in zip(arr.type, arr.flatten(), strict=True):
                                target.setdefault(child_field.name, None)
                                out[child_field.name] = arrow_to_numpy(pa, child)
                        else:
                            out[name] = arrow_to_numpy(pa, arr)
                    if "features" in nested:
                        self.feature_columns, self.slice_columns = list(feature_cols), list(slice_cols)
                    if want is not None:
                        out = {c: v for c, v in out.items() if c in want}
                    yield start, batch.num_rows, out
                    start += batch.num_rows
            except pa.ArrowException as exc:
                raise TableError(f"{self.path}: cannot read the Parquet data ({exc})") from exc


# ----------------------------------------------------------------------------- whole tables
def read_table(
    path: str | Path,
    columns: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    text_columns: Iterable[str] = (),
    arrow: bool | None = None,
) -> Table:
    """Read ``path`` into a :class:`Table` (every row in memory: see :class:`TableReader` for streaming).

    ``columns`` keeps only those columns (a missing one is an error listing the available ones);
    ``progress(rows_done)`` is called after every chunk; ``text_columns`` are kept as exact text
    even when every value looks like a number.
    """
    reader = TableReader(path, columns, text_columns=text_columns, arrow=arrow)
    report = progress or (lambda _n: None)
    acc = _Columns()
    n_rows = 0
    for start, cols, _slices in reader.chunks():
        for name, a in cols.items():
            acc.add(name, start, a)
        n_rows = reader.rows
        report(n_rows)
    if n_rows == 0:
        raise TableError(f"{reader.path}: no data rows; the file is empty or has only a header - point --data at the training data")
    table = acc.finish(n_rows)
    flipped = reader.flipped
    if flipped:
        again = _Columns()
        for start, cols in reader.reread_as_text(flipped):
            for name, a in cols.items():
                again.add(name, start, a)
        table.update(again.finish(n_rows))
    if reader.want is not None:
        missing = [c for c in reader.want if c not in table]
        if missing:
            raise TableError(_missing_columns_message(reader.path, missing, list(table)))
        table = {c: table[c] for c in reader.want}
    return Table(
        columns=table, n_rows=n_rows, path=reader.path, format=reader.format,
        feature_columns=reader.feature_columns, slice_columns=reader.slice_columns,
    )  # fmt: skip


# ----------------------------------------------------------------------------- helpers: files
def _format_of(p: Path) -> str:
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suf = suffixes[-1] if suffixes else ""
    fmt = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}
    if suf not in fmt:
        raise TableError(
            f"{p}: unsupported file type {suf or '(no suffix)'!r}; use one of "
            + ", ".join(SUPPORTED_SUFFIXES)
            + " (optionally gzipped, e.g. .csv.gz)"
        )
    return fmt[suf]


def _check_readable(p: Path) -> None:
    if not p.exists():
        raise TableError(f"{p}: file not found; check the --data path")
    if p.is_dir():
        raise TableError(f"{p}: is a directory, not a file; point --data at one file")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise TableError(f"cannot read {p}: {exc.strerror or exc}; check the file permissions") from exc


@contextmanager
def _errors(p: Path) -> Iterator[None]:
    """Low-level read failures -> one TableError naming the file and the fix."""
    try:
        yield
    except TableError:
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise TableError(f"{p}: the gzip data is truncated or corrupt ({exc}); re-create or re-download the file") from exc
    except UnicodeDecodeError as exc:
        raise TableError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-export the file as UTF-8") from exc
    except OSError as exc:
        raise TableError(f"cannot read {p}: {exc.strerror or exc}; check the path and permissions") from exc


def _missing_columns_message(p: Path, missing: list[str], available: list[str]) -> str:
    shown = ", ".join(available[:50]) + (f", ... ({len(available)} in all)" if len(available) > 50 else "")
    what = "column" if len(missing) == 1 else "columns"
    return f"{p}: no {what} {', '.join(repr(m) for m in missing)}; available columns: {shown}"


# ----------------------------------------------------------------------------- column assembly
class _Columns:
    """Chunked column parts -> whole columns, filling gaps (absent keys) with missing values."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[int, np.ndarray]]] = {}

    def add(self, name: str, start: int, values: np.ndarray) -> None:
        self.parts.setdefault(name, []).append((start, values))

    def finish(self, n_rows: int) -> dict[str, np.ndarray]:
        cols: dict[str, np.ndarray] = {}
        for name, parts in self.parts.items():
            text = any(a.dtype.kind == "O" for _, a in parts)
            if len(parts) == 1 and parts[0][0] == 0 and len(parts[0][1]) == n_rows:
                a = parts[0][1]
                cols[name] = a if not text or a.dtype.kind == "O" else _floats_to_text(a)
                continue
            contiguous = [start for start, _ in parts] == list(
                itertools.accumulate((len(a) for _, a in parts[:-1]), initial=0)
            ) and parts[-1][0] + len(parts[-1][1]) == n_rows
            if contiguous:
                cols[name] = np.concatenate(
                    [_floats_to_text(a) if text and a.dtype.kind == "f" else a for _, a in parts]
                )
                continue
            if text:
                out = np.full(n_rows, None, dtype=object)
            else:
                out = np.full(n_rows, np.nan, dtype=np.float64)
            for start, a in parts:
                out[start : start + len(a)] = _floats_to_text(a) if text and a.dtype.kind == "f" else a
            cols[name] = out
        return cols


def _floats_to_text(a: np.ndarray) -> np.ndarray:
    return text_array(a.tolist())
