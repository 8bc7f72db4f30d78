"""Model tasks: ``binary``, ``multiclass``, ``regression`` - one module each, one interface (:mod:`.base`).

The files, in reading order (every task has the same two parts: the task and its checks):

===========================  ======================================================================
file                         what it holds
===========================  ======================================================================
``base.py``                  the :class:`~.base.Task` protocol and what every task uses: ``Counters``,
                             ``PredictionColumns``, ``LabelDecode``, ``CheckContext``, ``labels_moved``
``binary.py``                binary classifiers: an adapter over the outcome monitor's cohort counters;
                             their checks are the monitor's own (``detector/core/outcomes/checks.py``)
``multiclass.py``            multiclass models: label / prediction decoding, counters, metrics, estimates
``multiclass_checks.py``     their thresholds and outcome checks
``multiclass_confusion.py``  confusion-matrix statistics (expected confusion, prior-shift fit, macro-F1
                             and its standard error) shared by those checks and the label-free estimates
``regression.py``            regression models: decoding, counters, metrics, estimates
``regression_checks.py``     their thresholds, counter layout (``CNT``) and outcome checks
``reference.py``             what ``skewwatch baseline --task`` stores for each task; :func:`infer_task`
``routing.py``               which task decodes a label event (the model it names, or the shared one)
===========================  ======================================================================

Adding a task is one new module implementing :class:`~detector.core.outcomes.tasks.base.Task` (and,
past a few checks, a ``<task>_checks.py`` beside it) plus its entry in :data:`TASKS` and its
reference builder in :mod:`.reference`.

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
