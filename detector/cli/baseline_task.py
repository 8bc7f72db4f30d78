"""``skewwatch baseline --task``: which model task a training table describes, and its task block.

A binary classifier (the default, and what a 0/1 label column means) is profiled as before: base
rate and score distribution in the reference itself, no task block, so references of binary models
do not change. A multiclass or a regression model gets a task block
(:mod:`detector.core.outcomes.tasks.reference`) from a second pass over the table that reads only the
label, prediction, class-score and time columns (and, for regression, the numeric and categorical
features its expected-error model uses). Rows are read chunk by chunk; what is kept is at most
``--sample-rows`` rows of those few columns (the first ones: the table is read in its order).

Columns, unless the options name them: the label ``label``; the prediction ``prediction``
(regression) or ``predicted_class`` (multiclass); class scores ``scores`` (an object per row, JSON
text in a CSV). With ``--task`` omitted the label column decides (:func:`infer_task`): two values
-> binary, a numeric column with many values -> regression, anything else -> multiclass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from detector.core.outcomes.tasks.reference import (
    TaskReferenceError,
    infer_task,
    multiclass_reference,
    regression_reference,
)
from detector.io.tables import TableReader

__all__ = ["TASK_CHOICES", "default_prediction_column", "read_task_columns", "task_block", "infer_from_table"]

TASK_CHOICES = ("binary", "multiclass", "regression")


def default_prediction_column(task: str) -> str:
    return "predicted_class" if task == "multiclass" else "prediction"


def read_task_columns(path: Any, columns: list[str], limit: int, text: list[str] = ()) -> dict[str, list[Any]]:
    """The values of ``columns`` in the table's first ``limit`` rows (numbers as floats, text as str/None)."""
    reader = TableReader(path, columns, text_columns=text)
    out: dict[str, list[Any]] = {c: [] for c in columns}
    n = 0
    for _, cols, _ in reader.chunks():
        k = min(limit - n, len(next(iter(cols.values()))) if cols else 0)
        for c in columns:
            a = cols.get(c)
            out[c].extend((a[:k].tolist()) if a is not None else [None] * k)
        n += k
        if n >= limit:
            break
    return out


def infer_from_table(path: Any, label: str, limit: int) -> str:
    """:func:`infer_task` of the label column's values (the first ``limit`` rows)."""
    return infer_task(read_task_columns(path, [label], limit)[label])


def _scores(raw: list[Any]) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = []
    for v in raw:
        if isinstance(v, dict) or v is None:
            out.append(v)
            continue
        try:
            d = orjson.loads(v) if isinstance(v, str) and v.strip() else None
        except orjson.JSONDecodeError:
            d = None
        out.append(d if isinstance(d, dict) else None)
    return out


def task_block(task: str, path: Any, *, label: str | None, prediction: str | None, scores: str | None,
               time_column: str | None, features: dict[str, str], limit: int,
               fail: Callable[[str], Exception]) -> dict[str, Any]:
    """The task block of a multiclass / regression reference (see the module docstring).

    ``features``: feature name -> ``numeric`` / ``categorical`` (inputs of the regression
    expected-error model); ``fail`` makes the exception to raise for a bad input (exit code 2).
    """
    cols = [c for c in (label, prediction, scores, time_column) if c is not None]
    feats = list(features) if task == "regression" else []
    text = [c for c in (scores,) if c is not None] + [f for f in feats if features[f] == "categorical"]
    if task == "multiclass":
        text += [c for c in (label, prediction) if c is not None]
    data = read_task_columns(path, list(dict.fromkeys(cols + feats)), limit, text)
    ts = np.asarray(data[time_column], dtype=object) if time_column else None
    try:
        if task == "multiclass":
            return multiclass_reference(data[label] if label else [None] * len(next(iter(data.values()))),
                                        data[prediction] if prediction else None,
                                        _scores(data[scores]) if scores else None, ts=ts)
        y = _numbers(data[label], f"--label-column {label}", fail) if label else None
        p = _numbers(data[prediction], f"--prediction-column {prediction}", fail) if prediction else None
        fx = {f: (np.asarray(data[f], dtype=np.float64) if features[f] == "numeric" else np.asarray(data[f], dtype=object))
              for f in feats}
        return regression_reference(y, p, fx or None, dle=p is not None and y is not None and bool(fx), ts=ts)
    except TaskReferenceError as exc:
        raise fail(str(exc)) from exc


def _numbers(values: list[Any], what: str, fail: Callable[[str], Exception]) -> np.ndarray:
    try:
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        bad = next(v for v in values if not isinstance(v, int | float) and v is not None)
        raise fail(f"{what} holds {bad!r}: a regression model's target and prediction must be numbers; "
                   "use --task multiclass for class names") from None
