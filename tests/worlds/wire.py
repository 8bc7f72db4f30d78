"""Serialisation: what the producers of a world put on the wire and into the training CSV.

* timestamps in the producer's own format (RFC 3339 with an offset, ``Z``, epoch seconds or
  milliseconds), see each world's ``wire_ts``;
* predictions in *arrival* order (log-order jitter, a share of lines held back);
* labels and offline features sorted by their own ``ts``; labels that would land after the log
  ends are absent;
* the training table as CSV with numeric-looking codes written unquoted, as a dataframe's
  ``to_csv`` would.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from tests.worlds.frame import Frame

__all__ = ["rfc3339", "column_values", "arrival_order", "write_lines", "prediction_events",
           "label_events", "feature_events", "write_training_csv"]


def rfc3339(ts: np.ndarray, offset_h: float, ms: bool) -> list[str]:
    """Epoch seconds -> RFC 3339 strings in local time at ``offset_h`` (``Z`` for 0 unless asked)."""
    loc = np.asarray(ts, dtype=np.float64) + offset_h * 3600.0
    unit = "ms" if ms else "s"
    scale = 1000.0 if ms else 1.0
    d = (np.floor(loc * scale)).astype(np.int64).astype(f"datetime64[{unit}]")
    text = np.datetime_as_string(d, unit=unit)
    if offset_h == 0.0:
        suffix = "Z"
    else:
        sign = "-" if offset_h < 0 else "+"
        a = abs(offset_h)
        suffix = f"{sign}{int(a):02d}:{int(round((a % 1) * 60)):02d}"
    return [s + suffix for s in text.tolist()]


def column_values(arr: np.ndarray, integer: bool) -> list[Any]:
    """A column as JSON-ready Python values: NaN -> None, integer features as ints."""
    if arr.dtype == object:
        return arr.tolist()
    vals = arr.tolist()
    if integer:
        return [None if v != v else int(v) for v in vals]
    return [None if v != v else v for v in vals]


def arrival_order(t: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Row order of the log: most lines within 0.5 s of ``t``, ``share`` held back by 2-8 mean gaps."""
    n = len(t)
    gap = (t[-1] - t[0]) / max(n - 1, 1) if n > 1 else 1.0
    delay = 0.5 * rng.random(n)
    held = rng.random(n) < share
    delay[held] = gap * (2.0 + 6.0 * rng.random(int(held.sum())))
    return np.argsort(t + delay, kind="stable")


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "wb", compresslevel=1)  # type: ignore[return-value]
    return path.open("wb")


def write_lines(path: Path, events: Iterable[dict[str, Any]]) -> int:
    k = 0
    with _open(path) as fh:
        buf: list[bytes] = []
        for ev in events:
            buf.append(orjson.dumps(ev))
            k += 1
            if len(buf) >= 5000:
                fh.write(b"\n".join(buf) + b"\n")
                buf = []
        if buf:
            fh.write(b"\n".join(buf) + b"\n")
    return k


def _feature_dicts(f: Frame, values: dict[str, np.ndarray], names: Sequence[str], integer: Sequence[str],
                   rows: np.ndarray, with_faults: bool) -> list[dict[str, Any]]:
    """Feature objects of ``rows`` (in that order), with the payload faults applied if asked."""
    cols = []
    for name in names:
        vals = column_values(values[name][rows], name in integer)
        if with_faults and name in f.as_text:
            for i in np.flatnonzero(f.as_text[name][rows]).tolist():
                if vals[i] is not None:
                    vals[i] = str(vals[i])
        cols.append(vals)
    out = [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]
    if with_faults:
        for name, mask in f.absent.items():
            for i in np.flatnonzero(mask[rows]).tolist():
                out[i].pop(name, None)
        for name, arr in f.extra.items():
            sub = arr[rows]
            vals = column_values(sub, False)
            for i in np.flatnonzero(~np.isnan(sub)).tolist():
                out[i][name] = vals[i]
    return out


