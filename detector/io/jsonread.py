"""JSON lines / JSON files (optionally gzipped) read in chunks of typed columns.

Rules (the one place they are decided for JSON training tables): a column is numeric when every
non-null value is a JSON number or boolean (``true``/``false`` -> 1/0); as soon as it holds a
string (or a nested object/list) it is text, numbers in a text column take their string form
(``1234``, ``12.5``) and nested values their JSON text; the text missing tokens count as missing.

A row with a ``features`` object is a skewwatch event: each feature becomes a column, each key of
its ``slices`` object becomes a column, every other top-level field stays a column of its own. A
line may hold a JSON array of such objects (the batch envelope). A ``.json`` file that is one JSON
document (an array, or one object) is read whole: use JSON lines for large tables.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from detector.core.reference.build import to_text
from detector.io.csvread import TableError

__all__ = ["JsonRows", "text_array"]


class JsonRows:
    """The rows of a JSON lines (or JSON) file as chunks of columns; :attr:`flatten` knows the
    events' feature and slice columns seen so far; ``position()`` = bytes of the file read."""

    def __init__(self, path: Path, gz: bool, fmt: str) -> None:
        self.path, self.gz, self.format = path, gz, fmt
        self.flatten = _EventFlattener()
        self._raw: IO[bytes] | None = None

    def position(self) -> int:
        try:
            return self._raw.tell() if self._raw is not None and not self._raw.closed else 0
        except (OSError, ValueError):
            return 0

    def chunks(
        self, rows: int, want: set[str] | None, force_text: frozenset[str]
    ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        """``(first row, rows, {column: values})`` for chunks of ``rows`` rows; a column absent from
        every row of a chunk is absent from it (missing there)."""
        start = 0
        buf: list[dict[str, Any]] = []
        with open(self.path, "rb") as raw:
            self._raw = raw
            f: IO[bytes] = gzip.GzipFile(fileobj=raw) if self.gz else raw  # type: ignore[assignment]
            for where, obj in _json_objects(self.path, f, self.gz):
                buf.append(self.flatten(obj, where))
                if len(buf) >= rows:
                    yield start, len(buf), _columns(buf, want, force_text)
                    start += len(buf)
                    buf = []
            if buf:
                yield start, len(buf), _columns(buf, want, force_text)


def _columns(rows: list[dict[str, Any]], want: set[str] | None, force_text: frozenset[str]) -> dict[str, np.ndarray]:
    keys = dict.fromkeys(itertools.chain.from_iterable(rows))
    return {k: _json_convert([r.get(k) for r in rows], k in force_text) for k in keys if want is None or k in want}


def text_array(values: Sequence[Any]) -> np.ndarray:
    """Values as an ``object`` array of text (``str`` or ``None``) by :func:`~detector.core.reference.build.to_text`."""
    out = np.empty(len(values), dtype=object)
    out[:] = [to_text(v) for v in values]
    return out


_NUMERIC_TYPES = frozenset({int, float, bool, type(None)})


def _json_convert(values: list[Any], force_text: bool) -> np.ndarray:
    if not force_text and set(map(type, values)) <= _NUMERIC_TYPES:
        try:
            return np.array(values, dtype=np.float64)
        except (OverflowError, ValueError, TypeError):
            pass
    return text_array(values)


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


def _json_objects(p: Path, f: IO[bytes], gz: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (location, object) for every row object; lines may hold a batch (JSON array)."""
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
    """A file that is one JSON document (an array of objects, or one object): read whole."""
    with open(p, "rb") as raw_file:
        raw = (gzip.GzipFile(fileobj=raw_file) if gz else raw_file).read()
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


