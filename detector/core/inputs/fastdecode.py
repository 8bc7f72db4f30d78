"""Typed decoding of clean prediction events straight from bytes (msgspec), skipping the dicts.

Most of the cost of ingest used to be building a Python dict per event and then checking every
field of it. A :class:`TypedDecoder` is made per model from its schema: a msgspec ``Struct``
whose ``features`` has exactly the reference's features as *required* fields (numbers for
numeric ones, strings for categorical ones, null allowed), no unknown feature, and the contract's
optional fields with their exact types. Decoding into it both parses and type-checks in C, so
an event it accepts needs no per-field type check afterwards.

Anything it does not accept - a feature absent or of another type, an unexpected feature, a
number beyond float range, NaN literals, an id that is empty or too long, a bad timestamp, an
envelope with a bad item, another model's event, invalid JSON - goes, *per message*, to the
general dict path (:mod:`detector.core.inputs.wire` / :mod:`detector.core.inputs.validate`), which owns every
outcome of the bad-input table. The two paths give identical columns for the events both can
decode (tested property), so the split only changes speed, never results.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from detector.core.inputs.timeparse import parse_timestamps
from detector.core.inputs.wire import ids_ok

__all__ = ["TypedDecoder", "Typed"]

_SliceValue = str | int | float | bool | None


class Typed:
    """Clean events of one batch: the Structs, and the message index of each."""

    __slots__ = ("events", "origin", "item", "ts")

    def __init__(self, events: list[Any], origin: list[int], item: list[int], ts: np.ndarray) -> None:
        self.events, self.origin, self.item, self.ts = events, origin, item, ts


class TypedDecoder:
    """msgspec decoder for one model's prediction events (see the module docstring)."""

    def __init__(self, model: str, numeric: Sequence[str], categorical: Sequence[str]) -> None:
        self.model = model
        self.numeric, self.categorical = list(numeric), list(categorical)
        # feature names are any strings ("amount (usd)", "class"): fields get safe names, renamed on the wire
        names = [*self.numeric, *self.categorical]
        self.attr = {k: f"f{j}" for j, k in enumerate(names)}
        feats = [(self.attr[k], float | None) for k in self.numeric] + [(self.attr[k], str | None) for k in self.categorical]
        self.Features = msgspec.defstruct("Features", feats, forbid_unknown_fields=True, gc=False,  # type: ignore[arg-type]
                                          rename={v: k for k, v in self.attr.items()})
        self.Event = msgspec.defstruct("Event", [
            ("prediction_id", str), ("model", str), ("ts", float | str), ("features", self.Features),
            ("score", float | None, None), ("prediction", float | None, None), ("model_version", str | None, None),
            ("decision", str | None, None), ("baseline_decision", str | None, None), ("threshold", float | None, None),
            ("latency_ms", float | None, None), ("fallback", bool | None, None), ("override", str | None, None),
            ("slices", dict[str, _SliceValue] | None, None),
        ], gc=False)  # type: ignore[arg-type]
        self.one = msgspec.json.Decoder(self.Event)
        self.many = msgspec.json.Decoder(list[self.Event])  # type: ignore[name-defined]
        self.num_get = attrgetter(*(self.attr[k] for k in self.numeric)) if len(self.numeric) > 1 else None
        self.cat_get = attrgetter(*(self.attr[k] for k in self.categorical)) if len(self.categorical) > 1 else None

    def decode(self, raws: Sequence[bytes | None], min_epoch: float, max_id_bytes: int,
               max_value_bytes: int) -> tuple[Typed, list[int]]:
        """(the clean events, message indexes left for the general path). Never raises."""
        one = self.one
        bad_text = _invalid_utf8(raws)
        if bad_text:  # msgspec skips the fields it ignores without checking their text: the general path rejects these
            raws = [None if i in bad_text else r for i, r in enumerate(raws)]
        try:
            evs = list(map(one.decode, raws))  # type: ignore[arg-type]
            origin = list(range(len(evs)))
            item = [-1] * len(evs)
            rest: list[int] = []
        except Exception:  # noqa: BLE001 - some message is not clean: sort them one by one
            evs, origin, item, rest = self._one_by_one(raws)
        if not evs:
            return Typed([], [], [], np.empty(0)), rest
        ts = parse_timestamps(list(map(_ts, evs)))
        bad = np.isnan(ts) | (ts < min_epoch)
        models = list(map(_model, evs))
        if models.count(self.model) != len(models):
            bad |= np.fromiter((m != self.model for m in models), bool, len(models))
        pids = list(map(_pid, evs))
        if not ids_ok(pids, max_id_bytes):
            bad |= np.fromiter((p == "" or len(p.encode("utf-8", "surrogatepass")) > max_id_bytes for p in pids),
                               bool, len(pids))
        if len(self.model.encode()) > max_value_bytes:
            bad[:] = True
        if bad.any():  # to the general path with their whole message (it owns the error records)
            out = set(rest)
            out.update(origin[i] for i in np.flatnonzero(bad).tolist())
            keep = [i for i in range(len(evs)) if not bad[i] and origin[i] not in out]
            evs = [evs[i] for i in keep]
            origin = [origin[i] for i in keep]
            item = [item[i] for i in keep]
            ts = ts[keep]
            rest = sorted(out)
        return Typed(evs, origin, item, ts), rest

    def _one_by_one(self, raws: Sequence[bytes | None]) -> tuple[list[Any], list[int], list[int], list[int]]:
        evs: list[Any] = []
        origin: list[int] = []
        item: list[int] = []
        rest: list[int] = []
        for i, r in enumerate(raws):
            try:
                if r is not None and r[:1] == b"[":
                    items = self.many.decode(r)
                    if not items:
                        raise ValueError("empty envelope")
                    evs.extend(items)
                    origin.extend([i] * len(items))
                    item.extend(range(len(items)) if len(items) > 1 else [-1])
                else:
                    evs.append(self.one.decode(r))  # type: ignore[arg-type]
                    origin.append(i)
                    item.append(-1)
            except Exception:  # noqa: BLE001 - the general path will say what is wrong
                rest.append(i)
        return evs, origin, item, rest

    # ------------------------------------------------------------------ columns
    def num_rows(self, evs: list[Any]) -> list[Any]:
        fs = list(map(_features, evs))
        if self.num_get is not None:
            return list(map(self.num_get, fs))
        if self.numeric:
            name = self.attr[self.numeric[0]]
            return [(getattr(f, name),) for f in fs]
        return []

    def cat_columns(self, evs: list[Any]) -> list[list[Any]]:
        fs = list(map(_features, evs))
        if self.cat_get is not None:
            return [list(c) for c in zip(*map(self.cat_get, fs), strict=True)] if fs else [[] for _ in self.categorical]
        if self.categorical:
            name = self.attr[self.categorical[0]]
            return [[getattr(f, name) for f in fs]]
        return []


def _invalid_utf8(raws: Sequence[bytes | None]) -> set[int]:
    """Indexes of the messages that are not valid UTF-8 (one C pass when the batch is ASCII)."""
    try:
        if b"".join(raws).isascii():  # type: ignore[arg-type]
            return set()
    except TypeError:
        pass  # a None among them (the general path takes it anyway)
    out = set()
    for i, r in enumerate(raws):
        if r is None or r.isascii():
            continue
        try:
            r.decode("utf-8")
        except UnicodeDecodeError:
            out.add(i)
        except AttributeError:
            pass
    return out


_ts = attrgetter("ts")
_model = attrgetter("model")
_pid = attrgetter("prediction_id")
_features = attrgetter("features")
