"""The Python API for notebooks: profile training data, feed predictions, get the alerts back.

>>> from detector import build_reference, Monitor                      # doctest: +SKIP
>>> ref = build_reference(train_df, label="is_fraud", score="score", slices=["region"])  # doctest: +SKIP
>>> monitor = Monitor(ref, window="1h")                                  # doctest: +SKIP
>>> alerts = monitor.observe(predictions_df)   # or a list of event dicts  # doctest: +SKIP

It drives the same synchronous core as the Kafka sidecar and ``skewwatch replay`` (so a notebook
finds what the sidecar would have found), without Kafka, threads or files. Rows become events by
the rules of :mod:`detector.io.eventrows`. Windows close on event time: ``observe`` returns
the alerts of the windows the new data closed, and :meth:`Monitor.flush` closes the rest at the
end of the data. pandas is optional: without it, pass lists of dicts and read
:meth:`Monitor.summary` as a list of dicts.
"""

from __future__ import annotations

import html
import itertools
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from detector.core.engine import Engine
from detector.core.reference.build import TIME_COLUMNS, to_text
from detector.core.reference.build import build_reference as _profile
from detector.core.reference.profile import Reference
from detector.core.settings import DetectorSettings, parse_duration
from detector.io.eventrows import Kind, to_events

__all__ = ["build_reference", "Monitor"]

MAX_ERRORS = 1000  # rejected events kept for inspection (all are counted)


def build_reference(data: Any, label: str | None = None, score: str | None = None, slices: Sequence[str] = (),
                    *, time: str | None = None, model: str | None = None, exclude: Sequence[str] = (),
                    types: Mapping[str, str] | None = None) -> Reference:
    """Profile training data into a :class:`~detector.core.reference.profile.Reference`.

    ``data``: a pandas DataFrame, a mapping of column -> array, or a path to a table (CSV, JSONL,
    Parquet; what ``skewwatch baseline --data`` reads). Every column that is not the ``label``,
    the ``score``, a ``slices`` column, the ``time`` column or ``exclude`` is a feature. ``time``
    defaults to the first of ``ts``, ``timestamp``, ``time``, ``event_time`` present (hour-of-day
    profiles); ``time="none"`` turns that off. ``types`` overrides inferred types
    (``{"zip": "categorical"}``).
    """
    if isinstance(data, str | Path):  # streamed: bounded memory however large the file
        from detector.cli.baseline import scan

        table = scan(data, types=dict(types or {}), label=label, score=score, slices=list(slices) or None)
        if time is None:
            time = next((c for c in TIME_COLUMNS if c in table and c not in exclude), None)
        elif time.lower() == "none":
            time = None
        _check_roles(table.names, label, score, time, slices)
        return table.profiler.reference(label_column=label, score_column=score, slice_columns=list(slices),
                                        exclude=exclude, types=types, source=str(table.path), model=model,
                                        time_column=time)
    source = None
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):
        cols, source = _frame_columns(data), "DataFrame"
    elif isinstance(data, Mapping):
        cols = {str(k): np.asarray(v) for k, v in data.items()}
    else:
        raise TypeError(f"build_reference takes a DataFrame, a mapping of columns or a file path, not "
                        f"{type(data).__name__}")
    if time is None:
        time = next((c for c in TIME_COLUMNS if c in cols and c not in exclude), None)
    elif time.lower() == "none":
        time = None
    _check_roles(list(cols), label, score, time, slices)
    return _profile(cols, label_column=label, score_column=score, slice_columns=list(slices), exclude=exclude,
                    types=types, source=source, model=model, time_column=time)


def _check_roles(names: list[str], label: str | None, score: str | None, time: str | None,
                 slices: Sequence[str]) -> None:
    for what, name in (("label", label), ("score", score), ("time", time), *(("slices", s) for s in slices)):
        if name is not None and name not in names:
            raise KeyError(f"{what}={name!r}: no such column; columns are {', '.join(names[:50])}")


def _frame_columns(df: Any) -> dict[str, np.ndarray]:
    """DataFrame -> float64 (NaN missing) or object (str/None) columns; datetimes -> epoch seconds."""
    out: dict[str, np.ndarray] = {}
    for name in df.columns:
        s = df[name]
        kind = getattr(s.dtype, "kind", "O")
        if kind in "iufb":
            out[str(name)] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        elif kind == "M":
            ns = s.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
            out[str(name)] = np.where(s.isna().to_numpy(), np.nan, ns / 1e9)
        else:
            vals = s.to_numpy(dtype=object)
            arr = np.empty(len(vals), dtype=object)
            arr[:] = [None if v is None or (isinstance(v, float) and v != v) else to_text(v) for v in vals]
            out[str(name)] = arr
    return out


def _rows(data: Any) -> Iterable[Mapping[str, Any]]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        return data.to_dict(orient="records")
    if isinstance(data, Mapping):
        return [data]
    return data


