"""What a simulated task model is (:class:`TaskModel`) and what it draws per chunk of traffic (:class:`Draw`);
the models are :mod:`.eta` (regression) and :mod:`.intent` (multiclass), the stream around them :mod:`.world`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["Draw", "TaskModel"]


@dataclass
class Draw:
    """One chunk of a task model's traffic as columns (features served, slices, outputs, truth)."""

    num: dict[str, np.ndarray]
    decimals: dict[str, int]
    cat: dict[str, np.ndarray]
    slices: dict[str, np.ndarray]
    label: np.ndarray  # float (regression) or object class names
    prediction: np.ndarray | None = None  # regression output
    predicted: np.ndarray | None = None  # multiclass: class names
    scores: np.ndarray | None = None  # multiclass: (n, C) probabilities in ``classes`` order
    classes: tuple[str, ...] = ()


class TaskModel(Protocol):
    name: str
    task: str
    version: str

    def draw(self, seed: int, domain: int, chunk: int, t_ms: np.ndarray, tz: int, faults: dict[str, np.ndarray],
             params: dict[str, Mapping[str, Any]]) -> Draw: ...
