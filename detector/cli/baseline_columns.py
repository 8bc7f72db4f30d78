"""What ``skewwatch baseline`` is asked to do with the table's columns, checked against the table.

The ``--types-config`` file (:class:`TypesConfig`: per-feature type overrides, validated with
pydantic so a misspelt field is an error naming it) and which column plays which role: the label,
the score, the slices, the excluded columns and the model name (:func:`column_roles`; skewwatch events
get defaults from their own fields), the task and its output columns (:func:`task_columns`), the time
column (:func:`time_column_of`). A column the options name that the table lacks is an error listing
the columns it has (:func:`check_columns`). Every such error is an :class:`InputError`: the
command prints it on one line and exits with code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detector.cli.baseline_scan import Scanned
from detector.cli.baseline_task import default_prediction_column, infer_from_table
from detector.core.reference.build import TIME_COLUMNS

__all__ = ["InputError", "TypesConfig", "check_columns", "column_roles", "load_types", "task_columns", "time_column_of"]


class TypesConfig(BaseModel):
    """``--types-config`` file: per-feature type overrides."""

    model_config = ConfigDict(extra="forbid")

    features: dict[str, Literal["numeric", "categorical"]] = Field(default_factory=dict)


class InputError(Exception):
    """Bad input or usage: exit code 2."""


def load_types(path: Path) -> dict[str, str]:
    where = f"--types-config {path}"
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot read it ({exc})") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{where}: not valid YAML{at} ({getattr(exc, 'problem', None) or exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a mapping like `features: {{zip: categorical}}`, got {type(data).__name__}")
    try:
        cfg = TypesConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            field = ".".join(str(p) for p in e["loc"]) or "(top level)"
            if e["type"] == "extra_forbidden":
                problems.append(f"unknown field {field!r} (the only field is 'features')")
            elif e["type"] == "literal_error":
                problems.append(f"{field}: {e['input']!r} is not a type; use numeric or categorical")
            else:
                problems.append(f"{field}: {e['msg']}")
        raise InputError(f"{where}: " + "; ".join(problems)) from exc
    return dict(cfg.features)


def column_roles(
    args: argparse.Namespace, table: Scanned
) -> tuple[str | None, str | None, list[str], list[str], str | None]:
    """label, score, slice and excluded columns and the model name (events get defaults)."""
    label, score, model = args.label_column, args.score_column, args.model
    slices = list(args.slice_columns) if args.slice_columns is not None else []
    exclude = list(args.exclude)
    if table.is_events:
        if score is None and "score" in table and "score" not in exclude:
            score = "score"
        if label is None and "label" in table and "label" not in exclude and table.profiler.label_binary():
            label = "label"
        if args.slice_columns is None:
            slices = list(table.slice_columns or [])
        features = set(table.feature_columns or [])
        roles = {label, score, *slices}
        exclude += [c for c in table.names if c not in features and c not in roles and c not in exclude]
        if model is None and "model" in table:
            names = table.profiler.values("model") or []
            if len(names) == 1:
                model = names.pop()
    return label, score, slices, exclude, model


def task_columns(args: argparse.Namespace, table: Scanned, task: str | None, label: str | None,
          exclude: list[str]) -> tuple[str, str | None, tuple[str | None, str | None]]:
    """(task, label column, (prediction column, scores column)); output columns join ``exclude``."""
    if label is None and "label" in table and "label" not in exclude and (table.is_events or task not in (None, "binary")):
        label = "label"
    if task is None:
        if label is None or table.profiler.label_binary():
            task = "binary"
        else:
            task = infer_from_table(table.path, label, args.sample_rows)
    if task == "binary":
        if label is not None and not table.profiler.label_binary():
            raise InputError(f"--label-column {label}: values other than 0/1 or true/false; a binary label is 0/1 - "
                              "for class names use --task multiclass, for numbers --task regression")
        if args.prediction_column is not None or args.scores_column is not None:
            raise InputError("--prediction-column / --scores-column describe a multiclass or regression model; "
                              "a binary model's output is --score-column")
        return task, label, (None, None)
    pred = args.prediction_column
    if pred is None and default_prediction_column(task) in table:
        pred = default_prediction_column(task)
    scores = args.scores_column
    if scores is None and task == "multiclass" and "scores" in table:
        scores = "scores"
    if task == "regression" and scores is not None:
        raise InputError("--scores-column is for multiclass models (class scores); a regression model has --prediction-column")
    available = ", ".join(table.names)
    for option, name in (("--prediction-column", pred), ("--scores-column", scores)):
        if name is not None and name not in table:
            raise InputError(f"{option} {name}: no such column in {table.path}; available columns: {available}")
    if label is None and pred is None:
        raise InputError(f"--task {task} needs the label column (--label-column) or the model's output "
                          f"(--prediction-column); available columns: {available}")
    exclude += [c for c in (label, pred, scores) if c is not None and c not in exclude]
    return task, label, (pred, scores)


def time_column_of(args: argparse.Namespace, table: Scanned) -> str | None:
    if args.time_column is not None:
        return None if args.time_column.lower() == "none" else args.time_column
    return next((c for c in TIME_COLUMNS if c in table and c not in args.exclude), None)


def check_columns(
    table: Scanned,
    label: str | None,
    score: str | None,
    slices: list[str],
    exclude: list[str],
    types: dict[str, str],
    types_path: str | None,
    time_column: str | None,
) -> None:
    available = ", ".join(table.names)
    asked = [("--label-column", label), ("--score-column", score), ("--time-column", time_column)]
    asked += [("--slice-column", s) for s in slices] + [("--exclude", e) for e in exclude]
    for option, name in asked:
        if name is not None and name not in table:
            raise InputError(f"{option} {name}: no such column in {table.path}; available columns: {available}")
    for name in types:
        if name not in table:
            raise InputError(
                f"--types-config {types_path}: features.{name}: no such column in {table.path}; available columns: {available}"
            )