class Monitor:
    """One or more models watched over in-memory data: ``observe*`` in, alert dicts out.

    ``reference``: a Reference (or a path to ``reference.json``), or a mapping model -> Reference.
    ``window``: event-time window, e.g. ``"1h"``; ``settings``: other detector settings (the
    ``detector:`` section of the config, e.g. ``{"slice_top_k": 20}``). Events without a
    ``model`` get ``model`` (default: the reference's model name, else ``"model"``); events
    without a ``ts`` are stamped with the wall clock when they are observed.
    """

    def __init__(self, reference: Reference | str | Path | Mapping[str, Reference], window: str | float = "1h",
                 *, model: str | None = None, settings: Mapping[str, Any] | None = None) -> None:
        refs: dict[str, Reference] = {}
        default: Reference | None = None
        if isinstance(reference, Mapping):
            refs = {str(k): _load(v) for k, v in reference.items()}
        else:
            default = _load(reference)
        self.model = model or (default.model if default is not None and default.model else None) \
            or (next(iter(refs)) if refs else "model")
        st = DetectorSettings.model_validate({**dict(settings or {}), "window": parse_duration(window)})
        self.engine = Engine(st, refs or {self.model: default}, default)
        from detector.core.checks.adoption import attach_adoption
        from detector.core.outcomes.monitor import attach_outcomes

        attach_outcomes(self.engine)
        attach_adoption(self.engine)
        self.alerts: list[dict[str, Any]] = []
        self.errors: deque[dict[str, Any]] = deque(maxlen=MAX_ERRORS)
        self._ids = itertools.count()
        self._dims = sorted({d for r in [default, *refs.values()] if r is not None for d in (r.slices or {})})

    # ------------------------------------------------------------------ feeding it
    def observe(self, predictions: Any) -> list[dict[str, Any]]:
        """Fold prediction events in (a DataFrame or an iterable of event dicts); return the alerts
        (firing and resolved, alert-contract dicts) raised by the windows this closed."""
        evs = self._events(predictions, "predictions")
        for ev in evs:
            if "prediction_id" not in ev:
                ev["prediction_id"] = f"nb-{next(self._ids)}"
        return self._ingest(self.engine.ingest_predictions, evs)

    def observe_labels(self, labels: Any) -> list[dict[str, Any]]:
        """Labels (``prediction_id``, ``label``, ``ts``, optional ``revision``) joined to earlier predictions."""
        return self._ingest(self.engine.ingest_labels, self._events(labels, "labels"))

    def observe_features(self, features: Any) -> list[dict[str, Any]]:
        """Offline feature values (``prediction_id``, ``ts``, features) compared with the served ones (parity)."""
        evs = self._events(features, "features")
        for ev in evs:
            ev.setdefault("source", "offline")
        return self._ingest(self.engine.ingest_features, evs)

    def flush(self) -> list[dict[str, Any]]:
        """End of the data: close every open window and return its alerts."""
        return self._record(self.engine.flush())

    def _events(self, data: Any, kind: Kind) -> list[dict[str, Any]]:
        now = time.time()
        return list(to_events(_rows(data), kind, self._dims, {"model": self.model, "ts": now}))

    def _ingest(self, ingest: Any, evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for e in ingest([orjson.dumps(ev, default=str) for ev in evs]):
            self.errors.append({"index": e.index, "reason": e.reason, "detail": e.detail})
        return self._record(self.engine.advance())

    def _record(self, alerts: list[Any]) -> list[dict[str, Any]]:
        out = [a.to_dict() for a in alerts]
        self.alerts.extend(out)
        return out

    # ------------------------------------------------------------------ reading it
    def firing(self) -> list[dict[str, Any]]:
        """Incidents firing now (the latest alert event of each)."""
        return [dict(a) for m in self.engine.models for a in self.engine.alerts.firing(m)]

    @property
    def counts(self) -> dict[str, Any]:
        c = self.engine.counters
        return {"predictions": c.predictions, "labels": c.labels, "feature_events": c.feature_events,
                "rejected": sum(c.invalid.values()), "late": c.late, "windows_closed": c.windows_closed,
                "firing": len(self.firing())}

    def summary(self) -> Any:
        """Every statistic tested in each model's last closed window against its threshold, the
        furthest over first: a pandas DataFrame when pandas is installed, else a list of dicts."""
        from detector.exporters.prometheus import slice_label

        rows = []
        for name, ms in self.engine.models.items():
            for (kind, stat, feature, skey), (value, _sl, thr) in ms.last_stats.items():
                ratio = float(value) / float(thr) if thr and np.isfinite(thr) and thr != 0 else float("nan")
                rows.append({"model": name, "kind": kind, "feature": feature or "", "slice": slice_label(skey),
                             "statistic": stat, "value": float(value), "threshold": float(thr),
                             "ratio": abs(ratio)})
        rows.sort(key=lambda r: -r["ratio"] if r["ratio"] == r["ratio"] else 0.0)
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows, columns=["model", "kind", "feature", "slice", "statistic", "value", "threshold",
                                           "ratio"])

    def __repr__(self) -> str:
        c = self.counts
        return (f"<Monitor {', '.join(self.engine.models) or self.model}: {c['predictions']:,} predictions, "
                f"{c['windows_closed']} windows closed, {c['firing']} firing, {len(self.alerts)} alert events>")

    def _repr_html_(self) -> str:
        c = self.counts
        rows = "".join(
            f"<tr><td>{html.escape(a.get('severity', ''))}</td><td>{html.escape(a.get('kind', ''))}</td>"
            f"<td>{html.escape(a.get('feature') or '')}</td><td>{html.escape(str(a.get('slice') or 'all'))}</td>"
            f"<td>{html.escape(a.get('cause', ''))} &rarr; {html.escape(a.get('action', ''))}</td>"
            f"<td>{html.escape(a.get('summary', ''))}</td></tr>" for a in self.firing())
        table = (f"<table><tr><th>severity</th><th>kind</th><th>feature</th><th>slice</th><th>cause</th>"
                 f"<th>summary</th></tr>{rows}</table>") if rows else "<p>nothing firing</p>"
        return (f"<div><b>skewwatch Monitor</b> ({html.escape(', '.join(self.engine.models) or self.model)}): "
                f"{c['predictions']:,} predictions, {c['labels']:,} labels, {c['rejected']:,} rejected, "
                f"{c['windows_closed']} windows closed, {len(self.alerts)} alert events{table}</div>")


def _load(ref: Reference | str | Path) -> Reference:
    return ref if isinstance(ref, Reference) else Reference.load(ref)
