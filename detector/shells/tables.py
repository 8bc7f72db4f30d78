"""Read a training table (CSV, JSON lines, JSON array or Parquet; optionally gzipped) into columns.

This is the I/O shell in front of :func:`detector.core.profile.build_reference`:

>>> t = read_table("train.csv")                                      # doctest: +SKIP
>>> t.n_rows, sorted(t.columns)                                      # doctest: +SKIP
(1000000, ['amount', 'country', 'y'])

Column types
    Numeric columns are ``float64`` arrays with NaN for missing values; text columns are
    ``dtype=object`` arrays holding ``str`` or ``None``.

    * CSV/TSV: a column is numeric when every non-missing value parses as a float. The missing
      tokens are the empty string, ``NA``, ``N/A``, ``null``, ``None`` and ``NaN`` (any case,
      surrounding blanks ignored). Names in ``text_columns`` are always kept as exact text, and so
      is a column holding a zero-padded numeral (``01234``, ``007``): a zip or branch code keeps
      its leading zero.
    * JSON: a column is numeric when every non-null value is a JSON number or boolean
      (``true``/``false`` -> 1/0). As soon as a column holds a string (or a nested object/list) it
      is text; numbers in a text column take their string form (``1234``, ``12.5``) and nested
      values their JSON text. The missing tokens above count as missing in strings too.
    * Parquet: by Arrow type (integers, floats, decimals, booleans -> numeric; strings,
      dictionaries, timestamps/dates (ISO text) and nested types (JSON text) -> text).

skewwatch prediction events
    A JSON row with a ``features`` object is a skewwatch event: each feature becomes a column,
    each key of its ``slices`` object becomes a column, and every other top-level field
    (``score``, ``label``, ``ts``, ``model`` ...) stays a column of its own.
    :attr:`Table.feature_columns` / :attr:`Table.slice_columns` record which columns came from
    ``features`` / ``slices`` so callers can tell features from event metadata. A line may also
    hold a JSON array of such objects (the batch envelope), and a ``.json`` file may be one JSON
    array (or one object).

Large files are read in chunks of :data:`CHUNK_ROWS` rows; ``progress(rows_done)`` is called after
each chunk. Every problem raises :class:`TableError` naming the file, the line where relevant,
what is wrong and how to fix it.
"""

from __future__ import annotations

import csv
import gc
import gzip
import io
import itertools
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from detector.core.profile import MISSING_TOKENS, to_text

__all__ = [
    "CHUNK_ROWS",
    "MISSING_TOKENS",
    "SUPPORTED_SUFFIXES",
    "Table",
    "TableError",
    "read_table",
]

CHUNK_ROWS = 65_536
SUPPORTED_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json", ".parquet")

_PARQUET_HINT = "reading parquet needs pyarrow: pip install 'skewwatch[parquet]'"


class TableError(ValueError):
    """The training table cannot be read; the message names the file, the problem and the fix."""


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


# ----------------------------------------------------------------------------- public entry point
def read_table(
    path: str | Path,
    columns: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    *,
    text_columns: Iterable[str] = (),
) -> Table:
    """Read ``path`` into a :class:`Table`.

    ``columns`` keeps only those columns (a missing one is an error listing the available ones);
    ``progress(rows_done)`` is called after every chunk; ``text_columns`` are kept as exact text
    even when every value looks like a number.
    """
    p = Path(path)
    fmt = _format_of(p)
    _check_readable(p)
    gz = _is_gzip(p)
    want = list(dict.fromkeys(columns)) if columns is not None else None
    force_text = frozenset(text_columns)
    report = progress or (lambda _n: None)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived lists/tuples: the cyclic GC would dominate the run time
    try:
        if fmt in ("csv", "tsv"):
            table = _read_csv(p, gz, fmt, want, force_text, report)
        elif fmt in ("jsonl", "json"):
            table = _read_json(p, gz, fmt, want, force_text, report)
        else:
            table = _read_parquet(p, gz, want, report)
    except TableError:
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise TableError(f"{p}: the gzip data is truncated or corrupt ({exc}); re-create or re-download the file") from exc
    except UnicodeDecodeError as exc:
        raise TableError(
            f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-export the file as UTF-8"
        ) from exc
    except OSError as exc:
        raise TableError(f"cannot read {p}: {exc.strerror or exc}; check the path and permissions") from exc
    finally:
        if gc_was_enabled:
            gc.enable()
    if table.n_rows == 0:
        raise TableError(f"{p}: no data rows; the file is empty or has only a header - point --data at the training data")
    if want is not None:
        missing = [c for c in want if c not in table.columns]
        if missing:
            raise TableError(_missing_columns_message(p, missing, table.names))
        table.columns = {c: table.columns[c] for c in want}
    return table


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


