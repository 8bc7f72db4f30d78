"""The models of ``skewwatch demo`` beyond the fraud classifier, and the demo's scorecard.

* :func:`task_references`: references of the simulated ``eta`` (regression) and ``intent``
  (multiclass) models, from their training tables with the task block (expected-error model,
  calibration maps), built once and cached like the fraud model's;
* :func:`injected`: every injected fault of the run (fraud scenario and task models), with its model;
* :func:`scorecard`: for each injected fault, the first firing alert of its model with the expected
  kind and cause while the fault was on (or within ``grace_h`` after, for labels still maturing).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detector.core.inputs.timeparse import parse_timestamps

__all__ = ["TASK_SLICES", "cached_reference", "task_reference", "task_references", "injected", "scorecard"]

TASK_SLICES = {"eta": ["region", "vehicle"], "intent": ["channel", "language"]}


def cached_reference(name: str, build: Callable[[], Any], cache_dir: Path | None = None) -> Any:
    """The reference cached as ``skewwatch-demo-<name>.json`` (in the temp folder), else ``build()`` saved there."""
    from detector.core.reference.profile import Reference

    cache = (cache_dir or Path(tempfile.gettempdir())) / f"skewwatch-demo-{name}.json"
    if cache.exists():
        try:
            return Reference.load(cache)
        except Exception:  # noqa: BLE001 - rebuild a damaged cache
            pass
    ref = build()
    ref.save(cache)
    return ref


def task_reference(model: str, cache_dir: Path | None = None, rows: int = 30_000) -> Any:
    """Reference of a simulated task model's training data (built once, then cached)."""
    return cached_reference(f"{model}-reference-{rows}", lambda: _build_task_reference(model, rows), cache_dir)


def _build_task_reference(model: str, rows: int) -> Any:
    from detector.core.outcomes.tasks.reference import multiclass_reference, regression_reference
    from detector.core.reference.build import build_reference
    from detector.sim.tasks import task_training

    tr = task_training(model, rows, seed=1)
    outputs = ("scores", "predicted_class", "prediction", "label")
    cols = {k: v for k, v in tr.items() if k not in outputs}
    ref = build_reference(cols, slice_columns=TASK_SLICES[model], time_column="ts", model=model,
                          source="simulated training data")
    if "prediction" in tr:
        feats = {k: v for k, v in cols.items() if k not in ("ts", *TASK_SLICES[model])}
        ref.task = regression_reference(tr["label"], tr["prediction"], features=feats, ts=tr["ts"])
    else:
        ref.task = multiclass_reference(list(tr["label"]), list(tr["predicted_class"]), list(tr["scores"]), ts=tr["ts"])
    return ref


def task_references(models: list[str], cache_dir: Path | None = None) -> dict[str, Any]:
    return {m: task_reference(m, cache_dir) for m in models}


def injected(fraud_truth: list[dict[str, Any]], task_truth: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All injected faults in onset order, each with ``model`` (the fraud scenario's are the ``fraud`` model's)."""
    rows = [{**g, "model": g.get("model", "fraud")} for g in fraud_truth] + list(task_truth)
    return sorted(rows, key=lambda g: (g["onset_ts"], g["model"]))


def _ts(a: dict[str, Any]) -> float:
    return float(parse_timestamps([a["window"]["end"] if a.get("window") else a["ts"]])[0])


def scorecard(truth: list[dict[str, Any]], alerts: list[dict[str, Any]], grace_h: float = 6.0) -> list[dict[str, Any]]:
    """Per injected fault: ``caught`` (the first firing alert with the expected kind and cause, or None),
    ``other`` (without one: the first firing alert of the model at the time, flagged as something else, or
    None) and ``after_h`` (hours from the onset to the alert's window end).

    Alerts count from the onset to ``grace_h`` after the fault's end (labels mature hours late).
    """
    out = []
    for g in truth:
        end = (g.get("end_ts") or float("inf")) + grace_h * 3600
        during = [a for a in alerts if a.get("state") == "firing" and a.get("model") == g["model"]
                  and g["onset_ts"] < _ts(a) <= end]
        hit = next((a for a in during if a.get("kind") == g["kind"] and a.get("cause") == g["cause"]), None)
        other = None if hit is not None else next(iter(during), None)
        first = hit or other
        out.append({**g, "caught": hit, "other": other,
                    "after_h": None if first is None else (_ts(first) - g["onset_ts"]) / 3600})
    return out