def prediction_events(world: Any, f: Frame, ids: list[str], order: np.ndarray,
                      chunk: int = 20_000) -> Iterator[dict[str, Any]]:
    """Prediction events in log ``order``, built a chunk at a time (bounded memory)."""
    assert f.score is not None and f.threshold is not None and f.latency is not None and f.fallback is not None
    assert f.model_version is not None and f.ts_shift is not None
    names = list(world.numeric) + list(world.categorical)
    ts = world.wire_ts(f.t + f.ts_shift, f)
    act, no = world.decisions
    decision = np.where(f.score >= f.threshold, act, no)
    lat = np.round(f.latency, 1)
    regions = np.array([r[0] for r in world.regions], dtype=object)
    channels = np.array(world.channels, dtype=object)
    for k in range(0, len(order), chunk):
        rows = order[k:k + chunk]
        feats = _feature_dicts(f, f.served, names, world.integer, rows, with_faults=True)
        cols = zip(rows.tolist(), feats, f.model_version[rows].tolist(), f.score[rows].tolist(), decision[rows].tolist(),
                   f.threshold[rows].tolist(), regions[f.region[rows]].tolist(), channels[f.channel[rows]].tolist(),
                   lat[rows].tolist(), f.fallback[rows].tolist(), strict=True)
        for i, fe, ver, sc, dec, thr, reg, ch, la, fb in cols:
            yield {"prediction_id": ids[i], "model": world.model, "model_version": ver, "ts": ts[i],
                   "features": fe, "score": sc, "decision": dec, "threshold": thr,
                   "slices": {"region": reg, "channel": ch}, "latency_ms": la, "fallback": fb}


def label_events(f: Frame, ids: list[str], end: float, duplicates: float,
                 rng: np.random.Generator) -> list[dict[str, Any]]:
    """Labels sorted by arrival; a share sent twice; none after the log's end."""
    assert f.label_delay is not None and f.label is not None
    arrive = f.t + f.label_delay
    rows = np.flatnonzero(~np.isnan(arrive) & (arrive <= end))
    dup = rows[rng.random(len(rows)) < duplicates]
    dup_ts = arrive[dup] + 60.0 + 540.0 * rng.random(len(dup))
    keep = dup_ts <= end
    all_rows = np.concatenate([rows, dup[keep]])
    all_ts = np.concatenate([arrive[rows], dup_ts[keep]])
    order = np.argsort(all_ts, kind="stable")
    lab = f.label.astype(np.int64)
    return [{"prediction_id": ids[int(all_rows[k])], "ts": int(all_ts[k]), "label": int(lab[all_rows[k]])}
            for k in order.tolist()]


def feature_events(world: Any, f: Frame, ids: list[str], end: float) -> list[dict[str, Any]]:
    """Offline feature events (true values unless a fault breaks the offline path), sorted by ts."""
    assert f.offline_lag is not None
    arrive = f.t + f.offline_lag
    rows = np.flatnonzero(~np.isnan(arrive) & (arrive <= end))
    rows = rows[np.argsort(arrive[rows], kind="stable")]
    names = list(world.numeric) + list(world.categorical)
    feats = _feature_dicts(f, f.offline, names, world.integer, rows, with_faults=False)
    ts = rfc3339(arrive[rows], 0.0, ms=True)
    return [{"prediction_id": ids[i], "ts": ts[k].replace("Z", "+00:00"), "features": feats[k], "source": "offline"}
            for k, i in enumerate(rows.tolist())]


def write_training_csv(path: Path, world: Any, f: Frame, score: np.ndarray, label: np.ndarray,
                       timestamps: list[str] | None) -> None:
    names = list(world.numeric) + list(world.categorical)
    cols = [column_values(f.observed[n], n in world.integer) for n in names]
    reg = [world.regions[r][0] for r in f.region.tolist()]
    chan = [world.channels[c] for c in f.channel.tolist()]
    header = (["timestamp"] if timestamps is not None else []) + names + ["region", "channel", "score", "label"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
        w.writerow(header)
        for i, row in enumerate(zip(*cols, strict=True)):
            cells = ["" if v is None else v for v in row]
            lead = [timestamps[i]] if timestamps is not None else []
            w.writerow(lead + cells + [reg[i], chan[i], f"{score[i]:.4f}", int(label[i])])