def _is_gzip(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


@contextmanager
def _open_binary(p: Path, gz: bool) -> Iterator[IO[bytes]]:
    f: IO[bytes] = gzip.open(p, "rb") if gz else open(p, "rb")
    try:
        yield f
    finally:
        f.close()


@contextmanager
def _open_text(p: Path, gz: bool) -> Iterator[IO[str]]:
    raw: IO[bytes] = gzip.open(p, "rb") if gz else open(p, "rb")
    f = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    try:
        yield f
    finally:
        f.close()


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

    def flipped(self) -> list[str]:
        """Columns that were numeric in some chunk with real values and text in another."""
        out = []
        for name, parts in self.parts.items():
            kinds = {a.dtype.kind for _, a in parts}
            if "O" in kinds and any(a.dtype.kind == "f" and not np.isnan(a).all() for _, a in parts):
                out.append(name)
        return out

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
    out = np.empty(len(a), dtype=object)
    out[:] = [to_text(v) for v in a.tolist()]
    return out


def _text_array(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = [to_text(v) for v in values]
    return out


# ----------------------------------------------------------------------------- CSV / TSV
def _zero_padded(col: np.ndarray) -> bool:
    """True when a value is a zero-padded numeral (``"01234"``, ``"007"``, not ``"0"`` or ``"0.5"``):
    codes (zip, branch, account prefixes), which a number cannot spell."""
    return any(map(_ZERO_PADDED.match, col.tolist()))


_ZERO_PADDED = re.compile(r"\s*[+-]?0\d")


def _csv_convert(col: np.ndarray, force_text: bool) -> np.ndarray:
    """One chunk of one CSV column (object array of str) -> float64, or object array of str/None."""
    if not force_text and _zero_padded(col):
        force_text = True
    if not force_text:
        try:
            return col.astype(np.float64)
        except ValueError:
            pass
        # the usual missing value is the empty string: a vectorised compare finds it
        filled = col.copy()
        filled[col == ""] = "nan"
        try:
            return filled.astype(np.float64)
        except ValueError:
            pass
        miss = _missing_mask(col.tolist())
        filled[miss] = "nan"
        try:
            return filled.astype(np.float64)
        except ValueError:
            pass
    else:
        miss = _missing_mask(col.tolist())
    out = col.copy()
    out[miss] = None
    return out


#: every upper/lower-case spelling of every missing token ("na", "Na", "nA", "NA", ...): 49 strings
_MISSING_SPELLINGS = frozenset(
    "".join(chars) for tok in MISSING_TOKENS for chars in itertools.product(*({c.lower(), c.upper()} for c in tok))
)


def _missing_mask(col: Sequence[str]) -> np.ndarray:
    """True where a text value is a missing token (C-level iteration: no per-value Python code)."""
    return np.fromiter(map(_MISSING_SPELLINGS.__contains__, map(str.strip, col)), dtype=bool, count=len(col))


def _read_csv(
    p: Path, gz: bool, fmt: str, want: list[str] | None, force_text: frozenset[str], report: Callable[[int], None]
) -> Table:
    delimiter = "\t" if fmt == "tsv" else ","
    acc = _Columns()
    n_rows = 0
    with _open_text(p, gz) as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise TableError(f"{p}: the file is empty (no header line, no rows); point --data at the training data") from None
        except csv.Error as exc:
            raise TableError(f"{p}:{reader.line_num}: cannot parse the header ({exc})") from exc
        names = [h.strip() or f"unnamed_{i}" for i, h in enumerate(header)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TableError(f"{p}:1: duplicate column name(s) {', '.join(map(repr, dupes))} in the header; rename them")
        ncols = len(names)
        if want is not None:
            missing = [c for c in want if c not in names]
            if missing:
                raise TableError(_missing_columns_message(p, missing, names))
            selected = [i for i, n in enumerate(names) if n in set(want)]
        else:
            selected = list(range(ncols))
        records = 0  # records read after the header, blank ones included (for line numbers)
        text = set(force_text)
        while True:
            try:
                rows = list(itertools.islice(reader, CHUNK_ROWS))
            except csv.Error as exc:
                raise TableError(
                    f"{p}:{reader.line_num}: CSV parse error ({exc}); check the quoting on that line"
                ) from exc
            if not rows:
                break
            lens = set(map(len, rows))
            if lens != {ncols}:
                keep = []
                for i, r in enumerate(rows):
                    if len(r) == ncols:
                        keep.append(r)
                    elif not r or (len(r) == 1 and not r[0].strip()):
                        continue  # blank line
                    else:
                        line = _csv_line_of_record(p, gz, delimiter, records + i)
                        raise TableError(
                            f"{p}:{line}: row has {len(r)} field(s) but the header has {ncols}; "
                            "quote values that contain the delimiter, or give every row the header's field count"
                        )
                records += len(rows)
                rows = keep
                if not rows:
                    continue
            else:
                records += len(rows)
            grid = np.empty((len(rows), ncols), dtype=object)  # rows x columns of str, built in C
            grid[:] = rows
            del rows
            for i in selected:
                values = _csv_convert(grid[:, i], names[i] in text)
                if values.dtype.kind == "O":
                    text.add(names[i])  # once text, always text: skip the float attempts from now on
                acc.add(names[i], n_rows, values)
            n_rows += len(grid)
            del grid
            report(n_rows)
    if n_rows == 0:
        return Table(columns={}, n_rows=0, path=p, format=fmt)
    columns = acc.finish(n_rows)
    flipped = acc.flipped()
    if flipped:
        # A column looked numeric in early chunks and turned out to be text later: the numbers'
        # exact spelling ("01234", "1.50") is gone, so read those columns again as text.
        again = _read_csv(p, gz, fmt, flipped, frozenset(flipped), lambda _n: None)
        columns.update(again.columns)
    return Table(columns=columns, n_rows=n_rows, path=p, format=fmt)


def _csv_line_of_record(p: Path, gz: bool, delimiter: str, k: int) -> int:
    """Physical line number (1-based) where data record ``k`` (0-based, after the header) ends."""
    with _open_text(p, gz) as f:
        reader = csv.reader(f, delimiter=delimiter)
        next(reader)
        for j, _ in enumerate(reader):
            if j == k:
                return reader.line_num
    return reader.line_num


# ----------------------------------------------------------------------------- JSON lines / JSON
_NUMERIC_TYPES = frozenset({int, float, bool, type(None)})


def _json_convert(values: list[Any], force_text: bool) -> np.ndarray:
    if not force_text and set(map(type, values)) <= _NUMERIC_TYPES:
        try:
            return np.array(values, dtype=np.float64)
        except (OverflowError, ValueError, TypeError):
            pass
    return _text_array(values)


class _EventFlattener:
    """Row dict -> flat dict; events' `features` / `slices` objects become columns."""

    def __init__(self) -> None:
        self.features: dict[str, None] = {}
        self.slices: dict[str, None] = {}
        self.events = False

    def __call__(self, obj: dict[str, Any], where: str) -> dict[str, Any]:
        if "features" not in obj and "slices" not in obj:
            return obj
        feats = obj.get("features")
        slices = obj.get("slices")
        if not isinstance(feats, dict | None) or not isinstance(slices, dict | None):
            return obj  # not skewwatch's `features`/`slices` objects: leave the row as it is
        flat = {k: v for k, v in obj.items() if k not in ("features", "slices")}
        for group, names in ((feats, self.features), (slices, self.slices)):
            if not isinstance(group, dict):
                continue
            for k, v in group.items():
                if k in flat and flat[k] != v:
                    raise TableError(
                        f"{where}: {k!r} appears both inside `features`/`slices` and as another field"
                        " with a different value; rename one of them"
                    )
                flat[k] = v
                if k not in names:
                    names[k] = None
        if isinstance(feats, dict):
            self.events = True
        return flat


def _read_json(
    p: Path, gz: bool, fmt: str, want: list[str] | None, force_text: frozenset[str], report: Callable[[int], None]
) -> Table:
    flatten = _EventFlattener()
    acc = _Columns()
    n_rows = 0
    wanted = set(want) if want is not None else None

    def flush(rows: list[dict[str, Any]]) -> None:
        nonlocal n_rows
        keys = dict.fromkeys(itertools.chain.from_iterable(rows))
        for k in keys:
            if wanted is not None and k not in wanted:
                continue
            acc.add(k, n_rows, _json_convert([r.get(k) for r in rows], k in force_text))
        n_rows += len(rows)
        report(n_rows)

    rows: list[dict[str, Any]] = []
    for where, obj in _json_objects(p, gz):
        rows.append(flatten(obj, where))
        if len(rows) >= CHUNK_ROWS:
            flush(rows)
            rows = []
    if rows:
        flush(rows)
    columns = acc.finish(n_rows)
    return Table(
        columns=columns,
        n_rows=n_rows,
        path=p,
        format=fmt,
        feature_columns=list(flatten.features) if flatten.events else None,
        slice_columns=list(flatten.slices) if flatten.events else None,
    )


def _json_objects(p: Path, gz: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (location, object) for every row object; lines may hold a batch (JSON array)."""
    with _open_binary(p, gz) as f:
        first = True
        for lineno, line in enumerate(f, 1):
            if first and lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            where = f"{p}:{lineno}"
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                if first and _looks_like_document(line):
                    yield from _json_document(p, gz)
                    return
                raise TableError(
                    f"{where}: malformed JSON ({_json_problem(line)}); every line must be one complete JSON object"
                ) from exc
            first = False
            if isinstance(obj, dict):
                yield where, obj
            elif isinstance(obj, list):
                for i, o in enumerate(obj):
                    if not isinstance(o, dict):
                        raise TableError(
                            f"{where}: item {i} of the JSON array is {_json_kind(o)}, not an object; "
                            "every row must be a JSON object"
                        )
                    yield where, o
            else:
                raise TableError(f"{where}: the line holds {_json_kind(obj)}, not a JSON object; every row must be a JSON object")


def _json_problem(line: bytes) -> str:
    """orjson's complaint about one line, positioned within that line."""
    try:
        orjson.loads(line.strip())
    except orjson.JSONDecodeError as exc:
        return f"{exc.msg} at column {exc.colno}" if exc.colno else exc.msg
    return "invalid JSON"


def _looks_like_document(line: bytes) -> bool:
    s = line.strip()
    return s in (b"[", b"{") or (s.startswith(b"[") and not s.endswith(b"]"))


def _json_document(p: Path, gz: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    with _open_binary(p, gz) as f:
        raw = f.read()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise TableError(
            f"{p}:{line}: malformed JSON ({exc}); the file must be one JSON array of objects or one object per line"
        ) from exc
    items = doc if isinstance(doc, list) else [doc]
    for i, o in enumerate(items):
        if not isinstance(o, dict):
            raise TableError(f"{p}: item {i} of the JSON array is {_json_kind(o)}, not an object; every row must be a JSON object")
        yield f"{p}: item {i}", o


def _json_kind(o: Any) -> str:
    if o is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}.get(
        type(o), type(o).__name__
    )


# ----------------------------------------------------------------------------- Parquet
def _read_parquet(p: Path, gz: bool, want: list[str] | None, report: Callable[[int], None]) -> Table:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise TableError(f"{p}: {_PARQUET_HINT}") from exc
    source: Any = p
    if gz:
        with gzip.open(p, "rb") as f:
            source = io.BytesIO(f.read())
    try:
        pf = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{p}: not a readable Parquet file ({exc}); check the file or its suffix") from exc
    top = pf.schema_arrow.names
    nested = {n for n in ("features", "slices") if n in top and pa.types.is_struct(pf.schema_arrow.field(n).type)}
    read_cols = None
    if want is not None and not nested:
        missing = [c for c in want if c not in top]
        if missing:
            raise TableError(_missing_columns_message(p, missing, list(top)))
        read_cols = want
    acc = _Columns()
    feature_cols: dict[str, None] = {}
    slice_cols: dict[str, None] = {}
    n_rows = 0
    try:
        for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=read_cols):
            for name, arr in zip(batch.schema.names, batch.columns, strict=True):
                if name in nested:
                    target = feature_cols if name == "features" else slice_cols
                    for child_field, child in zip(arr.type, arr.flatten(), strict=True):
                        target.setdefault(child_field.name, None)
                        acc.add(child_field.name, n_rows, _arrow_to_numpy(pa, child))
                else:
                    acc.add(name, n_rows, _arrow_to_numpy(pa, arr))
            n_rows += batch.num_rows
            report(n_rows)
    except pa.ArrowException as exc:
        raise TableError(f"{p}: cannot read the Parquet data ({exc})") from exc
    columns = acc.finish(n_rows)
    if want is not None:
        columns = {c: columns[c] for c in want if c in columns}
    return Table(
        columns=columns,
        n_rows=n_rows,
        path=p,
        format="parquet",
        feature_columns=list(feature_cols) if "features" in nested else None,
        slice_columns=list(slice_cols) if "features" in nested else None,
    )


def _arrow_to_numpy(pa: Any, arr: Any) -> np.ndarray:
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan)
    if pa.types.is_temporal(t):
        return _text_array([None if v is None else (v.isoformat() if hasattr(v, "isoformat") else str(v)) for v in arr.to_pylist()])
    return _text_array(arr.to_pylist())
