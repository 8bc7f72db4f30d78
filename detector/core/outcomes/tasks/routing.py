"""Which task decodes a label event: the task of the model it names, else the one all models share.

Label events need not name their model (README "Event contract"), and a label may arrive before its prediction,
so the label is decoded when it arrives, by the task of the references the engine knows:

* the event names a model with a reference -> that model's task;
* it names none (or an unknown one) -> the task every reference shares, when they agree (the
  usual case: one model per sidecar, or only binary classifiers). Multiclass references agree only
  when their class lists are the same (a class name becomes that list's code);
* the references disagree -> ``None``: numbers are kept as numbers, a class name is an error that
  asks the producer to name the model (:func:`detector.core.inputs.feeds.decode_labels`).

When every reference is binary there is no router at all and labels decode exactly as before tasks.

>>> from detector.core.reference.profile import Reference
>>> r = Reference(n_rows=1, features={}, task={"format": "skewwatch.task/1", "task": "regression",
...               "target": {"edges": [1.0, 2.0]}})
>>> route = label_router({"eta": r}, None)
>>> route("eta").name, route(None).name
('regression', 'regression')
>>> label_router({"fraud": Reference(n_rows=1, features={})}, None) is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from detector.core.outcomes.tasks import make_task
from detector.core.outcomes.tasks.base import Task

__all__ = ["label_router", "task_of"]


def task_of(ref: Any) -> Task:
    """The task object of a reference (binary when it has no task block)."""
    return make_task(ref.task or None)


def _key(ref: Any) -> tuple[str, tuple[str, ...]]:
    t = ref.task or {}
    name = str(t.get("task") or "binary")
    return name, tuple(t.get("classes") or ()) if name == "multiclass" else ()


def label_router(references: Mapping[str, Any], default: Any) -> Callable[[str | None], Task | None] | None:
    """A function model name -> the task decoding its labels (see the module docstring); None when all are binary."""
    refs = [r for r in (*references.values(), default) if r is not None]
    if all(_key(r)[0] == "binary" for r in refs):
        return None
    tasks = {id(r): task_of(r) for r in refs}  # built once per reference
    shared = refs[0] if len({_key(r) for r in refs}) == 1 else None

    def route(model: str | None) -> Task | None:
        ref = references.get(model) if model is not None else None
        if ref is None:  # no model named, or one without its own reference
            ref = default if model is not None and default is not None else shared
        return tasks[id(ref)] if ref is not None else None

    return route
