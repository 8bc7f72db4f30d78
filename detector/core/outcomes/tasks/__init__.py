"""Model tasks: ``binary``, ``multiclass``, ``regression`` - one module each, one interface (:mod:`.base`).

Adding a task is one new module implementing :class:`~detector.core.outcomes.tasks.base.Task` plus its
entry in :data:`TASKS` (and its reference builder in :mod:`.reference`).

>>> t = make_task({"format": "skewwatch.task/1", "task": "multiclass", "classes": ["a", "b", "__other__"]})
>>> t.name, t.decode_labels(["b"]).y.tolist()
('multiclass', [1.0])
>>> make_task(None).name
'binary'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detector.core.outcomes.tasks.base import (
    CheckContext,
    Counters,
    LabelDecode,
    PredictionColumns,
    Ranking,
    Task,
)
from detector.core.outcomes.tasks.binary import BinaryTask
from detector.core.outcomes.tasks.multiclass import MulticlassTask
from detector.core.outcomes.tasks.reference import TaskReferenceError, infer_task
from detector.core.outcomes.tasks.regression import RegressionTask

__all__ = ["TASKS", "make_task", "infer_task", "Task", "Counters", "LabelDecode", "PredictionColumns", "CheckContext",
           "Ranking", "BinaryTask", "MulticlassTask", "RegressionTask", "TaskReferenceError"]

TASKS: dict[str, type] = {"binary": BinaryTask, "multiclass": MulticlassTask, "regression": RegressionTask}


def make_task(ref: Mapping[str, Any] | None, task: str | None = None, thresholds: Any = None) -> Task:
    """The task object of a model from its task reference (no reference: a binary model, as before)."""
    name = task or (ref or {}).get("task") or "binary"
    cls = TASKS.get(name)
    if cls is None:
        raise ValueError(f"unknown task {name!r}; use one of {', '.join(TASKS)}")
    if ref is None and name != "binary":
        raise ValueError(f"a {name} model needs a reference with its classes / target: run `skewwatch baseline --task {name}`")
    return cls(ref, thresholds) if ref is not None or thresholds is not None else cls()
