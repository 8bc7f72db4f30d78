"""CSV/TSV files (optionally gzipped) read in chunks of columns: Arrow when installed, else the csv module.

One reader for ``skewwatch baseline`` (typed columns, :func:`csv_values`) and ``replay``'s flat
tables (:mod:`detector.io.eventrows`, cell by cell). Both readers give the same records:

* the header is the first record; blank header names become ``unnamed_<i>``; duplicates are an error;
* a data record must have the header's field count (``ragged="pad"``: short ones are padded with
  empty fields, long ones cut), blank lines are skipped, quoted fields may hold delimiters,
  doubled quotes and newlines; the text is UTF-8 (a byte-order mark is allowed).

With pyarrow the file is split and decoded by Arrow's multi-threaded streaming CSV reader, every
column as text, so the type rules stay ours; Arrow also parses numbers (it accepts a subset of
what Python's ``float()`` accepts and gives the same values, so the fast path cannot change a
decision). On anything Arrow rejects (a ragged row, invalid UTF-8 ...) the reader carries on from
the same record with the csv module, which names the line and the fix. Memory: one chunk.

Column types (:func:`csv_values`, the one place they are decided for training tables): a column
chunk is ``float64`` (NaN = missing) when every non-missing value parses as a float, else text
(``str``, ``None`` for missing). Missing tokens: the empty string, ``NA``, ``N/A``, ``null``,
``None``, ``NaN`` (any case, surrounding blanks ignored). A zero-padded numeral (``01234``, ``007``;
not ``0`` or ``0.5``) makes its column text: a number cannot spell it, so it is a code (zip,
branch, account prefix) whose leading zero must survive.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from detector.core.reference.build import MISSING_TOKENS

__all__ = ["CHUNK_ROWS", "CsvFile", "TableError", "csv_values", "have_arrow"]

CHUNK_ROWS = 65_536  # rows per chunk (Arrow blocks are joined up to at least this many rows)
#: bytes per Arrow block. Arrow's streaming reader keeps about 40 blocks read ahead whatever the
#: thread settings, so this is what bounds its memory (about 40 MiB); blocks are joined into chunks.
_ARROW_BLOCK = 1 << 20


class TableError(ValueError):
    """A table cannot be read; the message names the file, the problem and the fix."""


def have_arrow() -> bool:
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def is_gzip(p: Path) -> bool:
    with open(p, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


class CsvFile:
    """A CSV/TSV file's header (:attr:`names`) and its data records in chunks of columns.

    ``position()`` is how far into the file as stored (compressed bytes for ``.gz``) the reading
    has come, against ``size``; ``arrow=False`` forces the csv-module reader.
    """

    def __init__(self, path: str | Path, delimiter: str = ",", *, arrow: bool | None = None) -> None:
        self.path = Path(path)
        self.delimiter = delimiter
        self.gz = is_gzip(self.path)
        self.size = self.path.stat().st_size
        self.arrow = have_arrow() if arrow is None else arrow
        self.reader_used = ""  # "arrow" or "csv" once reading started
        self.lines: list[int] = []  # with chunks(lines=True): the last chunk's line number per record
        self._raw: Any = None
        with self._text() as f:
            reader = csv.reader(f, delimiter=delimiter)
            try:
                header = next(reader)
            except StopIteration:
                raise TableError(f"{self.path}: the file is empty (no header line, no rows); point --data at the data") from None
            except csv.Error as exc:
                raise TableError(f"{self.path}:{reader.line_num}: cannot parse the header ({exc})") from exc
            self.header_lines = reader.line_num
        self.names = [h.strip() or f"unnamed_{i}" for i, h in enumerate(header)]
        dupes = sorted({n for n in self.names if self.names.count(n) > 1})
        if dupes:
            raise TableError(f"{self.path}:1: duplicate column name(s) {', '.join(map(repr, dupes))} in the header; rename them")

    def position(self) -> int:
        try:
            return int(self._raw.tell()) if self._raw is not None and not self._raw.closed else 0
        except (OSError, ValueError):
            return 0

    def chunks(
        self, select: Sequence[int] | None = None, ragged: Literal["error", "pad"] = "error", lines: bool = False
    ) -> Iterator[tuple[int, int, list[Any]]]:
        """``(first record index, its line number, columns)``; a column is an Arrow string array
        or an object array of ``str``, in ``select`` order (default: every column).

        ``lines=True`` reads with the csv module, which knows every record's physical line: the
        chunk's line numbers are then :attr:`lines` (one per record, blank lines and quoted
        newlines counted)."""
        sel = list(range(len(self.names))) if select is None else list(select)
        if lines:
            yield from self._csv_chunks(sel, ragged, skip=0, lines=True)
            return
        done = 0
        if self.arrow and self.header_lines == 1 and sel:
            try:
                for first, line, cols in self._arrow_chunks(sel):
                    yield first, line, cols
                    done = first + len(cols[0])
                return
            except _ArrowFailed:
                pass  # the csv module goes on from the same record, and names the problem if there is one
        yield from self._csv_chunks(sel, ragged, skip=done)

    # ------------------------------------------------------------------ Arrow
    def _arrow_chunks(self, sel: list[int]) -> Iterator[tuple[int, int, list[Any]]]:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        self.reader_used = "arrow"
        ids = [f"c{i}" for i in range(len(self.names))]
        raw = pa.OSFile(str(self.path), "rb")
        self._raw = raw
        try:
            stream = pa.CompressedInputStream(raw, "gzip") if self.gz else raw
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(column_names=ids, skip_rows=1, block_size=_ARROW_BLOCK),
                parse_options=pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in ids}, include_columns=[ids[i] for i in sel],
                    strings_can_be_null=False, quoted_strings_can_be_null=False, null_values=[],
                ),
            )  # fmt: skip
            first, parts, rows = 0, [], 0
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    batch = None
                except (pa.ArrowException, OSError) as exc:  # ragged row, bad UTF-8, corrupt gzip ...
                    if parts:  # hand over what was read: the csv module carries on after it
                        yield first, first + 2, _joined(pa, parts)
                    raise _ArrowFailed(str(exc)) from exc
                if batch is not None and batch.num_rows:
                    parts.append(batch)
                    rows += batch.num_rows
                if parts and (batch is None or rows >= CHUNK_ROWS):
                    yield first, first + 2, _joined(pa, parts)
                    first, parts, rows = first + rows, [], 0
                if batch is None:
                    return
        except (pa.ArrowException, OSError) as exc:
            raise _ArrowFailed(str(exc)) from exc
        finally:
            raw.close()

    # ------------------------------------------------------------------ csv module
    def _csv_chunks(
        self, sel: list[int], ragged: str, skip: int, lines: bool = False
    ) -> Iterator[tuple[int, int, list[Any]]]:
        self.reader_used = "csv"
        ncols = len(self.names)
        with self._text() as f:
            reader = csv.reader(f, delimiter=self.delimiter)
            next(reader)
            rows_done = 0  # data rows read (blank lines not counted)
            records = 0  # records read after the header, blank ones included (for line numbers)
            while True:
                line = reader.line_num + 1
                nums: list[int] = []
                try:
                    if lines:
                        rows = []
                        for r in itertools.islice(reader, CHUNK_ROWS):
                            rows.append(r)
                            nums.append(reader.line_num)
                    else:
                        rows = list(itertools.islice(reader, CHUNK_ROWS))
                except csv.Error as exc:
                    raise TableError(
                        f"{self.path}:{reader.line_num}: CSV parse error ({exc}); check the quoting on that line"
                    ) from exc
                if not rows:
                    return
                n_records = len(rows)
                if set(map(len, rows)) != {ncols}:
                    rows, kept = self._fix_rows(rows, ragged, records)
                    nums = [nums[i] for i in kept] if lines else nums
                records += n_records
                if skip > rows_done:  # carrying on after Arrow: these rows were read already
                    drop = min(skip - rows_done, len(rows))
                    rows, rows_done = rows[drop:], rows_done + drop
                    line = rows_done + self.header_lines + 1  # as Arrow counts
                if not rows:
                    continue
                grid = np.empty((len(rows), ncols), dtype=object)  # rows x columns of str, built in C
                grid[:] = rows
                self.lines = nums
                yield rows_done, nums[0] if nums else line, [grid[:, i] for i in sel]
                rows_done += len(rows)

    def _fix_rows(self, rows: list[list[str]], ragged: str, records: int) -> tuple[list[list[str]], list[int]]:
        """Rows without blank lines (and padded/cut when ``ragged="pad"``), with their indices."""
        ncols = len(self.names)
        keep, kept = [], []
        for i, r in enumerate(rows):
            if len(r) == ncols:
                keep.append(r)
                kept.append(i)
            elif not r or (len(r) == 1 and not r[0].strip()):
                continue  # blank line
            elif ragged == "pad":
                keep.append((r + [""] * ncols)[:ncols])
                kept.append(i)
            else:
                raise TableError(
                    f"{self.path}:{self._line_of(records + i)}: row has {len(r)} field(s) but the header has {ncols}; "
                    "quote values that contain the delimiter, or give every row the header's field count"
                )
        return keep, kept

    def _line_of(self, k: int) -> int:
        """Physical line number (1-based) where data record ``k`` (0-based, after the header) ends."""
        with self._text() as f:
            reader = csv.reader(f, delimiter=self.delimiter)
            next(reader)
            for j, _ in enumerate(reader):
                if j == k:
                    return reader.line_num
        return reader.line_num

    def _text(self) -> Any:
        return _TextFile(self)


class _TextFile:
    """Context manager: the file as UTF-8 text (BOM skipped), remembering the raw file for position()."""

    def __init__(self, owner: CsvFile) -> None:
        self.owner = owner

    def __enter__(self) -> IO[str]:
        raw = open(self.owner.path, "rb")  # noqa: SIM115 - closed in __exit__
        self.owner._raw = raw
        binary: IO[bytes] = gzip.GzipFile(fileobj=raw) if self.owner.gz else raw  # type: ignore[assignment]
        self.f = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        return self.f

    def __exit__(self, *exc: object) -> None:
        self.f.close()
        self.owner._raw.close()


def _joined(pa: Any, batches: list[Any]) -> list[Any]:
    """Columns of consecutive record batches as one array each."""
    if len(batches) == 1:
        return list(batches[0].columns)
    return [pa.concat_arrays([b.column(i) for b in batches]) for i in range(batches[0].num_columns)]


class _ArrowFailed(Exception):
    """Arrow could not read on: hand over to the csv module."""


# ----------------------------------------------------------------------------- typing one column chunk
#: every upper/lower-case spelling of every missing token ("na", "Na", "nA", "NA", ...)
_MISSING_SPELLINGS = frozenset(
    "".join(chars) for tok in MISSING_TOKENS for chars in itertools.product(*({c.lower(), c.upper()} for c in tok))
)


def missing_mask(col: Sequence[str]) -> np.ndarray:
    """True where a text value is a missing token (C-level iteration: no per-value Python code)."""
    return np.fromiter(map(_MISSING_SPELLINGS.__contains__, map(str.strip, col)), dtype=bool, count=len(col))


def csv_values(col: Any, force_text: bool) -> np.ndarray:
    """One chunk of one CSV column -> ``float64`` (NaN = missing) or object array of ``str``/``None``.

    ``col`` is an object array of ``str`` or an Arrow string array (parsed in C when it can be).

    >>> csv_values(np.array(["1", "", "NA", "2.5"], dtype=object), False).tolist()
    [1.0, nan, nan, 2.5]
    >>> csv_values(np.array(["01234", "", "x"], dtype=object), False).tolist()
    ['01234', None, 'x']
    >>> csv_values(np.array(["01234", "", "99501"], dtype=object), False).tolist()
    ['01234', None, '99501']
    """
    if not isinstance(col, np.ndarray):
        if not force_text:
            floats = _arrow_floats(col)
            if floats is not None and not _arrow_zero_padded(col):
                return floats
            force_text = floats is not None
        col = col.to_numpy(zero_copy_only=False)
    out = _csv_convert(col, force_text)
    if out.dtype == np.float64 and _zero_padded(col):
        return _csv_convert(col, True)
    return out


_ZERO_PADDED = r"^\s*[+-]?0\d"
_zero_padded_match = re.compile(_ZERO_PADDED).match


def _zero_padded(col: np.ndarray) -> bool:
    """True when a value is a zero-padded numeral (checked only on columns that parsed as numbers)."""
    return any(map(_zero_padded_match, col.tolist()))


def _arrow_zero_padded(col: Any) -> bool:
    import pyarrow.compute as pc

    return bool(pc.any(pc.match_substring_regex(col, _ZERO_PADDED)).as_py())


def _csv_convert(col: np.ndarray, force_text: bool) -> np.ndarray:
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
        miss = missing_mask(col.tolist())
        filled[miss] = "nan"
        try:
            return filled.astype(np.float64)
        except ValueError:
            pass
    else:
        miss = missing_mask(col.tolist())
    out = col.copy()
    out[miss] = None
    return out


def _arrow_floats(col: Any) -> np.ndarray | None:
    """The column's numbers when Arrow can parse every non-missing value, else ``None`` (undecided)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def parse(a: Any) -> np.ndarray | None:
        try:
            return np.asarray(pc.cast(a, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None

    out = parse(col)
    if out is not None:
        return out
    empty = pc.equal(col, "")
    out = parse(pc.if_else(empty, pa.scalar(None, pa.string()), col))
    if out is not None:
        return out
    miss = pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(col)), value_set=pa.array(sorted(MISSING_TOKENS)))
    out = parse(pc.if_else(miss, pa.scalar(None, pa.string()), col))
    if out is None:
        return None
    tokens = col.filter(miss).to_pylist()  # what Arrow took for missing must be missing by our rule too
    return out if missing_mask(tokens).all() else None
