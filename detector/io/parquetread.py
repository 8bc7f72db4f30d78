"""Parquet specifics of the training-table reader (:class:`detector.io.tables.TableReader`).

Arrow types decide a column's type: integers, floats, decimals and booleans are numeric
(``float64``, NaN for null); strings, dictionaries, timestamps and dates (ISO text) and nested
types (JSON text) are text (:func:`arrow_to_numpy`). Parquet needs random access, so a gzipped
file is unpacked to a temporary file first (:func:`parquet_source`); progress counts rows, known
from the file's metadata (:func:`parquet_rows`). pyarrow is optional (the ``parquet`` extra):
without it, reading a Parquet file is an error that says how to install it (``PARQUET_HINT``).
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from detector.io.jsonread import text_array

__all__: list[str] = []

PARQUET_HINT = "reading parquet needs pyarrow: pip install 'skewwatch[parquet]'"


@contextmanager
def parquet_source(p: Path, gz: bool) -> Iterator[Any]:
    """The Parquet file, or a gzipped one unpacked to a temporary file (Parquet needs random access)."""
    if not gz:
        yield p
        return
    with tempfile.TemporaryFile() as tmp:
        with gzip.open(p, "rb") as f:
            shutil.copyfileobj(f, tmp, 1 << 20)
        tmp.seek(0)
        yield tmp


def parquet_rows(p: Path, gz: bool) -> int | None:
    if gz:
        return None
    try:
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(p).metadata.num_rows)
    except Exception:  # noqa: BLE001 - no pyarrow or not readable: reading reports it properly
        return None


def arrow_to_numpy(pa: Any, arr: Any) -> np.ndarray:
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return np.asarray(arr.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_null(t):
        return np.full(len(arr), np.nan)
    if pa.types.is_temporal(t):
        return text_array([None if v is None else (v.isoformat() if hasattr(v, "isoformat") else str(v)) for v in arr.to_pylist()])
    return text_array(arr.to_pylist())
