"""The one pass of ``skewwatch baseline`` over a training table: exact summaries and a row sample.

:func:`scan` reads the table chunk by chunk (:class:`~detector.io.tables.TableReader`) into a
:class:`~detector.core.reference.streamed.TableProfiler` - exact per-column summaries and a seeded
uniform sample - so memory does not grow with the file; columns that turn out to be text after a
numeric start are read a second time, as text. :class:`Scanned` is what the pass learnt: the
columns, whether the rows were skewwatch events, and the profiler. The command
(:mod:`detector.cli.baseline`) and :func:`detector.api.build_reference` both profile through it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from detector.core.reference.streamed import SAMPLE_ROWS, TableProfiler
from detector.io.tables import TableError, TableReader

__all__ = ["Scanned", "scan"]


class Scanned:
    """What one pass over a training table learnt: its columns (in order of appearance), whether
    the rows were skewwatch events, and the :class:`TableProfiler` holding summaries and sample."""

    def __init__(self, reader: TableReader, profiler: TableProfiler) -> None:
        self.path = reader.path
        self.format = reader.format
        self.reader = reader.reader
        self.profiler = profiler
        self.names = list(dict.fromkeys([*profiler.sample.columns(), *profiler.numeric, *profiler.text]))
        self.feature_columns = reader.feature_columns
        self.slice_columns = reader.slice_columns
        self.n_rows = profiler.rows

    @property
    def is_events(self) -> bool:
        return self.feature_columns is not None

    def __contains__(self, name: object) -> bool:
        return name in self.names


def scan(
    path: str | Path,
    *,
    types: dict[str, str] | None = None,
    label: str | None = None,
    score: str | None = None,
    slices: list[str] | None = None,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 0,
    progress: Callable[[TableReader], None] | None = None,
    arrow: bool | None = None,
    label_strict: bool | None = None,
) -> Scanned:
    """Read ``path`` once, chunk by chunk, into exact summaries and a row sample (bounded memory).

    ``label``/``score``/``slices`` name the columns the user chose (a bad value in them is an
    error); left out, the skewwatch-event defaults (``label``, ``score``, the events' slices) are
    tracked too and used only if they turn out to fit. Columns that are numeric at first and text
    later are read a second time, as text. ``arrow=False`` reads CSV with the csv module.
    """
    types = dict(types or {})
    reader = TableReader(path, text_columns=[n for n, t in types.items() if t == "categorical"], arrow=arrow)
    profiler = TableProfiler(
        sample_rows=sample_rows, seed=seed, types=types,
        label=label or "label", label_strict=label is not None if label_strict is None else label_strict,
        score=score or "score", score_strict=score is not None,
        slices=slices,
    )  # fmt: skip
    for start, cols, slice_cols in reader.chunks():
        profiler.update(start, cols, slice_cols, n=reader.rows - start)
        if progress is not None:
            progress(reader)
    if profiler.rows == 0:
        raise TableError(f"{reader.path}: no data rows; the file is empty or has only a header - point --data at the training data")
    if profiler.flipped:
        for start, cols in reader.reread_as_text(sorted(profiler.flipped)):
            profiler.reread(start, cols)
    return Scanned(reader, profiler)
